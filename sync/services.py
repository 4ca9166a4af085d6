"""Everything the sync engine writes or calls out for: exalate, detect, deliver, receive, apply, errors.

How the pieces fit (issue #5):

* **Exalate** (:func:`entity_exalate`) records an :class:`ExalateRequest`; the worker resolves
  the number to the incident, gets or creates the one twin of (connection, incident) and
  scans it (:func:`twin_scan`), which queues an outgoing replica event.
* **Delivery** (:func:`connection_deliver`) sends a connection's due outgoing events in
  order, in batches, over the signed node API (public connections), straight into the
  peer row's inbox (local connections), or in the answer to the remote's poll (when the
  remote has no URL); a node without URL polls (:func:`connection_poll`).
* **Receipt** (:func:`messages_receive`) validates each message, stores it at most once
  (unique event id) and answers at once; acknowledgements are applied on receipt.
* **Apply** (:func:`twin_apply`) applies a twin's incoming replicas strictly in order with
  the Basic rules, exactly once: an intent row is committed before every tracker write
  and reconciled on retry (correlation id for the incident, body + author for a comment,
  file name + sha256 for an attachment), then acknowledges with the local key and URL.
* **Change detection** (:func:`connection_detect_changes`, :func:`webhook_receive`) marks
  twins whose incident changed; their scan sends only what the other side lacks and never
  what the sync wrote itself (no echo).
* **Failures**: transient errors retry with exponential backoff honouring Retry-After,
  every attempt recorded on the event row; permanent ones become an entity-level
  :class:`SyncError` with Retry; a refused login to the instance becomes one
  connection-level error and puts the connection in Error.

No database transaction is ever held across an HTTP call: each step commits before the
next tracker or node call. Celery work is enqueued with ``transaction.on_commit``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
import re
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from connections.models import Connection

from . import claims, rules
from .adapters import (
    AmbiguousEntityKey,
    TrackerAdapter,
    TrackerAuthenticationError,
    TrackerError,
    TrackerNotFound,
    TransientTrackerError,
)
from .models import ConnectionSyncState, ExalateRequest, MirroredItem, SyncError, SyncEvent, Twin
from .replica import ReplicaInvalid, replica_validate

logger = logging.getLogger(__name__)

PROTOCOL = 1
MESSAGES_PATH = "/api/node/v1/sync/messages"
POLL_PATH = "/api/node/v1/sync/poll"
KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
CHUNK = 65536
#: Seconds an event handed to a polling node waits for its confirmation before it is handed out again.
POLL_HANDOUT_LEASE = 60.0
#: Largest attachment a node without URL may push (ServiceNow's default attachment cap, 1024 MB).
MAX_PUSHED_BYTES = 1024 * 1024 * 1024
#: Attempts after which a sha256 mismatch of attachment bytes stops being retried.
SHA_MISMATCH_ATTEMPTS = 3

OPEN_EVENT_STATUSES = (SyncEvent.Status.QUEUED, SyncEvent.Status.IN_PROGRESS)
#: Start of the retry message while a remote node without URL has not pushed attachment bytes yet.
WAITING_FOR_PUSH = "Waiting for the remote node (it has no URL) to push"
#: ``entity_id`` of an error acknowledgement sent before the local entity could be created.
NO_ENTITY = "-"


class SyncRefused(ValueError):
    """Bad input or state that an admin must fix; ``str(exc)`` says what, in their words."""


class PermanentSyncError(Exception):
    """An event that will fail the same way on every attempt; becomes an entity-level error."""


class TransientSyncError(Exception):
    """Try again later (e.g. attachment bytes not available yet). ``retry_after`` in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------


def _enqueue(task_name: str, *args, countdown: float | None = None) -> None:
    """Send Celery task ``task_name`` after the current transaction commits (never before)."""

    def send():
        from . import tasks

        task = getattr(tasks, task_name)
        try:
            if countdown:
                task.apply_async(args=args, countdown=countdown)
            else:
                task.apply_async(args=args)
        except Exception:  # the broker is down: the drain task picks the row up later
            logger.warning(
                "Could not enqueue %s%r; the drain task will pick it up.", task_name, args
            )

    transaction.on_commit(send)


def backoff_seconds(attempts: int, retry_after: float | None = None) -> float:
    """Delay before attempt ``attempts + 1``: base·2^(attempts-1), ±20 % jitter, capped; at least ``retry_after``."""
    base = settings.SYNC_RETRY_BASE * (2 ** max(0, min(attempts - 1, 20)))
    delay = min(settings.SYNC_RETRY_MAX, base) * random.uniform(0.8, 1.2)
    if retry_after:
        delay = max(delay, min(float(retry_after), 3600.0))
    return delay


def _adapter() -> TrackerAdapter:
    from .adapters import adapter_for_node

    return adapter_for_node()


def _local_types(adapter: TrackerAdapter) -> tuple[str, ...]:
    return rules.local_entity_types(
        getattr(adapter, "tracker", "") or "servicenow", adapter.entity_types
    )


def state_for(connection: Connection) -> ConnectionSyncState:
    """The connection's sync state row, created with a watermark of now on first use."""
    state, _ = ConnectionSyncState.objects.get_or_create(
        connection=connection, defaults={"watermark": timezone.now() - timedelta(seconds=1)}
    )
    return state


# --------------------------------------------------------------------------------------
# Errors people can see
# --------------------------------------------------------------------------------------


def connection_error_raise(*, connection: Connection, message: str) -> SyncError:
    """Record ONE open connection-level error (or count another occurrence) and put the
    connection in Error with ``last_error``. Tracker work of the connection pauses until
    an admin retries it on the Errors page."""
    now = timezone.now()
    with transaction.atomic():
        error = SyncError.objects.filter(
            level=SyncError.Level.CONNECTION, connection=connection, resolved_at__isnull=True
        ).first()
        if error:
            SyncError.objects.filter(pk=error.pk).update(
                occurrences=F("occurrences") + 1, message=message, last_seen_at=now
            )
        else:
            try:
                with transaction.atomic():
                    error = SyncError.objects.create(
                        level=SyncError.Level.CONNECTION, connection=connection, message=message
                    )
            except IntegrityError:  # another worker recorded it a moment ago
                error = SyncError.objects.get(
                    level=SyncError.Level.CONNECTION,
                    connection=connection,
                    resolved_at__isnull=True,
                )
        Connection.objects.filter(pk=connection.pk).exclude(
            status__in=[Connection.Status.DEACTIVATED, Connection.Status.PENDING]
        ).update(status=Connection.Status.ERROR, last_error=message, last_error_at=now)
    logger.warning("Connection %s is in Error: %s", connection.pk, message)
    return error


def _entity_error(*, twin: Twin, event: SyncEvent | None, message: str) -> None:
    """Record an entity-level error for ``twin`` (and ``event``); called inside a transaction."""
    SyncError.objects.create(
        level=SyncError.Level.ENTITY,
        connection_id=twin.connection_id,
        twin=twin,
        event=event,
        message=message,
    )
    Twin.objects.filter(pk=twin.pk).update(last_error=message)


def error_resolve(*, error: SyncError) -> None:
    """Mark ``error`` resolved without retrying (the admin ignores it). Idempotent."""
    SyncError.objects.filter(pk=error.pk, resolved_at__isnull=True).update(
        resolved_at=timezone.now()
    )
    if error.twin_id:
        twin_status_refresh(error.twin_id)


def error_retry(*, error: SyncError) -> None:
    """Resolve ``error`` and retry what failed: the twin's failed events, or the whole connection."""
    if error.level == SyncError.Level.CONNECTION and error.connection_id:
        connection_retry(connection=error.connection)
    elif error.twin_id:
        twin_retry(twin=error.twin)
    else:
        error_resolve(error=error)


