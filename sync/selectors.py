"""Reads that the sync pages and the REST API need (no writes, no remote calls)."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404

from connections.models import Connection

from .models import ExalateRequest, SyncError, SyncEvent, Twin
from .rules import BASIC_RULES

#: Transient retries at or above this many attempts are listed as warnings on the Errors page.
RETRY_WARNING_ATTEMPTS = 5


def twin_get(twin_id: int) -> Twin:
    """The twin with its connection; Http404 when absent."""
    return get_object_or_404(Twin.objects.select_related("connection"), pk=twin_id)


def exalate_request_get(request_id) -> ExalateRequest:
    """The exalate request with its connection and twin; Http404 when absent."""
    return get_object_or_404(
        ExalateRequest.objects.select_related("connection", "twin"), pk=request_id
    )


def twin_search(*, query: str = "", connection_id=None, limit: int = 50) -> QuerySet[Twin]:
    """Twins whose local or remote number or sys_id contains ``query`` (all when empty), newest first."""
    qs = Twin.objects.select_related("connection")
    query = (query or "").strip()
    if query:
        qs = qs.filter(
            Q(local_key__icontains=query)
            | Q(remote_key__icontains=query)
            | Q(local_entity_id=query)
            | Q(remote_entity_id=query)
        )
    if connection_id:
        qs = qs.filter(connection_id=connection_id)
    return qs.order_by("-updated_at", "-id")[:limit]


def twin_events(twin: Twin, *, limit: int = 30) -> list[SyncEvent]:
    """The twin's latest events, newest first."""
    return list(twin.events.order_by("-id")[:limit])


def twin_open_errors(twin: Twin) -> list[SyncError]:
    """The twin's unresolved errors, newest first."""
    return list(twin.errors.filter(resolved_at__isnull=True).order_by("-id"))


def twin_pending_retry(twin: Twin) -> SyncEvent | None:
    """The twin's event waiting for a retry after a transient failure (with its last error), if any."""
    return (
        twin.events.filter(status=SyncEvent.Status.QUEUED, attempts__gt=0)
        .exclude(last_error="")
        .order_by("id")
        .first()
    )


def exalatable_connections() -> QuerySet[Connection]:
    """Active connections, by name: the ones an incident can be exalated on."""
    return Connection.objects.filter(status=Connection.Status.ACTIVE).order_by("name", "created_at")


def errors_open(*, level: str | None = None) -> QuerySet[SyncError]:
    """Open (unresolved) errors, newest first, with their connection and twin."""
    qs = SyncError.objects.filter(resolved_at__isnull=True).select_related(
        "connection", "twin", "event"
    )
    if level:
        qs = qs.filter(level=level)
    return qs.order_by("-last_seen_at", "-id")


def retrying_events(*, limit: int = 50) -> QuerySet[SyncEvent]:
    """Events still retrying after many transient failures: warnings, not errors yet."""
    return (
        SyncEvent.objects.filter(
            status__in=[SyncEvent.Status.QUEUED, SyncEvent.Status.IN_PROGRESS],
            attempts__gte=RETRY_WARNING_ATTEMPTS,
        )
        .select_related("twin", "connection")
        .order_by("next_attempt_at")[:limit]
    )


def queue_events(
    *, direction: str, status: str = "", connection_id=None, limit: int = 200
) -> QuerySet[SyncEvent]:
    """Events of the Sync queue page: one direction, optionally one status and connection.

    Without a status, open events (not done) come first, then the latest done ones.
    """
    qs = SyncEvent.objects.filter(direction=direction).select_related("twin", "connection")
    if status:
        qs = qs.filter(status=status)
    else:
        qs = qs.exclude(status=SyncEvent.Status.DONE)
    if connection_id:
        qs = qs.filter(connection_id=connection_id)
    return qs.order_by("id")[:limit]


def queue_counts() -> dict[str, dict[str, int]]:
    """``{"out": {status: n}, "in": {status: n}}`` over all events."""
    counts: dict[str, dict[str, int]] = {"out": {}, "in": {}}
    for row in SyncEvent.objects.values("direction", "status").annotate(n=Count("id")):
        counts[row["direction"]][row["status"]] = row["n"]
    return counts


def basic_rules() -> list[tuple[str, str, str]]:
    """The Basic-mode rules as (what, outgoing, incoming) rows, for the read-only rules table."""
    return list(BASIC_RULES)


def webhook_info(request) -> dict:
    """The webhook URL this node's tracker calls (ServiceNow: a business rule), for the Entity
    sync status page: ``{"url": ".../api/webhooks/<tracker>/", "interval": seconds}``."""
    from connections.selectors import node_identity_get, tracker_adapter_class_get

    base = node_identity_get().public_url or request.build_absolute_uri("/").rstrip("/")
    tracker = tracker_adapter_class_get().tracker
    return {"url": f"{base}/api/webhooks/{tracker}/", "interval": settings.CHANGE_POLL_INTERVAL}
