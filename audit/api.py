"""``GET /api/audit/``: the audit log for automation (admins; token or session)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.pagination import PageNumberPagination

from . import selectors
from .forms import AuditFilterForm
from .models import AuditEntry


class AuditEntrySerializer(serializers.ModelSerializer):
    """One audit entry: ``when`` (ISO 8601), ``actor``, ``action``, ``target``, ``detail``."""

    class Meta:
        model = AuditEntry
        fields = ["id", "when", "actor", "action", "target", "detail"]


class AuditPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


@extend_schema(
    parameters=[
        OpenApiParameter("action", OpenApiTypes.STR, description="Only this action, e.g. revoked."),
        OpenApiParameter("actor", OpenApiTypes.STR, description="Only this user name."),
        OpenApiParameter("q", OpenApiTypes.STR, description="Target or detail contains this."),
        OpenApiParameter("since", OpenApiTypes.DATE, description="From this day on (YYYY-MM-DD)."),
        OpenApiParameter("until", OpenApiTypes.DATE, description="Up to this day (included)."),
    ]
)
class AuditEntryListApi(ListAPIView):
    """The audit log, newest first, 50 a page (``?page=``, ``?page_size=`` up to 500)."""

    serializer_class = AuditEntrySerializer
    pagination_class = AuditPagination

    def get_queryset(self):
        form = AuditFilterForm(self.request.query_params)
        if not form.is_valid():
            raise ValidationError({k: [str(e) for e in v] for k, v in form.errors.items()})
        return selectors.audit_entries(**form.filters())
