"""API route of the audit log, mounted at /api/."""

from django.urls import path

from . import api

urlpatterns = [path("audit/", api.AuditEntryListApi.as_view(), name="api-audit")]
