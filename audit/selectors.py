"""Reads of the audit log for the page and the API."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from .models import AuditEntry


def audit_actions() -> list[str]:
    """The actions recorded so far, sorted (the page's filter offers them)."""
    return sorted(set(AuditEntry.objects.values_list("action", flat=True).distinct()))


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


def audit_entries(
    *,
    action: str = "",
    actor: str = "",
    q: str = "",
    since: date | None = None,
    until: date | None = None,
) -> QuerySet[AuditEntry]:
    """Entries newest first. ``action`` exact; ``actor`` exact user name (any case); ``q`` in
    the target or detail; ``since`` / ``until`` whole days (both included), in the node's
    time zone."""
    rows = AuditEntry.objects.all()
    if action:
        rows = rows.filter(action=action)
    if actor:
        rows = rows.filter(actor__iexact=actor)
    if q:
        rows = rows.filter(Q(target__icontains=q) | Q(detail__icontains=q))
    if since:
        rows = rows.filter(when__gte=_day_start(since))
    if until:
        rows = rows.filter(when__lt=_day_start(until) + timedelta(days=1))
    return rows.order_by("-when", "-id")