def connection_retry(*, connection: Connection) -> None:
    """Resolve the connection's open connection-level error, make it Active again and resume its queue."""
    now = timezone.now()
    with transaction.atomic():
        SyncError.objects.filter(
            level=SyncError.Level.CONNECTION, connection=connection, resolved_at__isnull=True
        ).update(resolved_at=now)
        Connection.objects.filter(pk=connection.pk, status=Connection.Status.ERROR).update(
            status=Connection.Status.ACTIVE, last_error=""
        )
        SyncEvent.objects.filter(connection=connection, status__in=OPEN_EVENT_STATUSES).update(
            next_attempt_at=now
        )
        ExalateRequest.objects.filter(
            connection=connection, status=ExalateRequest.Status.QUEUED
        ).update(next_attempt_at=now)
        _enqueue("drain")


def twin_retry(*, twin: Twin) -> None:
    """Retry a twin after an entity-level error: failed events go back to the queue (attempts
    reset), the twin is scanned again, and its open errors are resolved."""
    now = timezone.now()
    with transaction.atomic():
        SyncError.objects.filter(twin=twin, resolved_at__isnull=True).update(resolved_at=now)
        SyncEvent.objects.filter(twin=twin, status=SyncEvent.Status.ERROR).update(
            status=SyncEvent.Status.QUEUED, attempts=0, next_attempt_at=now, last_error=""
        )
        Twin.objects.filter(pk=twin.pk).update(last_error="", claimed_until=None, claimed_by="")
        twin_request_scan(twin_ids=[twin.pk])
        twin_status_refresh(twin.pk)
        _enqueue("apply", twin.pk)
        _enqueue("deliver", str(twin.connection_id))


# --------------------------------------------------------------------------------------
# Twin status
# --------------------------------------------------------------------------------------


