"""What every stage of the engine shares: its exceptions, the open statuses, the twin's status.

Nothing here calls a tracker or another node.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from connections.models import Connection

from ..models import ConnectionSyncState, SyncError, SyncEvent, Twin

OPEN_EVENT_STATUSES = (SyncEvent.Status.QUEUED, SyncEvent.Status.IN_PROGRESS)


class SyncRefused(ValueError):
    """Bad input or state that an admin must fix; ``str(exc)`` says what, in their words."""


class PermanentSyncError(Exception):
    """An event that will fail the same way on every attempt; becomes an entity-level error."""


class TransientSyncError(Exception):
    """Try again later (e.g. attachment bytes not available yet). ``retry_after`` in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def state_for(connection: Connection) -> ConnectionSyncState:
    """The connection's sync state row, created with a watermark of now on first use."""
    state, _ = ConnectionSyncState.objects.get_or_create(
        connection=connection, defaults={"watermark": timezone.now() - timedelta(seconds=1)}
    )
    return state


def has_open_incoming(twin_id: int) -> bool:
    """Whether the twin has an incoming event not yet applied (those go before any scan)."""
    return SyncEvent.objects.filter(
        twin_id=twin_id, direction=SyncEvent.Direction.IN, status__in=OPEN_EVENT_STATUSES
    ).exists()


def twin_status_refresh(twin_id: int) -> str:
    """Recompute and store the twin's status from its events and open errors; return it.

    Error: an event failed for good, an open entity error, or the remote reported one.
    Synchronized: nothing open and both sides known. Queued: every open event is still
    waiting for its first attempt. In progress otherwise.
    """
    twin = (
        Twin.objects.filter(pk=twin_id)
        .values("local_entity_id", "remote_entity_id", "remote_url", "remote_error", "status")
        .first()
    )
    if twin is None:
        return ""
    open_events = list(
        SyncEvent.objects.filter(twin_id=twin_id)
        .exclude(status=SyncEvent.Status.DONE)
        .values_list("status", "attempts")
    )
    has_error = (
        any(s == SyncEvent.Status.ERROR for s, _ in open_events)
        or SyncError.objects.filter(twin_id=twin_id, resolved_at__isnull=True).exists()
    )
    if has_error or twin["remote_error"]:
        status = Twin.Status.ERROR
    elif not open_events and twin["local_entity_id"] and twin["remote_entity_id"]:
        status = Twin.Status.SYNCHRONIZED
    elif open_events and all(s == SyncEvent.Status.QUEUED and a == 0 for s, a in open_events):
        status = Twin.Status.QUEUED
    else:
        status = Twin.Status.IN_PROGRESS
    if status == twin["status"]:
        return status  # nothing to write (the UPDATE below would match no row)
    fields = {"status": status}
    if status == Twin.Status.SYNCHRONIZED:
        fields["last_synced_at"] = timezone.now()
    Twin.objects.filter(pk=twin_id).exclude(status=status).update(**fields)
    return status
