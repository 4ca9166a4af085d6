"""Unexalate: stop syncing a twin, on both nodes (Exalate's Unexalate and Clean-up tools).

:func:`twin_unexalate` records a :class:`~sync.models.TwinEnding`. By default the twin
keeps syncing until its queue drains (no outgoing change waiting to be delivered or
acknowledged, no incoming change waiting to be applied; a change that failed for good
can never drain and does not hold it back); ``at_once`` skips the queue. Ending a twin:

1. its queued, failed and finished events are dropped, its open errors resolved;
2. the twin becomes a *tombstone*: its entity ids are blanked, so the incident can be
   exalated again and gets a new mirror (a new twin);
3. an ``unexalate`` message (``sync.protocol``) is queued: the other node ends its twin
   at once when it receives it (:func:`unexalate_receive`); the incidents themselves stay
   as they are in both instances.

The tombstone goes once its message is delivered (:func:`unexalates_sweep`, a beat task,
which also ends the twins whose queue drained).
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from connections.models import Connection

from .. import nudge
from ..models import SyncError, SyncEvent, Twin, TwinEnding
from ..protocol import NO_ENTITY
from .base import SyncRefused

logger = logging.getLogger(__name__)

#: Events that still drain by themselves (an ERROR event never does).
_DRAINING_OUT = (SyncEvent.Status.QUEUED, SyncEvent.Status.IN_PROGRESS, SyncEvent.Status.SENT)
_DRAINING_IN = (SyncEvent.Status.QUEUED, SyncEvent.Status.IN_PROGRESS)


def live_twins() -> Q:
    """Filter for twins that are not tombstones (not ended by an Unexalate); a NOT IN over
    the (small) table of ended twins, so a page of 100,000 twins needs no join."""
    return ~Q(pk__in=TwinEnding.objects.filter(ended_at__isnull=False).values("twin_id"))


def twin_pending_changes(twin_id: int) -> tuple[int, int]:
    """``(outgoing, incoming)``: the twin's changes still draining (not failed, not done)."""
    out = SyncEvent.objects.filter(
        twin_id=twin_id, direction=SyncEvent.Direction.OUT, status__in=_DRAINING_OUT
    ).count()
    inc = SyncEvent.objects.filter(
        twin_id=twin_id,
        direction=SyncEvent.Direction.IN,
        kind=SyncEvent.Kind.REPLICA,
        status__in=_DRAINING_IN,
    ).count()
    return out, inc


def twin_unexalate(*, twin: Twin, at_once: bool = False, requested_by: str = "") -> Twin:
    """Stop syncing ``twin`` on both nodes; after its queue drains, or at once (``at_once``).

    Returns the twin (re-read). Unexalating a twin already ending does no harm (an
    ``at_once`` request then ends it now). Raises SyncRefused (admin words) when the twin
    already ended, or ``at_once`` while a change is being applied to the incident this
    very moment (the apply holds the twin's lease; nothing is dropped then).
    """
    twin = Twin.objects.select_related("connection").get(pk=twin.pk)
    ending = TwinEnding.objects.filter(twin=twin).first()
    label = twin.local_key or twin.remote_key or "This twin"
    if ending and ending.ended_at:
        raise SyncRefused(f"{label} is already unexalated.")
    now = timezone.now()
    if at_once and twin.claimed_until and twin.claimed_until > now:
        raise SyncRefused(
            f"A change to {label} is being applied right now: unexalate it without "
            "'at once' (it ends when its queue drains), or try again in a few seconds."
        )
    with transaction.atomic():
        ending, created = TwinEnding.objects.get_or_create(
            twin=twin, defaults={"at_once": at_once, "requested_by": requested_by[:150]}
        )
        if not created and at_once and not ending.at_once:
            TwinEnding.objects.filter(pk=ending.pk).update(at_once=True)
    _audit(requested_by, "unexalated", twin, "at once" if at_once else "after the queue drains")
    if at_once or twin_pending_changes(twin.pk) == (0, 0):
        twin_end(twin_id=twin.pk)
    else:
        nudge.nudge(_tasks().unexalates_sweep, countdown=2)
    return Twin.objects.get(pk=twin.pk)


