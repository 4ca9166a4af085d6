"""Failures on the other node, shown on both nodes (issue 12).

When the remote node cannot apply one of our changes it acknowledges the event with the
error (``sync.services.apply``), and with ``error_code`` ``entity_gone`` when its incident
no longer exists. :func:`remote_failure_record` turns that acknowledgement into an
entity-level error on *this* node too (``remote=True``) and fails our outgoing event, so
the Errors page, the Sync queue and the twin page of both nodes say the same thing. A
later successful acknowledgement of the same event (the remote admin retried) clears it.
Retry on either node works: our retry sends the same event again, and the remote node,
seeing again an event it failed to apply, retries it (:func:`remote_retry_requested`).
"""

from __future__ import annotations

from django.utils import timezone

from trackers.errors import TrackerNotFound

from ..models import SyncError, SyncEvent, Twin
from .base import twin_status_refresh

#: ``error_code`` of an acknowledgement whose incident no longer exists on its node.
ENTITY_GONE = "entity_gone"


def apply_failure_words(twin: Twin, exc: Exception) -> tuple[str, str]:
    """``(message, code)`` for a change that failed for good while applying it to ``twin``'s
    incident. A missing incident (ServiceNow answers 404: deleted, or hidden by an ACL)
    is said in words, with what to do, and coded ``entity_gone``."""
    if isinstance(exc, TrackerNotFound) and twin.local_entity_id:
        key = twin.local_key or twin.local_entity_id
        return (
            f"The incident {key} no longer exists in this node's instance (it was deleted), "
            "so the change from the remote "
            f"node cannot be applied. Unexalate the twin; the remote incident "
            f"{twin.remote_key or ''} can then be exalated again as a new mirror.".replace(
                "  ", " "
            ),
            ENTITY_GONE,
        )
    return str(exc), ""


def remote_failure_record(*, twin: Twin, acked_event_id, error: str, code: str = "") -> None:
    """Record the remote node's acknowledgement of our event ``acked_event_id`` (called by
    the receive stage, inside its transaction): with ``error``, our event fails and an
    entity error (``remote=True``) says why; without, the event is done and the remote
    errors of the twin are resolved."""
    from .failures import entity_error

    now = timezone.now()
    events = SyncEvent.objects.filter(
        twin=twin, direction=SyncEvent.Direction.OUT, event_id=acked_event_id
    )
    if not error:
        events.filter(status=SyncEvent.Status.ERROR).update(
            status=SyncEvent.Status.DONE, done_at=now, last_error=""
        )
        SyncError.objects.filter(twin=twin, remote=True, resolved_at__isnull=True).update(
            resolved_at=now
        )
        Twin.objects.filter(pk=twin.pk, remote_error="").update(last_error="")
        twin_status_refresh(twin.pk)
        return
    event = events.first()
    if code == ENTITY_GONE:
        message = (
            f"The remote incident {twin.remote_key or ''} no longer exists on the other node "
            "(it was deleted there), so this change cannot be applied. Unexalate the twin, "
            f"then exalate {twin.local_key or 'the incident'} again to make a new mirror."
        ).replace("  ", " ")
    else:
        message = f"The remote node could not apply this change: {error}"
    if event is not None:
        events.update(status=SyncEvent.Status.ERROR, last_error=message[:2000])
    entity_error(twin=twin, event=event, message=message, code=code, remote=True)
    twin_status_refresh(twin.pk)


def remote_retry_requested(*, connection, event_id) -> bool:
    """The remote node sent again an event we stored: when we failed to apply it, retry it
    (its admin pressed Retry there). Returns True when a retry was started."""
    stored = (
        SyncEvent.objects.filter(
            connection=connection,
            direction=SyncEvent.Direction.IN,
            event_id=event_id,
            kind=SyncEvent.Kind.REPLICA,
            status=SyncEvent.Status.ERROR,
        )
        .select_related("twin")
        .first()
    )
    if stored is None:
        return False
    from .failures import twin_retry

    twin_retry(twin=stored.twin)
    return True


def twin_problem(twin: Twin) -> dict | None:
    """What is wrong with ``twin`` for the console, in words: ``{"code", "message",
    "remote"}`` from its newest open error, or None. ``code`` ``entity_gone`` means the
    incident on one side no longer exists (``remote`` says which side)."""
    error = (
        SyncError.objects.filter(twin=twin, resolved_at__isnull=True)
        .order_by("-last_seen_at", "-id")
        .values("code", "message", "remote")
        .first()
    )
    if error:
        return error
    if twin.remote_error:
        return {"code": "", "message": twin.remote_error, "remote": True}
    return None
