"""Receipt: messages from the remote node are checked, stored at most once, and answered at once.

Every message is checked against the protocol's schema (``sync.protocol``; replicas
against schema v1 too); a bad one is refused alone, with the reason, and nothing of it
is stored. The same event id again is accepted and ignored (unique per connection and
direction), so a sender may resend whatever it is unsure of. A replica becomes a queued
incoming event of its twin (created on the first one) and nudges the apply task; an
acknowledgement is applied at once.
"""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from connections.models import Connection

from .. import nudge
from ..models import SyncEvent, Twin
from ..protocol import NO_ENTITY, message_problem
from .base import state_for, twin_status_refresh
from .remote_errors import remote_failure_record, remote_retry_requested
from .unexalate import unexalate_receive


def messages_receive(*, connection: Connection, messages: list) -> tuple[list[str], list[dict]]:
    """Store incoming messages from the remote node of ``connection``; return (accepted ids, rejected).

    Each message is validated (replicas against schema v1) and stored at most once (the
    same event id again is accepted and ignored). A replica becomes a queued incoming
    event of its twin, the twin created on the first one; an acknowledgement is applied at
    once (the remote key and URL are recorded, the acked event is done). Rejected items are
    ``{"event_id": ..., "error": "..."}``; nothing of a rejected message is stored.
    """
    accepted: list[str] = []
    rejected: list[dict] = []
    twins_to_apply: set[int] = set()
    if not isinstance(messages, list):
        return [], [{"event_id": None, "error": "messages must be a list"}]
    for m in messages[: settings.SYNC_BATCH_SIZE * 4]:
        problem = message_problem(m)
        event_id = str(m.get("event_id")) if isinstance(m, dict) else None
        if problem:
            rejected.append({"event_id": event_id, "error": problem})
            continue
        try:
            with transaction.atomic():
                if SyncEvent.objects.filter(
                    connection=connection, direction=SyncEvent.Direction.IN, event_id=m["event_id"]
                ).exists():
                    # Sent again after we failed to apply it: its sender retried (issue 12).
                    remote_retry_requested(connection=connection, event_id=m["event_id"])
                    accepted.append(event_id)
                    continue
                twin = _twin_for_message(connection, m)
                if m["kind"] == SyncEvent.Kind.UNEXALATE:  # issue 12: the twin ends here too
                    unexalate_receive(connection=connection, twin=twin)
                    accepted.append(event_id)
                    continue
                if twin is None:
                    if m["kind"] != SyncEvent.Kind.REPLICA:
                        rejected.append(
                            {"event_id": event_id, "error": "no twin here for this acknowledgement"}
                        )
                        continue
                    ent = m["replica"]["entity"]
                    twin = Twin.objects.create(
                        connection=connection,
                        remote_entity_id=m["entity_id"],
                        remote_key=ent["key"],
                        remote_url=ent["url"][:1000],
                        entity_type=ent["type"][:40],
                    )
                    state_for(connection)
                if m["kind"] == SyncEvent.Kind.REPLICA:
                    _receive_replica(connection, twin, m)
                    twins_to_apply.add(twin.pk)
                else:
                    _receive_ack(connection, twin, m)
                accepted.append(event_id)
        except IntegrityError:
            # A concurrent receipt stored the same event or twin: it is there now.
            accepted.append(event_id) if SyncEvent.objects.filter(
                connection=connection, direction=SyncEvent.Direction.IN, event_id=m["event_id"]
            ).exists() else rejected.append({"event_id": event_id, "error": "conflict, send again"})
    for twin_id in twins_to_apply:
        nudge.apply(twin_id)
    return accepted, rejected


def _twin_for_message(connection: Connection, m: dict) -> Twin | None:
    if m["peer_entity_id"]:
        twin = Twin.objects.filter(
            connection=connection, local_entity_id=m["peer_entity_id"]
        ).first()
        if twin:
            return twin
    if m["entity_id"] == NO_ENTITY:
        return None
    return Twin.objects.filter(connection=connection, remote_entity_id=m["entity_id"]).first()


def _receive_replica(connection: Connection, twin: Twin, m: dict) -> None:
    ent = m["replica"]["entity"]
    updates = {}
    if not twin.remote_entity_id:
        updates["remote_entity_id"] = m["entity_id"]
    if ent["key"] and ent["key"] != twin.remote_key:
        updates["remote_key"] = ent["key"]
    if ent["url"] and ent["url"] != twin.remote_url:
        updates["remote_url"] = ent["url"][:1000]
    if updates:
        Twin.objects.filter(pk=twin.pk).update(**updates)
    SyncEvent.objects.create(
        event_id=m["event_id"],
        connection=connection,
        twin=twin,
        direction=SyncEvent.Direction.IN,
        kind=SyncEvent.Kind.REPLICA,
        seq=m["seq"],
        payload={"replica": m["replica"], "changed": m["changed"]},
        next_attempt_at=timezone.now(),
    )
    twin_status_refresh(twin.pk)


def _receive_ack(connection: Connection, twin: Twin, m: dict) -> None:
    ent = m["entity"]
    error = (m.get("error") or "")[:2000]
    if ent["id"] != NO_ENTITY:
        Twin.objects.filter(pk=twin.pk).update(
            remote_entity_id=twin.remote_entity_id or ent["id"],
            remote_key=ent["key"] or twin.remote_key,
            remote_url=ent["url"][:1000] or twin.remote_url,
        )
    Twin.objects.filter(pk=twin.pk).update(
        remote_error=error, remote_warning=(m.get("warning") or "")[:2000]
    )
    if not error:
        SyncEvent.objects.filter(
            connection=connection,
            twin=twin,
            direction=SyncEvent.Direction.OUT,
            event_id=m["acked_event_id"],
            status__in=[
                SyncEvent.Status.SENT,
                SyncEvent.Status.IN_PROGRESS,
                SyncEvent.Status.QUEUED,
            ],
        ).update(status=SyncEvent.Status.DONE, done_at=timezone.now(), last_error="")
    SyncEvent.objects.create(
        event_id=m["event_id"],
        connection=connection,
        twin=twin,
        direction=SyncEvent.Direction.IN,
        kind=SyncEvent.Kind.ACK,
        seq=m["seq"],
        payload={"entity": ent, "acked_event_id": m["acked_event_id"], "error": error},
        status=SyncEvent.Status.DONE,
        done_at=timezone.now(),
    )
    # Issue 12: a failure on the remote node is an error on this node too (or clears it).
    remote_failure_record(
        twin=twin,
        acked_event_id=m["acked_event_id"],
        error=error,
        code=m.get("error_code") or "",
    )