def twin_status_refresh(twin_id: int) -> str:
    """Recompute and store the twin's status from its events and open errors; return it.

    Error: an event failed for good, an open entity error, or the remote reported one.
    Synchronized: nothing open and both sides known. Queued: every open event is still
    waiting for its first attempt. In progress otherwise.
    """
    twin = (
        Twin.objects.filter(pk=twin_id)
        .values("local_entity_id", "remote_entity_id", "remote_url")
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
    remote_error = Twin.objects.filter(pk=twin_id).exclude(remote_error="").exists()
    if has_error or remote_error:
        status = Twin.Status.ERROR
    elif not open_events and twin["local_entity_id"] and twin["remote_entity_id"]:
        status = Twin.Status.SYNCHRONIZED
    elif open_events and all(s == SyncEvent.Status.QUEUED and a == 0 for s, a in open_events):
        status = Twin.Status.QUEUED
    else:
        status = Twin.Status.IN_PROGRESS
    fields = {"status": status}
    if status == Twin.Status.SYNCHRONIZED:
        fields["last_synced_at"] = timezone.now()
    Twin.objects.filter(pk=twin_id).exclude(status=status).update(**fields)
    return status


# --------------------------------------------------------------------------------------
# Exalate
# --------------------------------------------------------------------------------------


def entity_exalate(*, connection: Connection, key: str, requested_by: str = "") -> ExalateRequest:
    """Ask the worker to exalate the entity with number ``key`` on ``connection``.

    Returns the ExalateRequest the status page follows. Exalating an incident that already
    has a twin on this connection makes no second twin (and no second remote incident):
    the worker finds the twin and scans it for changes.

    Raises SyncRefused when ``key`` is not an entity number or the connection is not Active.
    """
    key = (key or "").strip()
    if not KEY_RE.match(key):
        raise SyncRefused(
            "Enter an incident number such as INC0010001 (letters, digits, '-', '_' or '.', at most 64)."
        )
    if connection.status != Connection.Status.ACTIVE:
        raise SyncRefused(
            f"Connection {connection.name} is {connection.get_status_display().lower()}: "
            "only an active connection can exalate."
        )
    with transaction.atomic():
        request = ExalateRequest.objects.create(
            connection=connection,
            key=key,
            requested_by=requested_by[:150],
            next_attempt_at=timezone.now(),
        )
        _enqueue("exalate", str(request.pk))
    return request


def exalate_request_process(request_id) -> None:
    """Resolve an exalate request on the worker: find the incident, get or create its twin, scan it.

    Not found or ambiguous numbers end the request with an error the admin reads on the
    status page; transient tracker errors retry with backoff; a refused login is a
    connection-level error.
    """
    request = ExalateRequest.objects.select_related("connection").filter(pk=request_id).first()
    if request is None or request.status != ExalateRequest.Status.QUEUED:
        return
    connection = request.connection
    if connection.status != Connection.Status.ACTIVE:
        return
    if not claims.claim(ExalateRequest, request.pk):
        return
    try:
        ExalateRequest.objects.filter(pk=request.pk).update(attempts=F("attempts") + 1)
        try:
            adapter = _adapter()
            ref = adapter.find_entity(request.key)
        except TrackerNotFound:
            _request_fail(
                request, f"No incident with number {request.key} was found in this node's instance."
            )
            return
        except AmbiguousEntityKey as exc:
            _request_fail(
                request,
                f"{len(exc.candidates)} incidents have number {request.key} (sys_id "
                + ", ".join(exc.candidates[:5])
                + "): numbers are not unique in this instance; exalate by trigger instead.",
            )
            return
        except TrackerAuthenticationError as exc:
            connection_error_raise(
                connection=connection, message=f"The instance refused this node's login: {exc}"
            )
            _request_retry_later(request, str(exc), None)
            return
        except TransientTrackerError as exc:
            _request_retry_later(request, str(exc), exc.retry_after)
            return
        except TrackerError as exc:
            _request_fail(request, str(exc))
            return
        with transaction.atomic():
            twin, _ = Twin.objects.get_or_create(
                connection=connection,
                local_entity_id=ref.id,
                defaults={"local_key": ref.key, "local_url": ref.url},
            )
            Twin.objects.filter(pk=twin.pk).update(local_key=ref.key, local_url=ref.url)
            state_for(connection)
            ExalateRequest.objects.filter(pk=request.pk).update(
                status=ExalateRequest.Status.DONE, twin=twin, error=""
            )
            twin_request_scan(twin_ids=[twin.pk], nudge=False)
            twin_status_refresh(twin.pk)
    finally:
        claims.release(ExalateRequest, request.pk)
    twin_scan(twin.pk, adapter=adapter)


def _request_fail(request: ExalateRequest, message: str) -> None:
    ExalateRequest.objects.filter(pk=request.pk).update(
        status=ExalateRequest.Status.ERROR, error=message
    )


def _request_retry_later(request: ExalateRequest, message: str, retry_after: float | None) -> None:
    delay = backoff_seconds(request.attempts + 1, retry_after)
    ExalateRequest.objects.filter(pk=request.pk).update(
        error=message, next_attempt_at=timezone.now() + timedelta(seconds=delay)
    )
    if delay < 120:
        with transaction.atomic():
            _enqueue("exalate", str(request.pk), countdown=delay)


# --------------------------------------------------------------------------------------
# Change detection and scans
# --------------------------------------------------------------------------------------


def twin_request_scan(
    *, twin_ids: Iterable[int], mod_count: int | None = None, updated=None, nudge: bool = True
) -> list[int]:
    """Mark twins as needing a scan of their local entity; return the ids marked.

    With ``mod_count`` and ``updated`` (from a change listing), a twin is skipped when
    that ``sys_mod_count`` was already scanned or announced and no newer change time was
    announced: the (sys_id, sys_mod_count) de-duplication of the overlap window, widened
    by the time because a new attachment changes no ``sys_mod_count``. ``nudge`` enqueues
    a scan task per marked twin.
    """
    marked = []
    now = timezone.now()
    for twin_id in twin_ids:
        qs = Twin.objects.filter(pk=twin_id)
        update = {"scan_requested": F("scan_requested") + 1, "scan_nudged_at": now}
        if mod_count is not None:
            newer_count = (
                Q(last_seen_mod_count__isnull=True) | Q(last_seen_mod_count__lt=mod_count)
            ) & (Q(scan_mod_count__isnull=True) | Q(scan_mod_count__lt=mod_count))
            if updated is not None:
                newer = (
                    newer_count
                    | Q(last_listed_updated__isnull=True)
                    | Q(last_listed_updated__lt=updated)
                )
                update["last_listed_updated"] = updated
            else:
                newer = newer_count
            qs = qs.filter(newer)
            update["scan_mod_count"] = mod_count
        if qs.update(**update):
            marked.append(twin_id)
            if nudge:
                _enqueue("scan", twin_id)
    return marked


def webhook_receive(*, entity_id: str, mod_count: int | None = None) -> int:
    """A ServiceNow business rule announced that incident ``entity_id`` changed.

    Marks every twin of that incident on an active connection for a scan (announcements
    are hints: the scan re-reads the incident). Returns the number of twins marked.
    """
    ids = list(
        Twin.objects.filter(
            local_entity_id=entity_id, connection__status=Connection.Status.ACTIVE
        ).values_list("pk", flat=True)
    )
    with transaction.atomic():
        return len(twin_request_scan(twin_ids=ids, mod_count=mod_count))


def connection_detect_changes(connection_id) -> int:
    """Poll the instance for incidents changed since the connection's watermark.

    Lists changes from ``watermark - CHANGE_POLL_OVERLAP``, keeps those with a twin on
    this connection, marks them for a scan unless their (sys_id, sys_mod_count) was seen,
    and only then advances the watermark to the newest ``updated`` seen. Returns the
    number of twins marked. Errors leave the watermark where it was.
    """
    connection = Connection.objects.filter(
        pk=connection_id, status=Connection.Status.ACTIVE
    ).first()
    if (
        connection is None
        or not Twin.objects.filter(connection=connection).exclude(local_entity_id="").exists()
    ):
        return 0
    state = state_for(connection)
    if not claims.claim(ConnectionSyncState, state.pk, prefix="detect_", ttl=60):
        return 0
    marked: list[int] = []
    try:
        since = state.watermark or (
            timezone.now() - timedelta(seconds=settings.CHANGE_POLL_INTERVAL)
        )
        try:
            changed = _adapter().list_changed(
                since=since, overlap_seconds=settings.CHANGE_POLL_OVERLAP
            )
        except TrackerAuthenticationError as exc:
            connection_error_raise(
                connection=connection, message=f"The instance refused this node's login: {exc}"
            )
            return 0
        except TrackerError as exc:
            logger.info("Change detection on %s failed, will retry: %s", connection.pk, exc)
            return 0
        by_id: dict[str, tuple[int, datetime]] = {}
        newest = state.watermark
        for c in changed:
            mc, upd = by_id.get(c.id, (-1, c.updated))
            by_id[c.id] = (max(mc, c.mod_count), max(upd, c.updated))
            if newest is None or c.updated > newest:
                newest = c.updated
        ids = list(by_id)
        with transaction.atomic():
            for start in range(0, len(ids), 500):
                rows = Twin.objects.filter(
                    connection=connection, local_entity_id__in=ids[start : start + 500]
                ).values_list("pk", "local_entity_id")
                for pk, entity_id in rows:
                    mod_count, updated = by_id[entity_id]
                    marked += twin_request_scan(twin_ids=[pk], mod_count=mod_count, updated=updated)
            ConnectionSyncState.objects.filter(pk=state.pk).update(
                watermark=newest, last_detect_at=timezone.now()
            )
    finally:
        claims.release(ConnectionSyncState, state.pk, prefix="detect_")
    return len(marked)


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
    if _has_open_incoming(twin.pk):
        return False  # the apply task scans after it
    if not claims.claim(Twin, twin.pk):
        return False
    queued = False
    try:
        for _round in range(3):
            twin.refresh_from_db()
            requested = twin.scan_requested
            if requested <= twin.scan_done or _has_open_incoming(twin.pk):
                break
            if MirroredItem.objects.filter(twin=twin, local_id="").exists():
                break  # an apply was interrupted: it reconciles first
            adapter = adapter or _adapter()
            try:
                local = replica_validate(adapter.read_replica(twin.local_entity_id))
            except TrackerAuthenticationError as exc:
                connection_error_raise(
                    connection=twin.connection,
                    message=f"The instance refused this node's login: {exc}",
                )
                return queued
            except TransientTrackerError as exc:
                Twin.objects.filter(pk=twin.pk).update(
                    last_error=f"Reading {twin.local_key} failed, will retry: {exc}",
                    scan_nudged_at=timezone.now()
                    + timedelta(seconds=backoff_seconds(1, exc.retry_after)),
                )
                return queued
            except (TrackerError, ReplicaInvalid) as exc:
                with transaction.atomic():
                    Twin.objects.filter(pk=twin.pk).update(scan_done=requested)
                    if not SyncError.objects.filter(
                        twin=twin, event__isnull=True, resolved_at__isnull=True
                    ).exists():
                        _entity_error(
                            twin=twin,
                            event=None,
                            message=f"Reading {twin.local_key or 'the incident'} failed: {exc}",
                        )
                    twin_status_refresh(twin.pk)
                return queued
            queued = _scan_commit(twin, local, requested) or queued
            claims.renew(Twin, twin.pk)
    except claims.ClaimLost:
        pass
    finally:
        claims.release(Twin, twin.pk)
    if Twin.objects.filter(
        pk=twin.pk, scan_requested__gt=F("scan_done")
    ).exists() and not _has_open_incoming(twin.pk):
        with transaction.atomic():
            _enqueue("scan", twin.pk, countdown=0.5)
    if queued:
        _deliver_now(twin.connection_id)
    return queued


def _deliver_now(connection_id) -> None:
    """Deliver at once from this task (saves a broker round trip); the nudge sent on
    commit remains the fallback, and a delivery already running picks the events up."""
    try:
        connection_deliver(connection_id)
    except Exception:  # noqa: BLE001 - the queued nudge and the drain retry it
        logger.exception("Immediate delivery on %s failed; it will be retried.", connection_id)


def _parse_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return max(x for x in (a, b) if x is not None) if (a or b) else None


def _has_open_incoming(twin_id: int) -> bool:
    return SyncEvent.objects.filter(
        twin_id=twin_id, direction=SyncEvent.Direction.IN, status__in=OPEN_EVENT_STATUSES
    ).exists()


def _echo_ids(twin: Twin) -> tuple[set[str], set[str]]:
    comments, attachments = set(), set()
    for kind, local_id in (
        MirroredItem.objects.filter(twin=twin).exclude(local_id="").values_list("kind", "local_id")
    ):
        (comments if kind == MirroredItem.Kind.COMMENT else attachments).add(local_id)
    return comments, attachments


def _scan_commit(twin: Twin, local: dict, requested: int) -> bool:
    """Compare the local snapshot with what was agreed; queue an outgoing event if needed."""
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
            "last_listed_updated": _later(twin.last_listed_updated, _parse_time(local["updated"])),
            "local_key": local["entity"]["key"] or twin.local_key,
            "local_url": local["entity"]["url"] or twin.local_url,
            "entity_type": local["entity"]["type"][:40],
            "last_error": "",
        }
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
            _enqueue("deliver", str(twin.connection_id))
        Twin.objects.filter(pk=twin.pk).update(**update)
        twin_status_refresh(twin.pk)
    for k, v in update.items():
        if k != "scan_done":
            setattr(twin, k, v)
    return bool(changes)


# --------------------------------------------------------------------------------------
# Messages between nodes
# --------------------------------------------------------------------------------------


def _message(event: SyncEvent, twin: Twin) -> dict:
    """The wire form of an outgoing event (protocol 1)."""
    return {
        "event_id": str(event.event_id),
        "seq": event.pk,
        "kind": event.kind,
        "entity_id": twin.local_entity_id or NO_ENTITY,
        "peer_entity_id": twin.remote_entity_id,
        **event.payload,
    }


