"""The Audit log page: filters and paging (50 entries a page), newest first."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.http import require_GET

from . import selectors
from .forms import AuditFilterForm

PAGE_SIZE = 50


@login_required
@require_GET
def audit_log(request):
    """``GET /audit/?action=&actor=&q=&since=&until=&page=``: the audit log."""
    form = AuditFilterForm(request.GET or None)
    entries = selectors.audit_entries(**form.filters())
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "audit/audit_log.html",
        {
            "form": form,
            "page": page,
            "actions": selectors.audit_actions(),
            "query": query.urlencode(),
        },
    )
