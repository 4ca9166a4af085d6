"""Attachment bytes in transit: streamed through a temp file, never held whole, sha256 checked.

Replicas carry attachment metadata only (name, type, size, sha256). The receiving node
gets the bytes when it applies the replica (:func:`fetched_attachment`), from wherever
the connection's peer has them (``sync.peers``): its own instance (local connection),
the sender's signed attachment endpoint (:func:`attachment_stream_for_remote` on the
sender), or bytes a sender without URL pushed earlier (:func:`pushed_attachment_store`).

A node without URL cannot be called, so it pushes the bytes of its new attachments
before the poll that carries their replica (:func:`push_new_attachments`). When a push
fails, the receiver's apply waits (``peers.WAITING_FOR_PUSH``) and every poll answer lists
what it still waits for (:func:`attachments_needed`), which the poller pushes again
(:func:`push_requested`) until the bytes land.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from connections.models import Connection
from connections.selectors import tracker_adapter_get
from trackers.errors import AttachmentRefused, TrackerNotFound
from trackers.interface import TrackerAdapter

from .. import claims, nudge, peers
from ..models import AttachmentState, MirroredItem, SyncEvent, Twin
from ..peers import CHUNK, WAITING_FOR_PUSH
from . import failures
from .base import OPEN_EVENT_STATUSES, PermanentSyncError, SyncRefused, TransientSyncError

logger = logging.getLogger(__name__)

#: Largest attachment a node without URL may push (ServiceNow's default attachment cap, 1024 MB).
MAX_PUSHED_BYTES = 1024 * 1024 * 1024
#: Attempts after which a sha256 mismatch of attachment bytes stops being retried.
SHA_MISMATCH_ATTEMPTS = 3


def staging_dir() -> Path:
    """Folder for attachment bytes in transit (spooled to disk, never held in memory)."""
    path = Path(settings.VAR_DIR) / "sync-staging"
    path.mkdir(parents=True, exist_ok=True)
    return path


def pushed_attachment_path(connection_id, attachment_id: str, sha256: str) -> Path:
    """Where bytes pushed by a remote node without URL are kept until applied."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", attachment_id)[:64]
    return staging_dir() / f"pushed-{connection_id}-{safe}-{sha256}"


def file_chunks(path: Path) -> Iterator[bytes]:
    """The bytes of the file at ``path`` in chunks of :data:`~sync.peers.CHUNK` bytes."""
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


@contextlib.contextmanager
def fetched_attachment(twin: Twin, att: dict, event: SyncEvent, adapter: TrackerAdapter):
    """Yield the path of a temp file holding the attachment's bytes, sha256 and size checked.

    Sources: bytes a node without URL pushed earlier, else the connection's peer (the same
    instance, or the sending node's signed attachment endpoint, streamed). Raises
    TransientSyncError (try again: not there yet, unreachable, bytes differ) or
    PermanentSyncError (the sender will never give them; bytes kept differing).
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
            try:
                for chunk in peers.peer_for(connection).fetch_attachment(
                    remote_entity_id=twin.remote_entity_id, attachment=att, adapter=adapter
                ):
                    out.write(chunk)
            except peers.PeerRetry as exc:
                if exc.connection_error:
                    failures.connection_error_raise(
                        connection=connection, message=exc.connection_error
                    )
                raise TransientSyncError(str(exc), retry_after=exc.retry_after) from None
            except peers.PeerRefused as exc:
                raise PermanentSyncError(str(exc)) from None
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
    chunks = tracker_adapter_get().stream_attachment(attachment_id, chunk_size=CHUNK)
    return meta, chunks


def pushed_attachment_store(
    *, connection: Connection, attachment_id: str, sha256: str, size: int, chunks: Iterable[bytes]
) -> Path:
    """Keep bytes a remote node without URL pushed for one of its attachments (sha256 checked).

    An apply already waiting for them is made due and nudged. Raises SyncRefused when the
    bytes do not match ``sha256`` and ``size``.
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
    waiting = _waiting_for_push(connection)
    waiting.update(next_attempt_at=timezone.now())
    for twin_id in set(waiting.values_list("twin_id", flat=True)):
        nudge.apply(twin_id)
    return target


