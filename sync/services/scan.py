"""Scan: read a twin's local entity and queue an outgoing replica when the other side lacks something.

**No echo** lives here: the comments and attachments the sync itself wrote from the other
side (the twin's :class:`~sync.models.MirroredItem` rows) are left out of every outgoing
replica (``rules.outgoing_replica``), and summary and description are sent only when they
differ from the values both sides last agreed on (``rules.outgoing_changes``). So a
change made by the sync produces no outgoing event, and nothing ever comes back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from connections.models import Connection
from connections.selectors import tracker_adapter_get
from trackers.errors import TrackerAuthenticationError, TrackerError, TransientTrackerError
from trackers.interface import TrackerAdapter
from trackers.replica import ReplicaInvalid, replica_validate

from .. import claims, nudge, rules
from ..models import MirroredItem, SyncError, SyncEvent, Twin
from . import failures
from .base import has_open_incoming, twin_status_refresh
from .deliver import deliver_now


def twin_scan(twin_id: int, *, adapter: TrackerAdapter | None = None) -> bool:
    """Read the twin's local entity and queue an outgoing replica if the other side lacks something.

    Runs only while the twin has no incoming event to apply (those go first, so what they
    write is known before we look). Returns True when an outgoing event was queued.
    Comments and attachments the sync wrote (the twin's mirrored items) are never sent;
    summary and description only when they differ from the values both sides agreed on.
    """
    twin = Twin.objects.select_related("connection").filter(pk=twin_id).first()
    if (
        twin is None
        or not twin.local_entity_id
        or twin.connection.status != Connection.Status.ACTIVE
    ):
        return False
    if not twin.needs_scan:
        return False
    if has_open_incoming(twin.pk):
        return False  # the apply task scans after it
    if not claims.claim(Twin, twin.pk):
        return False
    queued = False
    try:
        for _round in range(3):
            twin.refresh_from_db()
            requested = twin.scan_requested
            if requested <= twin.scan_done or has_open_incoming(twin.pk):
                break
            if MirroredItem.objects.filter(twin=twin, local_id="").exists():
                break  # an apply was interrupted: it reconciles first
            adapter = adapter or tracker_adapter_get()
            try:
                local = replica_validate(adapter.read_replica(twin.local_entity_id))
            except TrackerAuthenticationError as exc:
                failures.login_refused(connection=twin.connection, exc=exc)
                return queued
            except TransientTrackerError as exc:
                Twin.objects.filter(pk=twin.pk).update(
                    last_error=f"Reading {twin.local_key} failed, will retry: {exc}",
                    scan_nudged_at=timezone.now()
                    + timedelta(seconds=nudge.backoff_seconds(1, exc.retry_after)),
                )
                return queued
            except (TrackerError, ReplicaInvalid) as exc:
                if isinstance(exc, TrackerError) and failures.tracker_connection_error(
                    connection=twin.connection, exc=exc
                ):
                    return queued  # e.g. the journal is unreadable: one connection error
                with transaction.atomic():
                    Twin.objects.filter(pk=twin.pk).update(scan_done=requested)
                    if not SyncError.objects.filter(
                        twin=twin, event__isnull=True, resolved_at__isnull=True
                    ).exists():
                        failures.entity_error(
                            twin=twin,
                            event=None,
                            message=f"Reading {twin.local_key or 'the incident'} failed: {exc}",
                        )
                    twin_status_refresh(twin.pk)
                return queued
            queued = (
                _scan_commit(twin, local, requested, adapter.attachments_seen(twin.local_entity_id))
                or queued
            )
            claims.renew(Twin, twin.pk)
    except claims.ClaimLost:
        pass
    finally:
        claims.release(Twin, twin.pk)
    if Twin.objects.filter(
        pk=twin.pk, scan_requested__gt=F("scan_done")
    ).exists() and not has_open_incoming(twin.pk):
        nudge.scan(twin.pk, countdown=0.5)
    if queued:
        deliver_now(twin.connection_id)
    return queued


def _parse_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return max(x for x in (a, b) if x is not None) if (a or b) else None


def _echo_ids(twin: Twin) -> tuple[set[str], set[str]]:
    """Local ids of the comments and attachments the sync wrote on this twin (never sent back)."""
    comments, attachments = set(), set()
    for kind, local_id in (
        MirroredItem.objects.filter(twin=twin).exclude(local_id="").values_list("kind", "local_id")
    ):
        (comments if kind == MirroredItem.Kind.COMMENT else attachments).add(local_id)
    return comments, attachments


def _scan_commit(
    twin: Twin, local: dict, requested: int, seen: tuple[str, datetime | None] = ("", None)
) -> bool:
    """Compare the local snapshot with what was agreed; queue an outgoing event if needed.

    ``seen`` is what the read saw of the attachments (``TrackerAdapter.attachments_seen``:
    the change listing's marker and newest time): recorded like a listing's, so the next
    listing of the same attachments is not read again (issue 14: one read per change).
    """
    marker, attached = seen
    echo_comments, echo_attachments = _echo_ids(twin)
    out = rules.outgoing_replica(
        local, echo_comment_ids=echo_comments, echo_attachment_ids=echo_attachments
    )
    known = {"summary": twin.known_summary, "description": twin.known_description}
    changes = rules.outgoing_changes(out, known=known, last_sent=twin.last_sent_replica)
    with transaction.atomic():
        update = {
            "scan_done": requested,
            "last_seen_mod_count": local["mod_count"],
            # The change time this read covers: a later listing with the same sys_mod_count
            # and no newer time (e.g. an attachment that was already there) is not re-read.
            "last_listed_updated": _later(
                _later(twin.last_listed_updated, _parse_time(local["updated"])), attached
            ),
            "local_key": local["entity"]["key"] or twin.local_key,
            "local_url": local["entity"]["url"] or twin.local_url,
            "entity_type": local["entity"]["type"][:40],
            "last_error": "",
        }
        if marker:
            update["last_attachments_marker"] = marker
        if changes:
            update.update(
                known_summary=out["summary"],
                known_description=out["description"],
                last_sent_replica=out,
            )
            SyncEvent.objects.create(
                connection_id=twin.connection_id,
                twin=twin,
                direction=SyncEvent.Direction.OUT,
                kind=SyncEvent.Kind.REPLICA,
                payload={
                    "replica": out,
                    "changed": list(changes.fields),
                    "new_attachments": list(changes.attachment_ids),
                },
                next_attempt_at=timezone.now(),
            )
            nudge.deliver(twin.connection_id)
        Twin.objects.filter(pk=twin.pk).update(**update)
        twin_status_refresh(twin.pk)
    for k, v in update.items():
        if k != "scan_done":
            setattr(twin, k, v)
    return bool(changes)
