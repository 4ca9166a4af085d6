"""Delivery: a connection's due outgoing events go to the remote node, in order, in batches.

How they travel is the peer's business (``sync.peers``): straight into the peer row's
inbox (local), ``POST``-ed to the remote (it has a URL), collected by the remote's poll
(:func:`poll_answer`; it has no URL), or carried by this node's own poll
(:func:`connection_poll`; this node has no URL). The engine only sees accepted and
rejected event ids. A twin's events go in order: one failed or not yet due event holds
back the twin's later ones. One delivery per connection at a time (a lease on the
connection's sync state). Replica events become *sent* when accepted and *done* when the
remote acknowledges them (``sync.services.receive``).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from connections.models import Connection

from .. import claims, nudge, peers
from ..models import ConnectionSyncState, SyncEvent
from ..protocol import PROTOCOL, message_for
from . import attachments, failures
from .base import OPEN_EVENT_STATUSES, state_for, twin_status_refresh
from .receive import messages_receive

logger = logging.getLogger(__name__)

#: Seconds an event handed to a polling node waits for its confirmation before it is handed out again.
POLL_HANDOUT_LEASE = 60.0


def connection_deliver(connection_id) -> int:
    """Deliver the connection's due outgoing events; return how many the remote accepted.

    The connection's peer sends each batch (local inbox or ``POST``); when this node has
    no URL the delivery is a poll (:func:`connection_poll`); when the *remote* has none
    nothing is sent: its poll collects the events. Batches go in order; one delivery per
    connection at a time (lease on the connection's sync state).
    """
    connection = Connection.objects.select_related("local_peer").filter(pk=connection_id).first()
    if connection is None or connection.status not in (
        Connection.Status.ACTIVE,
        Connection.Status.ERROR,
    ):
        return 0
    peer = peers.peer_for(connection)
    if peer.polls:
        return connection_poll(connection.pk)
    if not peer.sends:
        return 0
    state = state_for(connection)
    if not claims.claim(ConnectionSyncState, state.pk, prefix="deliver_"):
        return 0
    delivered = 0
    try:
        for _round in range(100):
            batch = _outgoing_batch(connection)
            if peer.limits_message_size:
                batch = _fit_batch(batch)
            if not batch:
                break
            _mark_handed_out(batch)
            try:
                accepted, rejected = peer.send_messages([message_for(e, e.twin) for e in batch])
            except peers.PeerRetry as exc:
                _delivery_failed(connection, batch, exc)
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


def deliver_now(connection_id) -> None:
    """Deliver at once from this task (saves a broker round trip); the nudge sent on
    commit remains the fallback, and a delivery already running picks the events up."""
    try:
        connection_deliver(connection_id)
    except Exception:  # noqa: BLE001 - the queued nudge and the drain retry it
        logger.exception("Immediate delivery on %s failed; it will be retried.", connection_id)


def connection_poll(connection_id) -> int:
    """Exchange messages with the remote node from a node that has no URL (private connection).

    Each round sends this node's due outgoing events (after pushing the bytes of their new
    attachments) and the ids of the messages stored from the previous answer
    (``confirm``); the remote answers with its own waiting messages, which are stored
    here, and with the attachments it still waits for, which are pushed again. Rounds
    continue until both sides have nothing left. Returns the number of messages received.
    """
    connection = Connection.objects.filter(pk=connection_id).first()
    if connection is None or connection.status not in (
        Connection.Status.ACTIVE,
        Connection.Status.ERROR,
    ):
        return 0
    peer = peers.peer_for(connection)
    if not peer.polls:
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
                attachments.push_new_attachments(peer, batch)
            body = {
                "protocol": PROTOCOL,
                "messages": [message_for(e, e.twin) for e in batch],
                "confirm": confirm,
                "confirm_rejected": rejected_back,
            }
            try:
                answer = peer.poll(body)
            except peers.PeerRetry as exc:
                if batch:
                    _delivery_failed(connection, batch, exc)
                elif exc.connection_error:
                    failures.connection_error_raise(
                        connection=connection, message=exc.connection_error
                    )
                break
            if batch:
                _delivery_result(batch, answer.get("accepted") or [], answer.get("rejected") or [])
            attachments.push_requested(peer, answer.get("need_attachments"))
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
    [{"entity_id", "attachment_id"}]}``: ``need_attachments`` are bytes an apply here
    waits for (the poller's entity and attachment ids), which the poller pushes again.
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
        "messages": [message_for(e, e.twin) for e in batch],
        "need_attachments": attachments.attachments_needed(connection),
    }


def poll_remotes_all() -> int:
    """Enqueue a poll for every connection on which this node has no URL and the remote has one."""
    ids = list(
        Connection.objects.filter(
            polls_remote=True, status__in=[Connection.Status.ACTIVE, Connection.Status.ERROR]
        ).values_list("pk", flat=True)
    )
    for cid in ids:
        nudge.poll(cid)
    return len(ids)


def max_message_bytes() -> int:
    """Largest JSON body a node accepts (Django's DATA_UPLOAD_MAX_MEMORY_SIZE), less room for the envelope."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2_621_440
    return max(64_000, limit - 16_000)


# --- batches ---------------------------------------------------------------------------


def _uuid_or_none(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


def _outgoing_batch(connection: Connection, *, limit: int | None = None) -> list[SyncEvent]:
    """The next due outgoing events of ``connection``, in order; a twin's events stop at its
    first event that is failed or not yet due (order per twin is kept). None while the
    connection is in Error: a connection-level error pauses its outgoing queue until it is
    resolved (Resolve and retry, or the connection recovers by itself)."""
    if connection.status == Connection.Status.ERROR:
        return []  # issue 12: a connection-level error pauses the outgoing queue
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
            json.dumps(message_for(e, e.twin), separators=(",", ":"), ensure_ascii=False).encode()
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
                failures.entity_error(twin=e.twin, event=e, message=message)
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
            failures.entity_error(
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


def _delivery_failed(connection: Connection, batch: list[SyncEvent], exc: peers.PeerRetry) -> float:
    """Put a batch back in the queue after the peer failed; return the delay in seconds.

    When the peer reports a connection error (the remote refused our signature), it is
    recorded first: one connection-level error, the connection in Error.
    """
    if exc.connection_error:
        failures.connection_error_raise(connection=connection, message=exc.connection_error)
    message = str(exc)
    attempts = max(e.attempts for e in batch)
    delay = nudge.backoff_seconds(attempts, exc.retry_after)
    with transaction.atomic():
        SyncEvent.objects.filter(pk__in=[e.pk for e in batch]).update(
            status=SyncEvent.Status.QUEUED,
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            last_error=message[:2000],
        )
        for twin_id in {e.twin_id for e in batch}:
            twin_status_refresh(twin_id)
        nudge.deliver(connection.pk, countdown=delay)
    return delay