def twin_end(*, twin_id: int) -> bool:
    """End a twin whose Unexalate was requested: drop its events, make it a tombstone, and
    queue the ``unexalate`` message for the other node. Returns False when already ended."""
    with transaction.atomic():
        twin = Twin.objects.select_for_update().filter(pk=twin_id).first()
        ending = TwinEnding.objects.select_for_update().filter(twin_id=twin_id).first()
        if twin is None or ending is None or ending.ended_at:
            return False
        now = timezone.now()
        TwinEnding.objects.filter(pk=ending.pk).update(
            ended_at=now,
            local_entity_id=twin.local_entity_id,
            local_key=twin.local_key,
            remote_entity_id=twin.remote_entity_id,
            remote_key=twin.remote_key,
        )
        SyncEvent.objects.filter(twin=twin).delete()
        SyncError.objects.filter(twin=twin, resolved_at__isnull=True).update(resolved_at=now)
        Twin.objects.filter(pk=twin.pk).update(
            local_entity_id="",
            remote_entity_id="",
            scan_done=F("scan_requested"),
            last_error="",
            remote_error="",
            claimed_until=None,
            claimed_by="",
        )
        if twin.local_entity_id or twin.remote_entity_id:
            SyncEvent.objects.create(
                connection_id=twin.connection_id,
                twin=twin,
                direction=SyncEvent.Direction.OUT,
                kind=SyncEvent.Kind.UNEXALATE,
                payload={
                    "entity_id": twin.local_entity_id or NO_ENTITY,
                    "peer_entity_id": twin.remote_entity_id,
                },
                next_attempt_at=now,
            )
            nudge.deliver(twin.connection_id)
        else:  # the other node never heard of it
            Twin.objects.filter(pk=twin.pk).delete()
    logger.info("Twin %s (%s) unexalated", twin_id, twin.local_key or twin.remote_key)
    return True


def connection_unexalate_all(*, connection: Connection, requested_by: str = "") -> int:
    """Clean-up tools: unexalate every twin of ``connection`` at once; returns how many ended.

    A twin whose change is being applied this very moment is skipped (run it again).
    """
    ended = 0
    ids = list(
        Twin.objects.filter(connection=connection).filter(live_twins()).values_list("pk", flat=True)
    )
    for twin_id in ids:
        try:
            twin_unexalate(twin=Twin(pk=twin_id), at_once=True, requested_by=requested_by)
        except SyncRefused:
            continue
        ended += 1
    return ended


def unexalate_receive(*, connection: Connection, twin: Twin | None) -> None:
    """The other node ended its twin: end ours at once (its events and errors go with it).

    Called by the receive stage inside its transaction; ``twin`` is None when this node
    has no twin for it (already ended): nothing to do, the message is still accepted.
    """
    if twin is None:
        return
    Twin.objects.filter(pk=twin.pk).delete()
    _audit("system", "unexalated", twin, "the remote node unexalated it")
    logger.info("Twin %s (%s) unexalated by the remote node", twin.pk, twin.local_key)


def unexalates_sweep() -> dict[str, int]:
    """End the requested twins whose queue drained; delete tombstones whose message went.

    Returns ``{"ended": n, "removed": n}``. Runs on the beat (``sync.unexalates_sweep``).
    """
    ended = removed = 0
    for ending in TwinEnding.objects.filter(ended_at__isnull=True).only("twin_id"):
        if twin_pending_changes(ending.twin_id) == (0, 0) and twin_end(twin_id=ending.twin_id):
            ended += 1
    waiting = SyncEvent.objects.filter(kind=SyncEvent.Kind.UNEXALATE).exclude(
        status=SyncEvent.Status.DONE
    )
    gone = list(
        Twin.objects.filter(ending__ended_at__isnull=False)
        .exclude(pk__in=waiting.values("twin_id"))
        .values_list("pk", flat=True)[:1000]
    )
    Twin.objects.filter(pk__in=gone).delete()
    removed = len(gone)
    return {"ended": ended, "removed": removed}


def _tasks():
    from .. import tasks

    return tasks


def _audit(actor: str, action: str, twin: Twin, detail: str) -> None:
    try:
        from audit.services import audit_record
    except ImportError:  # the audit app (issue 11) is not installed yet
        return
    try:
        audit_record(
            actor=actor or "system",
            action=action,
            target=f"{twin.local_key or '?'} ↔ {twin.remote_key or '?'}",
            detail=detail,
        )
    except Exception:  # noqa: BLE001 - the audit never stops an operation
        logger.exception("Could not record %s in the audit log", action)