def _waiting_for_push(connection: Connection):
    """Incoming replicas of ``connection`` whose apply waits for pushed bytes."""
    return SyncEvent.objects.filter(
        connection=connection,
        direction=SyncEvent.Direction.IN,
        kind=SyncEvent.Kind.REPLICA,
        status__in=OPEN_EVENT_STATUSES,
        last_error__startswith=WAITING_FOR_PUSH,
    )


def attachments_needed(connection: Connection) -> list[dict]:
    """Attachments this side waits for from a remote without URL (its apply is retrying for
    them): ``[{"entity_id": <the remote's entity id>, "attachment_id": ...}]``, at most 20
    events' worth, for the poll answer's ``need_attachments``."""
    needed = []
    for e in _waiting_for_push(connection).select_related("twin")[:20]:
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


def push_new_attachments(peer: peers.Peer, batch: list[SyncEvent]) -> None:
    """From a node without URL: push the bytes of attachments new in these replicas to the remote.

    The remote cannot call us, so it cannot fetch them: the peer streams each one from our
    instance into a signed ``PUT /api/node/v1/sync/attachments/<entity>/<attachment>``.
    Best effort: when a push fails the remote's apply waits, and its poll answers list
    the bytes it still needs (:func:`push_requested`).
    """
    adapter = None
    for e in batch:
        if e.kind != SyncEvent.Kind.REPLICA:
            continue
        new = set(e.payload.get("new_attachments") or [])
        for att in e.payload["replica"]["attachments"]:
            if att["id"] in new:
                adapter = adapter or tracker_adapter_get()
                peer.push_attachment(
                    entity_id=e.twin.local_entity_id, attachment=att, adapter=adapter
                )


def push_requested(peer: peers.Peer, needed) -> None:
    """Push attachments the remote says it still needs (a poll answer's ``need_attachments``);
    only ones we sent on this connection, at most 20 per answer."""
    if not isinstance(needed, list):
        return
    adapter = None
    for item in needed[:20]:
        if not isinstance(item, dict):
            continue
        twin = Twin.objects.filter(
            connection=peer.connection, local_entity_id=str(item.get("entity_id", ""))
        ).first()
        sent = (twin.last_sent_replica or {}).get("attachments", []) if twin else []
        att = next((a for a in sent if a["id"] == item.get("attachment_id")), None)
        if att:
            adapter = adapter or tracker_adapter_get()
            peer.push_attachment(entity_id=twin.local_entity_id, attachment=att, adapter=adapter)


# --- per-attachment state on the receiving twin (issue 10) ------------------------------------