def _outgoing_batch(connection: Connection, *, limit: int | None = None) -> list[SyncEvent]:
    """The next due outgoing events of ``connection``, in order; a twin's events stop at its
    first event that is failed or not yet due (order per twin is kept)."""
    limit = limit or settings.SYNC_BATCH_SIZE
    now = timezone.now()
    candidates = (
        SyncEvent.objects.filter(
            connection=connection,
            direction=SyncEvent.Direction.OUT,
            status__in=[*OPEN_EVENT_STATUSES, SyncEvent.Status.ERROR],
        )
        .select_related("twin")
        .order_by("id")[: limit * 4]
    )
    blocked: set[int] = set()
    batch: list[SyncEvent] = []
    for e in candidates:
        if e.twin_id in blocked:
            continue
        if e.status == SyncEvent.Status.ERROR or (e.next_attempt_at and e.next_attempt_at > now):
            blocked.add(e.twin_id)
            continue
        batch.append(e)
        if len(batch) >= limit:
            break
    return batch


def max_message_bytes() -> int:
    """Largest JSON body a node accepts (Django's DATA_UPLOAD_MAX_MEMORY_SIZE), less room for the envelope."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2_621_440
    return max(64_000, limit - 16_000)


def _fit_batch(batch: list[SyncEvent]) -> list[SyncEvent]:
    """The leading events of ``batch`` whose messages fit in one request body.

    An event whose message alone is too large can never be delivered: it fails for good
    with an entity-level error that says so (the twin's later events wait behind it).
    """
    limit = max_message_bytes()
    fitted: list[SyncEvent] = []
    total = 0
    for e in batch:
        size = len(
            json.dumps(_message(e, e.twin), separators=(",", ":"), ensure_ascii=False).encode()
        )
        if size > limit:
            if fitted:
                break
            with transaction.atomic():
                message = (
                    f"This change is {size / 1e6:.1f} MB as one message, more than the "
                    f"{limit / 1e6:.1f} MB a node accepts (DATA_UPLOAD_MAX_MEMORY_SIZE)."
                )
                SyncEvent.objects.filter(pk=e.pk).update(
                    status=SyncEvent.Status.ERROR, last_error=message
                )
                _entity_error(twin=e.twin, event=e, message=message)
                twin_status_refresh(e.twin_id)
            return []
        if fitted and total + size > limit:
            break
        fitted.append(e)
        total += size
    return fitted


def _mark_handed_out(batch: list[SyncEvent], *, lease: float = 0) -> None:
    ids = [e.pk for e in batch]
    update = {"status": SyncEvent.Status.IN_PROGRESS, "attempts": F("attempts") + 1}
    if lease:
        update["next_attempt_at"] = timezone.now() + timedelta(seconds=lease)
    SyncEvent.objects.filter(pk__in=ids).update(**update)
    for e in batch:
        e.attempts += 1


def _delivery_result(
    batch: list[SyncEvent], accepted: Iterable[str], rejected: Iterable[dict]
) -> None:
    """Record the remote's answer to a batch: accepted events are sent (acks done), rejected ones fail."""
    by_id = {str(e.event_id): e for e in batch}
    accepted_ids = {a for a in accepted if a in by_id}
    rejected_map = {
        r.get("event_id"): str(r.get("error") or "refused")
        for r in rejected
        if r.get("event_id") in by_id
    }
    now = timezone.now()
    twins = set()
    with transaction.atomic():
        for event_id in accepted_ids:
            e = by_id[event_id]
            status = (
                SyncEvent.Status.SENT if e.kind == SyncEvent.Kind.REPLICA else SyncEvent.Status.DONE
            )
            SyncEvent.objects.filter(pk=e.pk, status=SyncEvent.Status.IN_PROGRESS).update(
                status=status,
                last_error="",
                done_at=now if status == SyncEvent.Status.DONE else None,
            )
            twins.add(e.twin_id)
        for event_id, message in rejected_map.items():
            e = by_id[event_id]
            SyncEvent.objects.filter(pk=e.pk).update(
                status=SyncEvent.Status.ERROR, last_error=message[:2000]
            )
            _entity_error(
                twin=e.twin, event=e, message=f"The remote node refused this change: {message}"
            )
            twins.add(e.twin_id)
        leftover = [
            e.pk
            for e in batch
            if str(e.event_id) not in accepted_ids and str(e.event_id) not in rejected_map
        ]
        if leftover:  # not mentioned in the answer: try again later
            SyncEvent.objects.filter(pk__in=leftover, status=SyncEvent.Status.IN_PROGRESS).update(
                status=SyncEvent.Status.QUEUED,
                next_attempt_at=now + timedelta(seconds=settings.SYNC_RETRY_BASE),
            )
        for twin_id in twins:
            twin_status_refresh(twin_id)


def _delivery_failed(
    connection: Connection, batch: list[SyncEvent], message: str, retry_after: float | None
) -> float:
    """Put a batch back in the queue after a transient failure; return the delay in seconds."""
    attempts = max(e.attempts for e in batch)
    delay = backoff_seconds(attempts, retry_after)
    with transaction.atomic():
        SyncEvent.objects.filter(pk__in=[e.pk for e in batch]).update(
            status=SyncEvent.Status.QUEUED,
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            last_error=message[:2000],
        )
        for twin_id in {e.twin_id for e in batch}:
            twin_status_refresh(twin_id)
        _enqueue("deliver", str(connection.pk), countdown=delay)
    return delay


def connection_deliver(connection_id) -> int:
    """Deliver the connection's due outgoing events; return how many the remote accepted.

    Public connections POST batches to the remote's ``/api/node/v1/sync/messages``; local
    connections store them in the peer row's inbox directly; a node without URL polls
    (:func:`connection_poll`); when the *remote* has no URL nothing is sent: its poll
    collects the events. Batches go in order; one delivery per connection at a time
    (lease on the connection's sync state).
    """
    connection = Connection.objects.select_related("local_peer").filter(pk=connection_id).first()
    if connection is None or connection.status not in (
        Connection.Status.ACTIVE,
        Connection.Status.ERROR,
    ):
        return 0
    if connection.type != Connection.Type.LOCAL:
        if connection.polls_remote:
            return connection_poll(connection.pk)
        if not connection.remote_url:
            return 0
    state = state_for(connection)
    if not claims.claim(ConnectionSyncState, state.pk, prefix="deliver_"):
        return 0
    delivered = 0
    try:
        for _round in range(100):
            batch = _outgoing_batch(connection)
            if connection.type != Connection.Type.LOCAL:
                batch = _fit_batch(batch)
            if not batch:
                break
            _mark_handed_out(batch)
            messages = [_message(e, e.twin) for e in batch]
            if connection.type == Connection.Type.LOCAL:
                if connection.local_peer is None:
                    _delivery_failed(
                        connection, batch, "The local connection has no peer row.", None
                    )
                    break
                accepted, rejected = messages_receive(
                    connection=connection.local_peer, messages=messages
                )
            else:
                try:
                    accepted, rejected = _post_messages(connection, messages)
                except _DeliveryRetry as exc:
                    _delivery_failed(connection, batch, str(exc), exc.retry_after)
                    break
            _delivery_result(batch, accepted, rejected)
            delivered += len(accepted)
            claims.renew(ConnectionSyncState, state.pk, prefix="deliver_")
    except claims.ClaimLost:
        pass
    finally:
        claims.release(ConnectionSyncState, state.pk, prefix="deliver_")
    if delivered:
        Connection.objects.filter(pk=connection.pk).update(last_synced_at=timezone.now())
    return delivered


class _DeliveryRetry(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def _remote_call(connection: Connection, path: str, body: dict) -> dict:
    """POST ``body`` to the remote node; map transport errors to retry / connection error."""
    from connections.transport import (
        NodeRequestRejected,
        NodeTransportError,
        NodeUnreachable,
        node_request,
    )

    try:
        response = node_request(connection, "POST", path, json=body)
        try:
            return response.json()
        except ValueError:
            raise _DeliveryRetry(
                f"The remote node answered {path} with something that is not JSON."
            ) from None
    except NodeUnreachable as exc:
        raise _DeliveryRetry(exc.message, exc.retry_after) from None
    except NodeRequestRejected as exc:
        if exc.status in (401, 403):
            connection_error_raise(
                connection=connection,
                message=f"The remote node refused this node's signed request ({exc.status}): {exc.message}",
            )
        raise _DeliveryRetry(
            f"The remote node refused the request ({exc.status}): {exc.message}"
        ) from None
    except NodeTransportError as exc:
        connection_error_raise(connection=connection, message=exc.message)
        raise _DeliveryRetry(exc.message) from None


def _post_messages(connection: Connection, messages: list[dict]) -> tuple[list[str], list[dict]]:
    answer = _remote_call(connection, MESSAGES_PATH, {"protocol": PROTOCOL, "messages": messages})
    return list(answer.get("accepted") or []), list(answer.get("rejected") or [])


def connection_poll(connection_id) -> int:
    """Exchange messages with the remote node from a node that has no URL (private connection).

    Each round sends this node's due outgoing events and the ids of the messages stored
    from the previous answer (``confirm``); the remote answers with its own waiting
    messages, which are stored here. Rounds continue until both sides have nothing left.
    Returns the number of messages received.
    """
    connection = Connection.objects.filter(pk=connection_id, polls_remote=True).first()
    if connection is None or connection.status not in (
        Connection.Status.ACTIVE,
        Connection.Status.ERROR,
    ):
        return 0
    state = state_for(connection)
    if not claims.claim(ConnectionSyncState, state.pk, prefix="poll_", ttl=60):
        return 0
    received = 0
    confirm: list[str] = []
    rejected_back: list[dict] = []
    try:
        for _round in range(50):
            batch = _fit_batch(_outgoing_batch(connection))
            if batch:
                _mark_handed_out(batch)
                _push_attachments(connection, batch)
            body = {
                "protocol": PROTOCOL,
                "messages": [_message(e, e.twin) for e in batch],
                "confirm": confirm,
                "confirm_rejected": rejected_back,
            }
            try:
                answer = _remote_call(connection, POLL_PATH, body)
            except _DeliveryRetry as exc:
                if batch:
                    _delivery_failed(connection, batch, str(exc), exc.retry_after)
                break
            if batch:
                _delivery_result(batch, answer.get("accepted") or [], answer.get("rejected") or [])
            _push_requested(connection, answer.get("need_attachments"))
            incoming = answer.get("messages") or []
            if not isinstance(incoming, list):
                incoming = []
            accepted, rejected = messages_receive(connection=connection, messages=incoming)
            received += len(accepted)
            confirm, rejected_back = accepted, rejected
            claims.renew(ConnectionSyncState, state.pk, prefix="poll_", ttl=60)
            if not batch and not incoming and not confirm and not rejected_back:
                break
        ConnectionSyncState.objects.filter(pk=state.pk).update(last_poll_at=timezone.now())
    except claims.ClaimLost:
        pass
    finally:
        claims.release(ConnectionSyncState, state.pk, prefix="poll_")
    return received


def poll_answer(*, connection: Connection, body: dict) -> dict:
    """Answer a poll from a remote node without URL (this side has the URL).

    Stores the messages it sent, records its confirmations of what we handed out before,
    and hands out our next due outgoing events (each handed out again after
    :data:`POLL_HANDOUT_LEASE` seconds unless confirmed). Returns
    ``{"accepted": [...], "rejected": [...], "messages": [...], "need_attachments":
    [{"entity_id", "attachment_id"}]}`` (bytes we wait for, which the poller pushes).
    """
    accepted, rejected = messages_receive(
        connection=connection, messages=body.get("messages") or []
    )
    confirmed = [str(x) for x in body.get("confirm") or [] if isinstance(x, str)]
    refused = [r for r in body.get("confirm_rejected") or [] if isinstance(r, dict)]
    if confirmed or refused:
        handed = list(
            SyncEvent.objects.filter(
                connection=connection,
                direction=SyncEvent.Direction.OUT,
                event_id__in=[
                    _uuid_or_none(x)
                    for x in confirmed + [r.get("event_id") for r in refused]
                    if _uuid_or_none(x)
                ],
                status=SyncEvent.Status.IN_PROGRESS,
            ).select_related("twin")
        )
        _delivery_result(handed, confirmed, refused)
    batch = _fit_batch(_outgoing_batch(connection))
    if batch:
        _mark_handed_out(batch, lease=POLL_HANDOUT_LEASE)
        Connection.objects.filter(pk=connection.pk).update(last_synced_at=timezone.now())
    return {
        "accepted": accepted,
        "rejected": rejected,
        "messages": [_message(e, e.twin) for e in batch],
    }


def _uuid_or_none(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


def _check_message(m) -> str | None:
    """Why message ``m`` is malformed, or None when it is well formed (replica validated too)."""
    if not isinstance(m, dict):
        return "a message must be a JSON object"
    if _uuid_or_none(m.get("event_id")) is None:
        return "event_id must be a uuid"
    if not isinstance(m.get("seq"), int) or isinstance(m.get("seq"), bool):
        return "seq must be a whole number"
    for k in ("entity_id", "peer_entity_id"):
        if not isinstance(m.get(k), str) or len(m[k]) > 64:
            return f"{k} must be a string of at most 64 characters"
    if not m["entity_id"]:
        return "entity_id must not be empty"
    if m.get("kind") == SyncEvent.Kind.REPLICA:
        if m["entity_id"] == NO_ENTITY:
            return "a replica names its entity"
        try:
            replica_validate(m.get("replica"))
        except ReplicaInvalid as exc:
            return str(exc)
        if m["replica"]["entity"]["id"] != m["entity_id"]:
            return "replica.entity.id differs from entity_id"
        changed = m.get("changed")
        if not isinstance(changed, list) or not set(changed) <= set(rules.SYNCED_FIELDS):
            return f"changed must be a list of {', '.join(rules.SYNCED_FIELDS)}"
    elif m.get("kind") == SyncEvent.Kind.ACK:
        ent = m.get("entity")
        if not isinstance(ent, dict) or not all(
            isinstance(ent.get(k), str) for k in ("id", "key", "url")
        ):
            return "an ack carries entity {id, key, url}"
        if ent["id"] != m["entity_id"] or _uuid_or_none(m.get("acked_event_id")) is None:
            return "an ack names the entity it comes from and the acked event id"
        if not isinstance(m.get("error", ""), str):
            return "error must be a string"
    else:
        return "kind must be replica or ack"
    return None


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
        problem = _check_message(m)
        event_id = str(m.get("event_id")) if isinstance(m, dict) else None
        if problem:
            rejected.append({"event_id": event_id, "error": problem})
            continue
        try:
            with transaction.atomic():
                if SyncEvent.objects.filter(
                    connection=connection, direction=SyncEvent.Direction.IN, event_id=m["event_id"]
                ).exists():
                    accepted.append(event_id)
                    continue
                twin = _twin_for_message(connection, m)
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
    if twins_to_apply:
        with transaction.atomic():
            for twin_id in twins_to_apply:
                _enqueue("apply", twin_id)
    return accepted, rejected


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
    Twin.objects.filter(pk=twin.pk).update(remote_error=error)
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
    twin_status_refresh(twin.pk)


# --------------------------------------------------------------------------------------
# Apply incoming replicas
# --------------------------------------------------------------------------------------


def _next_incoming(twin_id: int) -> SyncEvent | None:
    """The twin's first incoming replica event not done, in the sender's order."""
    return (
        SyncEvent.objects.filter(
            twin_id=twin_id, direction=SyncEvent.Direction.IN, kind=SyncEvent.Kind.REPLICA
        )
        .exclude(status=SyncEvent.Status.DONE)
        .order_by("seq", "id")
        .first()
    )


def twin_apply(twin_id: int) -> int:
    """Apply the twin's queued incoming replicas strictly in order; return how many were applied.

    Stops at the first event that is failed (it blocks only this twin), not due yet
    (backoff), or fails now. Each applied event is acknowledged to the remote node with
    this side's key and URL.
    """
    twin = Twin.objects.select_related("connection").filter(pk=twin_id).first()
    if twin is None or twin.connection.status != Connection.Status.ACTIVE:
        return 0
    if not claims.claim(Twin, twin.pk):
        return 0
    applied = 0
    adapter = None
    retry_in = None
    try:
        while True:
            event = _next_incoming(twin.pk)
            if event is None or event.status == SyncEvent.Status.ERROR:
                break
            if event.next_attempt_at and event.next_attempt_at > timezone.now():
                retry_in = (event.next_attempt_at - timezone.now()).total_seconds()
                break
            SyncEvent.objects.filter(pk=event.pk).update(
                status=SyncEvent.Status.IN_PROGRESS, attempts=F("attempts") + 1
            )
            event.attempts += 1
            twin.refresh_from_db()
            twin_status_refresh(twin.pk)
            try:
                adapter = adapter or _adapter()
                _apply_replica(twin, event, adapter)
            except claims.ClaimLost:
                raise
            except TrackerAuthenticationError as exc:
                connection_error_raise(
                    connection=twin.connection,
                    message=f"The instance refused this node's login: {exc}",
                )
                _event_retry_later(event, str(exc), None)
                break
            except (TransientTrackerError, TransientSyncError) as exc:
                retry_in = _event_retry_later(event, str(exc), getattr(exc, "retry_after", None))
                break
            except (TrackerError, PermanentSyncError, ReplicaInvalid) as exc:
                _event_fail(twin, event, str(exc))
                break
            _event_applied(twin, event)
            applied += 1
            claims.renew(Twin, twin.pk)
    except claims.ClaimLost:
        pass
    finally:
        claims.release(Twin, twin.pk)
    with transaction.atomic():
        if retry_in is not None and retry_in < 300:
            _enqueue("apply", twin.pk, countdown=max(retry_in, 0.2))
        elif Twin.objects.filter(pk=twin.pk, scan_requested__gt=F("scan_done")).exists():
            _enqueue("scan", twin.pk)
    if applied:
        _deliver_now(twin.connection_id)  # the acknowledgements
    return applied


def _event_retry_later(event: SyncEvent, message: str, retry_after: float | None) -> float:
    delay = backoff_seconds(event.attempts, retry_after)
    with transaction.atomic():
        SyncEvent.objects.filter(pk=event.pk).update(
            status=SyncEvent.Status.QUEUED,
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            last_error=message[:2000],
        )
        twin_status_refresh(event.twin_id)
    return delay


def _event_fail(twin: Twin, event: SyncEvent, message: str) -> None:
    """The event failed for good: entity-level error, and the sender is told (its status page shows it)."""
    with transaction.atomic():
        SyncEvent.objects.filter(pk=event.pk).update(
            status=SyncEvent.Status.ERROR, last_error=message[:2000]
        )
        _entity_error(twin=twin, event=event, message=message)
        _queue_ack(twin, event, error=message)
        twin_status_refresh(twin.pk)


def _queue_ack(twin: Twin, event: SyncEvent, *, error: str = "") -> None:
    twin.refresh_from_db(fields=["local_entity_id", "local_key", "local_url"])
    if not twin.local_entity_id and not error:
        return
    SyncEvent.objects.create(
        connection_id=twin.connection_id,
        twin=twin,
        direction=SyncEvent.Direction.OUT,
        kind=SyncEvent.Kind.ACK,
        payload={
            "entity": {
                "id": twin.local_entity_id or NO_ENTITY,
                "key": twin.local_key,
                "url": twin.local_url,
            },
            "acked_event_id": str(event.event_id),
            "error": error[:2000],
        },
        next_attempt_at=timezone.now(),
    )
    _enqueue("deliver", str(twin.connection_id))


def _event_applied(twin: Twin, event: SyncEvent) -> None:
    replica = event.payload["replica"]
    with transaction.atomic():
        SyncEvent.objects.filter(pk=event.pk).update(
            status=SyncEvent.Status.DONE, done_at=timezone.now(), last_error=""
        )
        Twin.objects.filter(pk=twin.pk).update(last_received_replica=replica, last_error="")
        SyncError.objects.filter(event=event, resolved_at__isnull=True).update(
            resolved_at=timezone.now()
        )
        _queue_ack(twin, event)
        # What we wrote bumped the incident's sys_mod_count: scan it once so the agreed
        # state and mod count are recorded (it finds nothing to send: no echo).
        twin_request_scan(twin_ids=[twin.pk], nudge=False)
        twin_status_refresh(twin.pk)


def _apply_replica(twin: Twin, event: SyncEvent, adapter: TrackerAdapter) -> None:
    """Apply one incoming replica with the Basic rules, exactly once across crashes."""
    replica = replica_validate(event.payload["replica"])
    changed = event.payload.get("changed") or list(rules.SYNCED_FIELDS)
    mirrored = {(i.kind, i.remote_id): i for i in MirroredItem.objects.filter(twin=twin)}
    plan = rules.incoming_plan(
        replica,
        changed=changed,
        has_local_entity=bool(twin.local_entity_id),
        known={"summary": twin.known_summary, "description": twin.known_description},
        mirrored_comment_ids={
            r for (k, r), i in mirrored.items() if k == MirroredItem.Kind.COMMENT and i.local_id
        },
        mirrored_attachment_ids={
            r for (k, r), i in mirrored.items() if k == MirroredItem.Kind.ATTACHMENT and i.local_id
        },
    )
    # 1. the entity itself
    if plan.create:
        ref = None
        if twin.create_intent_at:
            ref = adapter.find_entity_by_correlation(twin.correlation_id)
        if ref is None:
            Twin.objects.filter(pk=twin.pk).update(create_intent_at=timezone.now())
            ref = adapter.create_entity_correlated(
                summary=plan.fields["summary"],
                description=plan.fields["description"],
                entity_type=rules.incoming_entity_type(
                    replica["entity"]["type"], local_types=_local_types(adapter)
                ),
                correlation_id=twin.correlation_id,
                correlation_display=f"Exalate {replica['entity']['key']}"[:100],
            )
        with transaction.atomic():
            Twin.objects.filter(pk=twin.pk).update(
                local_entity_id=ref.id,
                local_key=ref.key,
                local_url=ref.url,
                known_summary=plan.fields["summary"],
                known_description=plan.fields["description"],
            )
        twin.local_entity_id, twin.local_key, twin.local_url = ref.id, ref.key, ref.url
    elif plan.fields:
        adapter.update_entity_fields(
            twin.local_entity_id,
            summary=plan.fields.get("summary"),
            description=plan.fields.get("description"),
        )
        update = {f"known_{k}": v for k, v in plan.fields.items()}
        Twin.objects.filter(pk=twin.pk).update(**update)
    claims.renew(Twin, twin.pk)

    local_snapshot: dict | None = None

    def snapshot() -> dict:
        nonlocal local_snapshot
        if local_snapshot is None:
            local_snapshot = adapter.read_replica(twin.local_entity_id)
        return local_snapshot

    taken_local = {i.local_id for i in mirrored.values() if i.local_id}
    # 2. attachments, each once, bytes checked
    for a in plan.attachments:
        item = mirrored.get((MirroredItem.Kind.ATTACHMENT, a["id"]))
        if item is not None:
            if _adopt_earlier_write(
                item,
                snapshot()["attachments"],
                taken_local,
                lambda la, a=a: rules.attachment_matches(
                    la, file_name=a["file_name"], sha256=a["sha256"]
                ),
            ):
                continue
        else:
            item = MirroredItem.objects.create(
                twin=twin,
                kind=MirroredItem.Kind.ATTACHMENT,
                remote_id=a["id"],
                sha256=a["sha256"],
                file_name=a["file_name"][:255],
            )
        with _fetched_attachment(twin, a, event, adapter) as path:
            claims.renew(Twin, twin.pk)
            created = adapter.add_attachment(
                twin.local_entity_id,
                file_name=a["file_name"],
                content_type=a["content_type"] or "application/octet-stream",
                chunks=_file_chunks(path),
            )
        _item_done(item, created.id)
        taken_local.add(created.id)
        claims.renew(Twin, twin.pk)
    # 3. comments, each once (last: the final journal write moves the incident's
    # sys_updated_on past the uploads, so change detection does not re-read for them)
    for c in plan.comments:
        item = mirrored.get((MirroredItem.Kind.COMMENT, c["id"]))
        if item is not None:  # an earlier attempt recorded the intent: did the write happen?
            if _adopt_earlier_write(
                item,
                snapshot()["comments"],
                taken_local,
                lambda lc, c=c: rules.comment_matches(lc, body=c["body"], author=c["author"]),
            ):
                continue
        else:
            item = MirroredItem.objects.create(
                twin=twin, kind=MirroredItem.Kind.COMMENT, remote_id=c["id"]
            )
        created = adapter.add_comment(twin.local_entity_id, body=c["body"], author=c["author"])
        _item_done(item, created.id)
        taken_local.add(created.id)
        claims.renew(Twin, twin.pk)


def _adopt_earlier_write(
    item: MirroredItem, local_items: list[dict], taken_local: set, is_copy
) -> bool:
    """Reconcile an intent left by an earlier attempt: if a local item (replica comment or
    attachment) not yet mapped is the copy ``is_copy(local_item)`` accepts, record it as
    this item's local twin instead of writing again. Returns True when one was adopted."""
    match = next((li for li in local_items if li["id"] not in taken_local and is_copy(li)), None)
    if match is None:
        return False
    _item_done(item, match["id"])
    taken_local.add(match["id"])
    return True


def _item_done(item: MirroredItem, local_id: str) -> None:
    MirroredItem.objects.filter(pk=item.pk).update(local_id=local_id)
    item.local_id = local_id


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def staging_dir() -> Path:
    """Folder for attachment bytes in transit (spooled to disk, never held in memory)."""
    path = Path(settings.VAR_DIR) / "sync-staging"
    path.mkdir(parents=True, exist_ok=True)
    return path


def pushed_attachment_path(connection_id, attachment_id: str, sha256: str) -> Path:
    """Where bytes pushed by a remote node without URL are kept until applied."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", attachment_id)[:64]
    return staging_dir() / f"pushed-{connection_id}-{safe}-{sha256}"


@contextlib.contextmanager
def _fetched_attachment(twin: Twin, att: dict, event: SyncEvent, adapter: TrackerAdapter):
    """Yield the path of a temp file holding the attachment's bytes, sha256 and size checked.

    Sources: the same instance (local connection), bytes a node without URL pushed
    earlier, or the sending node's signed attachment endpoint (streamed).
    """
    connection = twin.connection
    pushed = pushed_attachment_path(connection.pk, att["id"], att["sha256"])
    if pushed.exists():
        yield _checked(pushed, att, event, remove_on_mismatch=True)
        pushed.unlink(missing_ok=True)
        return
    fd, name = tempfile.mkstemp(prefix="att-", dir=staging_dir())
    path = Path(name)
    try:
        with open(fd, "wb") as out:
            for chunk in _attachment_source(connection, twin, att, adapter):
                out.write(chunk)
        yield _checked(path, att, event)
    finally:
        path.unlink(missing_ok=True)


def _checked(path: Path, att: dict, event: SyncEvent, *, remove_on_mismatch: bool = False) -> Path:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    if digest.hexdigest() != att["sha256"] or size != att["size"]:
        if remove_on_mismatch:
            path.unlink(missing_ok=True)
        message = (
            f"The bytes of attachment {att['file_name']} do not match the replica "
            f"(sha256 {digest.hexdigest()[:12]}…, {size} bytes; expected {att['sha256'][:12]}…, {att['size']} bytes)."
        )
        if event.attempts >= SHA_MISMATCH_ATTEMPTS:
            raise PermanentSyncError(message)
        raise TransientSyncError(message)
    return path


def _attachment_source(
    connection: Connection, twin: Twin, att: dict, adapter: TrackerAdapter
) -> Iterator[bytes]:
    if connection.type == Connection.Type.LOCAL:
        yield from adapter.stream_attachment(att["id"], chunk_size=CHUNK)
        return
    if not connection.remote_url:
        raise TransientSyncError(f"{WAITING_FOR_PUSH} the bytes of attachment {att['file_name']}.")
    from connections.transport import (
        NodeRequestRejected,
        NodeTransportError,
        NodeUnreachable,
        node_request,
    )

    path = f"/api/node/v1/sync/attachments/{twin.remote_entity_id}/{att['id']}"
    try:
        response = node_request(connection, "GET", path, stream=True)
    except NodeUnreachable as exc:
        raise TransientSyncError(
            f"Fetching attachment {att['file_name']}: {exc.message}", retry_after=exc.retry_after
        ) from None
    except NodeRequestRejected as exc:
        if exc.status in (401, 403):
            connection_error_raise(
                connection=connection,
                message=f"The remote node refused this node's signed request: {exc.message}",
            )
            raise TransientSyncError(exc.message) from None
        raise PermanentSyncError(
            f"The remote node cannot give attachment {att['file_name']}: {exc.message}"
        ) from None
    except NodeTransportError as exc:
        raise TransientSyncError(exc.message) from None
    try:
        yield from response.iter_content(CHUNK)
    except Exception as exc:  # connection dropped mid-stream
        raise TransientSyncError(
            f"Fetching attachment {att['file_name']} was interrupted ({exc.__class__.__name__})."
        ) from None
    finally:
        response.close()


def attachment_stream_for_remote(
    *, connection: Connection, entity_id: str, attachment_id: str
) -> tuple[dict, Iterator[bytes]]:
    """Bytes of a local attachment that the remote node of ``connection`` may read.

    Only attachments of an entity twinned on this connection and sent in its last replica
    are served. Returns (attachment metadata, chunk iterator). Raises TrackerNotFound when
    the attachment is not one we sent, and the adapter's errors otherwise.
    """
    twin = Twin.objects.filter(connection=connection, local_entity_id=entity_id).first()
    sent = (twin.last_sent_replica or {}).get("attachments", []) if twin else []
    meta = next((a for a in sent if a["id"] == attachment_id), None)
    if meta is None:
        raise TrackerNotFound(f"Attachment {attachment_id} was not sent on this connection.")
    chunks = _adapter().stream_attachment(attachment_id, chunk_size=CHUNK)
    return meta, chunks


def pushed_attachment_store(
    *, connection: Connection, attachment_id: str, sha256: str, size: int, chunks: Iterable[bytes]
) -> Path:
    """Keep bytes a remote node without URL pushed for one of its attachments (sha256 checked).

    Raises SyncRefused when the bytes do not match ``sha256`` and ``size``.
    """
    if not re.fullmatch(r"[0-9a-f]{64}", sha256 or ""):
        raise SyncRefused("sha256 must be 64 lowercase hex characters.")
    if not 0 <= size <= MAX_PUSHED_BYTES:
        raise SyncRefused(f"size must be between 0 and {MAX_PUSHED_BYTES} bytes.")
    target = pushed_attachment_path(connection.pk, attachment_id, sha256)
    fd, name = tempfile.mkstemp(prefix="push-", dir=staging_dir())
    digest = hashlib.sha256()
    total = 0
    with open(fd, "wb") as out:
        for chunk in chunks:
            digest.update(chunk)
            total += len(chunk)
            out.write(chunk)
    if digest.hexdigest() != sha256 or total != size:
        Path(name).unlink(missing_ok=True)
        raise SyncRefused(f"The pushed bytes do not match sha256 {sha256[:12]}… and size {size}.")
    Path(name).replace(target)
    return target


class _SizedStream:
    """A file-like reader over byte chunks with a known length, so requests sends a
    ``Content-Length`` and streams the body (no chunked encoding, nothing held whole)."""

    def __init__(self, chunks: Iterable[bytes], size: int):
        self._chunks = iter(chunks)
        self._size = size
        self._buffer = b""

    def __len__(self) -> int:
        return self._size

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buffer) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if n < 0:
            out, self._buffer = self._buffer, b""
        else:
            out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out


def _push_one(connection: Connection, entity_id: str, att: dict, adapter: TrackerAdapter) -> None:
    """Stream one local attachment into the remote's signed ``PUT`` endpoint (best effort)."""
    from connections.node_auth import sign_node_request
    from connections.transport import NodeTransportError, send

    try:
        response = send(
            connection.remote_url,
            "PUT",
            f"/api/node/v1/sync/attachments/{entity_id}/{att['id']}?sha256={att['sha256']}&size={att['size']}",
            token=sign_node_request(connection, b""),
            body=_SizedStream(adapter.stream_attachment(att["id"], chunk_size=CHUNK), att["size"]),  # type: ignore[arg-type]
            content_type="application/octet-stream",
            timeout=max(settings.NODE_REQUEST_TIMEOUT, 60),
        )
        response.close()
    except (NodeTransportError, TrackerError) as exc:
        logger.info("Pushing attachment %s to the remote failed: %s", att["id"], exc)
    except Exception as exc:  # noqa: BLE001 - best effort: the remote asks again
        logger.warning("Pushing attachment %s to the remote failed: %r", att["id"], exc)


def _push_attachments(connection: Connection, batch: list[SyncEvent]) -> None:
    """From a node without URL: push the bytes of attachments new in these replicas to the remote.

    The remote cannot call us, so it cannot fetch them: we stream each one from our
    instance into a signed ``PUT /api/node/v1/sync/attachments/<entity>/<attachment>``.
    Best effort: when a push fails the remote's apply waits, and its poll answers list
    the bytes it still needs (:func:`_push_requested`).
    """
    adapter = None
    for e in batch:
        if e.kind != SyncEvent.Kind.REPLICA:
            continue
        new = set(e.payload.get("new_attachments") or [])
        for att in e.payload["replica"]["attachments"]:
            if att["id"] in new:
                adapter = adapter or _adapter()
                _push_one(connection, e.twin.local_entity_id, att, adapter)


def _push_requested(connection: Connection, needed) -> None:
    """Push attachments the remote says it still needs; only ones we sent on this connection."""
    if not isinstance(needed, list):
        return
    adapter = None
    for item in needed[:20]:
        if not isinstance(item, dict):
            continue
        twin = Twin.objects.filter(
            connection=connection, local_entity_id=str(item.get("entity_id", ""))
        ).first()
        sent = (twin.last_sent_replica or {}).get("attachments", []) if twin else []
        att = next((a for a in sent if a["id"] == item.get("attachment_id")), None)
        if att:
            adapter = adapter or _adapter()
            _push_one(connection, twin.local_entity_id, att, adapter)


def _attachments_needed(connection: Connection) -> list[dict]:
    """Attachments this side waits for from a remote without URL (apply is retrying for them)."""
    needed = []
    waiting = SyncEvent.objects.filter(
        connection=connection,
        direction=SyncEvent.Direction.IN,
        kind=SyncEvent.Kind.REPLICA,
        status__in=OPEN_EVENT_STATUSES,
        last_error__startswith=WAITING_FOR_PUSH,
    ).select_related("twin")[:20]
    for e in waiting:
        done = set(
            MirroredItem.objects.filter(twin=e.twin, kind=MirroredItem.Kind.ATTACHMENT)
            .exclude(local_id="")
            .values_list("remote_id", flat=True)
        )
        for a in e.payload["replica"]["attachments"]:
            if (
                a["id"] not in done
                and not pushed_attachment_path(connection.pk, a["id"], a["sha256"]).exists()
            ):
                needed.append({"entity_id": e.twin.remote_entity_id, "attachment_id": a["id"]})
    return needed


# --------------------------------------------------------------------------------------
# The drain: nothing depends on one Celery message surviving
# --------------------------------------------------------------------------------------


def sync_drain(*, limit: int = 500) -> dict[str, int]:
    """Re-nudge work whose Celery message was lost (a worker crash, a broker restart).

    Frees leases of dead worker processes on this host, then enqueues delivery, apply,
    scan and exalate tasks for rows due for longer than ``SYNC_DRAIN_GRACE`` seconds,
    bumping their due time so they are not re-nudged before another grace period.
    Returns counts per kind.
    """
    for model, prefix in (
        (Twin, ""),
        (ExalateRequest, ""),
        (ConnectionSyncState, "deliver_"),
        (ConnectionSyncState, "poll_"),
        (ConnectionSyncState, "detect_"),
    ):
        claims.release_dead_claims(model, prefix=prefix)
    now = timezone.now()
    stale = now - timedelta(seconds=settings.SYNC_DRAIN_GRACE)
    counts = {"deliver": 0, "apply": 0, "scan": 0, "exalate": 0}
    live = [Connection.Status.ACTIVE, Connection.Status.ERROR]
    with transaction.atomic():
        due_out = SyncEvent.objects.filter(
            direction=SyncEvent.Direction.OUT,
            status__in=OPEN_EVENT_STATUSES,
            next_attempt_at__lte=stale,
            connection__status__in=live,
        )
        conn_ids = set(
            due_out.order_by().values_list("connection_id", flat=True).distinct()[:limit]
        )
        due_out.filter(connection_id__in=conn_ids).exclude(
            connection__type=Connection.Type.PUBLIC,
            connection__remote_url="",
            connection__polls_remote=False,
        ).update(next_attempt_at=now)
        for cid in conn_ids:
            _enqueue("deliver", str(cid))
        counts["deliver"] = len(conn_ids)

        due_in = SyncEvent.objects.filter(
            direction=SyncEvent.Direction.IN,
            kind=SyncEvent.Kind.REPLICA,
            status__in=OPEN_EVENT_STATUSES,
            next_attempt_at__lte=stale,
            connection__status=Connection.Status.ACTIVE,
        )
        twin_ids = set(due_in.order_by().values_list("twin_id", flat=True).distinct()[:limit])
        due_in.filter(twin_id__in=twin_ids).update(next_attempt_at=now)
        for tid in twin_ids:
            _enqueue("apply", tid)
        counts["apply"] = len(twin_ids)

        scans = Twin.objects.filter(
            scan_requested__gt=F("scan_done"),
            connection__status=Connection.Status.ACTIVE,
        ).filter(Q(scan_nudged_at__isnull=True) | Q(scan_nudged_at__lte=stale))
        scan_ids = list(scans.values_list("pk", flat=True)[:limit])
        Twin.objects.filter(pk__in=scan_ids).update(scan_nudged_at=now)
        for tid in scan_ids:
            _enqueue("scan", tid)
        counts["scan"] = len(scan_ids)

        requests_due = ExalateRequest.objects.filter(
            status=ExalateRequest.Status.QUEUED,
            next_attempt_at__lte=stale,
            connection__status=Connection.Status.ACTIVE,
        )
        req_ids = list(requests_due.values_list("pk", flat=True)[:limit])
        ExalateRequest.objects.filter(pk__in=req_ids).update(next_attempt_at=now)
        for rid in req_ids:
            _enqueue("exalate", str(rid))
        counts["exalate"] = len(req_ids)
    return counts


def detect_changes_all() -> int:
    """Enqueue change detection for every active connection that has twins; return how many."""
    ids = list(
        Connection.objects.filter(status=Connection.Status.ACTIVE, twins__isnull=False)
        .order_by()
        .values_list("pk", flat=True)
        .distinct()
    )
    with transaction.atomic():
        for cid in ids:
            _enqueue("detect_changes", str(cid))
    return len(ids)


def poll_remotes_all() -> int:
    """Enqueue a poll for every connection on which this node has no URL and the remote has one."""
    ids = list(
        Connection.objects.filter(
            polls_remote=True, status__in=[Connection.Status.ACTIVE, Connection.Status.ERROR]
        ).values_list("pk", flat=True)
    )
    with transaction.atomic():
        for cid in ids:
            _enqueue("poll", str(cid))
    return len(ids)


__all__ = [
    "SyncRefused",
    "entity_exalate",
    "exalate_request_process",
    "twin_scan",
    "twin_apply",
    "twin_retry",
    "connection_deliver",
    "connection_poll",
    "connection_detect_changes",
    "connection_retry",
    "connection_error_raise",
    "messages_receive",
    "poll_answer",
    "webhook_receive",
    "error_retry",
    "error_resolve",
    "sync_drain",
    "detect_changes_all",
    "poll_remotes_all",
    "attachment_stream_for_remote",
    "pushed_attachment_store",
]