def attachment_mirror(
    twin: Twin, att: dict, event: SyncEvent, adapter: TrackerAdapter, item: MirroredItem
) -> str | None:
    """Upload one remote attachment to the local entity; return the local copy's id, or None.

    None means the attachment did not go and must not hold the rest of the incident: the
    destination refused it (``AttachmentRefused``: ``too_large`` over its size limit, else
    ``refused``), or the source cannot give its bytes (``skipped``). The reason is kept on
    the twin's :class:`~sync.models.AttachmentState` (shown on the twin page, counted on
    the connection page, sent to the source node with the acknowledgement), the intent
    ``item`` is dropped, and later applies leave it alone until Retry on the twin
    (:func:`attachment_states_retry`). Raises TransientSyncError / tracker errors for the
    apply to retry later.
    """
    state, _ = AttachmentState.objects.get_or_create(
        twin=twin,
        remote_id=att["id"],
        defaults={"file_name": att["file_name"][:255], "size": att["size"]},
    )
    if state.is_warning:
        item.delete()
        return None
    AttachmentState.objects.filter(pk=state.pk).update(
        state=AttachmentState.State.PENDING, file_name=att["file_name"][:255], size=att["size"]
    )
    try:
        with fetched_attachment(twin, att, event, adapter) as path:
            claims.renew(Twin, twin.pk)
            created = adapter.add_attachment(
                twin.local_entity_id,
                file_name=att["file_name"],
                content_type=att["content_type"] or "application/octet-stream",
                chunks=file_chunks(path),
            )
    except AttachmentRefused as exc:
        kind = AttachmentState.State.TOO_LARGE if exc.too_large else AttachmentState.State.REFUSED
        _attachment_warn(state, item, kind, exc.reason or exc.message)
        return None
    except PermanentSyncError as exc:
        _attachment_warn(state, item, AttachmentState.State.SKIPPED, str(exc))
        return None
    AttachmentState.objects.filter(pk=state.pk).update(
        state=AttachmentState.State.MIRRORED, local_id=created.id, reason=""
    )
    return created.id


def attachment_adopted(twin: Twin, att: dict, local_id: str) -> None:
    """An earlier attempt's upload of ``att`` did land (its answer was lost, e.g. a timeout
    after the instance stored it) and the apply adopted the local copy ``local_id``: the
    attachment's state is Mirrored, as if that upload had answered."""
    AttachmentState.objects.update_or_create(
        twin=twin,
        remote_id=att["id"],
        defaults={
            "state": AttachmentState.State.MIRRORED,
            "local_id": local_id,
            "reason": "",
            "file_name": att["file_name"][:255],
            "size": att["size"],
        },
    )


def _attachment_warn(state: AttachmentState, item: MirroredItem, kind: str, reason: str) -> None:
    AttachmentState.objects.filter(pk=state.pk).update(state=kind, reason=reason[:2000])
    item.delete()
    logger.warning(
        "Attachment %s of twin %s: %s (%s)", state.file_name, state.twin_id, kind, reason
    )


def attachment_warning(twin: Twin) -> str:
    """One line naming the twin's refused, too-large and skipped attachments with their
    reasons ('' when none): the acknowledgement's ``warning`` for the source node."""
    parts = [
        f"{s.file_name or s.remote_id}: {s.get_state_display().lower()} ({s.reason})"
        for s in AttachmentState.objects.filter(twin=twin, state__in=AttachmentState.WARNINGS)
    ]
    if not parts:
        return ""
    return ("Attachment(s) not mirrored: " + "; ".join(parts))[:2000]


def attachment_counts(connection: Connection) -> dict[str, int]:
    """{state: count} of the attachment states of a connection's twins (every state present)."""
    counts = dict.fromkeys(AttachmentState.State.values, 0)
    rows = (
        AttachmentState.objects.filter(twin__connection=connection)
        .values_list("state")
        .annotate(n=Count("id"))
    )
    for state, n in rows:
        counts[state] = n
    return counts


def attachment_states_retry(twin: Twin) -> bool:
    """Retry on the twin: refused, too-large and skipped attachments become pending again
    and the last applied incoming replica is queued once more, so they are sent again
    (mirrored ones are never sent twice). Returns True when there was something to retry."""
    reset = AttachmentState.objects.filter(twin=twin, state__in=AttachmentState.WARNINGS).update(
        state=AttachmentState.State.PENDING, reason=""
    )
    if not reset:
        return False
    last = (
        SyncEvent.objects.filter(
            twin=twin,
            direction=SyncEvent.Direction.IN,
            kind=SyncEvent.Kind.REPLICA,
            status=SyncEvent.Status.DONE,
        )
        .order_by("-seq", "-id")
        .first()
    )
    if last is not None:
        SyncEvent.objects.filter(pk=last.pk).update(
            status=SyncEvent.Status.QUEUED, attempts=0, next_attempt_at=timezone.now()
        )
    return True
