"""Apply: a twin's incoming replicas are written to the local entity, strictly in order, exactly once.

Exactly once across crashes: before every tracker write an *intent* is committed (the
twin's ``create_intent_at``, a :class:`~sync.models.MirroredItem` without local id), and
a retry reconciles it instead of writing again: the entity is found by its correlation
id (``TrackerAdapter.find_entity_by_correlation``), a comment by body and author, an
attachment by file name and sha256 (``sync.rules``). Issue 14: the create carries the
first comment where the tracker can, the others go in one ``add_comments`` call (one
read-back), and no confirming re-read follows when the adapter's ``write_receipt`` accounts
for every write (nobody else wrote in between). Each applied event is acknowledged
to the remote node with this side's key and URL; a failure for good is acknowledged
with its error, so the sender's status page shows it too.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from connections.models import Connection
from connections.selectors import tracker_adapter_get
from trackers.errors import TrackerAuthenticationError, TrackerError, TransientTrackerError
from trackers.interface import TrackerAdapter, WriteReceipt
from trackers.replica import ReplicaInvalid, replica_validate

from .. import claims, nudge, rules
from ..models import MirroredItem, SyncError, SyncEvent, Twin
from ..protocol import NO_ENTITY
from . import detect, failures
from .attachments import attachment_adopted, attachment_mirror, attachment_warning
from .base import PermanentSyncError, TransientSyncError, twin_status_refresh
from .deliver import deliver_now
from .remote_errors import apply_failure_words


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
                adapter = adapter or tracker_adapter_get()
                receipt = _apply_replica(twin, event, adapter)
            except claims.ClaimLost:
                raise
            except TrackerAuthenticationError as exc:
                failures.login_refused(connection=twin.connection, exc=exc)
                _event_retry_later(event, str(exc), None)
                break
            except (TransientTrackerError, TransientSyncError) as exc:
                retry_in = _event_retry_later(event, str(exc), getattr(exc, "retry_after", None))
                break
            except (TrackerError, PermanentSyncError, ReplicaInvalid) as exc:
                _event_fail(twin, event, *apply_failure_words(twin, exc))
                break
            _event_applied(twin, event, receipt)
            applied += 1
            claims.renew(Twin, twin.pk)
    except claims.ClaimLost:
        pass
    finally:
        claims.release(Twin, twin.pk)
    if retry_in is not None and retry_in < 300:
        nudge.apply(twin.pk, countdown=max(retry_in, 0.2))
    elif Twin.objects.filter(pk=twin.pk, scan_requested__gt=F("scan_done")).exists():
        nudge.scan(twin.pk)
    if applied:
        deliver_now(twin.connection_id)  # the acknowledgements
    return applied


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


def _event_retry_later(event: SyncEvent, message: str, retry_after: float | None) -> float:
    delay = nudge.backoff_seconds(event.attempts, retry_after)
    with transaction.atomic():
        SyncEvent.objects.filter(pk=event.pk).update(
            status=SyncEvent.Status.QUEUED,
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            last_error=message[:2000],
        )
        twin_status_refresh(event.twin_id)
    return delay


def _event_fail(twin: Twin, event: SyncEvent, message: str, code: str = "") -> None:
    """The event failed for good: entity-level error, and the sender is told (its Errors page
    shows it too; ``code`` ``entity_gone`` when our incident no longer exists)."""
    with transaction.atomic():
        SyncEvent.objects.filter(pk=event.pk).update(
            status=SyncEvent.Status.ERROR, last_error=message[:2000]
        )
        failures.entity_error(twin=twin, event=event, message=message, code=code)
        _queue_ack(twin, event, error=message, error_code=code)
        twin_status_refresh(twin.pk)


def _queue_ack(twin: Twin, event: SyncEvent, *, error: str = "", error_code: str = "") -> None:
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
            "error_code": error_code,
            "warning": "" if error else attachment_warning(twin),
        },
        next_attempt_at=timezone.now(),
    )
    nudge.deliver(twin.connection_id)


def _event_applied(twin: Twin, event: SyncEvent, receipt: WriteReceipt | None = None) -> None:
    """Mark the event done and queue its ack; record what the apply wrote (``receipt``, see
    :func:`_own_writes_recorded`) or, when the adapter could not tell, scan the entity once."""
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
        if receipt is None or not _own_writes_recorded(twin, receipt):
            # What we wrote bumped the incident's sys_mod_count: scan it once so the agreed
            # state and mod count are recorded (it finds nothing to send: no echo).
            detect.twin_request_scan(twin_ids=[twin.pk], nudge=False)
        twin_status_refresh(twin.pk)


def _own_writes_recorded(twin: Twin, receipt: WriteReceipt) -> bool:
    """Record the entity's state after this apply's own writes instead of re-reading it.

    ``twin`` holds the values read when the apply began. The change listing and the
    webhook then skip the mod count, change time and attachment marker our writes made
    (``detect.twin_request_scan``), and hints that arrived during the apply are settled when
    they announced nothing beyond them: no scan was pending when the apply began, the
    announced mod count is at most ours, the listed time at most our newest write (or
    unchanged), the attachment marker unchanged or ours. Anything else (someone else wrote:
    the receipt would be None, or a hint names more) leaves the scan to run. One
    conditional UPDATE; returns False when it did not match (the caller scans as before).
    """
    if twin.scan_requested != twin.scan_done:
        return False
    count = receipt.mod_count if receipt.mod_count is not None else twin.last_seen_mod_count
    moment = receipt.updated
    if count is None or moment is None:
        return False
    marker = receipt.attachments_marker or twin.last_attachments_marker
    listed = Q(last_listed_updated__isnull=True) | Q(last_listed_updated__lte=moment)
    if twin.last_listed_updated is not None:
        listed |= Q(last_listed_updated=twin.last_listed_updated)
    start = twin.last_listed_updated
    return bool(
        Twin.objects.filter(pk=twin.pk)
        .filter(Q(scan_mod_count__isnull=True) | Q(scan_mod_count__lte=count))
        .filter(listed)
        .filter(last_attachments_marker__in={twin.last_attachments_marker, marker})
        .update(
            scan_done=F("scan_requested"),
            last_seen_mod_count=count,
            scan_mod_count=count,
            last_listed_updated=max(start, moment) if start else moment,
            last_attachments_marker=marker,
        )
    )


def _apply_replica(twin: Twin, event: SyncEvent, adapter: TrackerAdapter) -> WriteReceipt | None:
    """Apply one incoming replica with the Basic rules, exactly once across crashes.

    Returns the adapter's receipt of this apply's writes when it may stand for a re-read
    (:func:`_trusted_receipt`), else None. On create the first comment travels in the
    create when the adapter can (``creates_with_comment``: one call, its intent committed
    first); the other comments go in one ``add_comments`` call, each behind its intent.
    """
    if twin.local_entity_id:
        adapter.write_receipt(twin.local_entity_id)  # forget writes of an earlier attempt
    created_now = False
    carried = None  # the remote id of the comment the create wrote
    replica = replica_validate(event.payload["replica"])
    changed = event.payload.get("changed")
    if changed is None:  # an event queued before "changed" existed: every field
        changed = list(rules.SYNCED_FIELDS)
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
        project = twin.connection.incoming_project_key  # '' for a tracker without projects
        if twin.create_intent_at:
            ref = adapter.find_entity_by_correlation(twin.correlation_id, project=project)
        if ref is None:
            first = plan.comments[0] if plan.comments and adapter.creates_with_comment else None
            extra = {}
            if first is not None:
                key = (MirroredItem.Kind.COMMENT, first["id"])
                if key not in mirrored:
                    mirrored[key] = MirroredItem.objects.create(
                        twin=twin, kind=MirroredItem.Kind.COMMENT, remote_id=first["id"]
                    )
                extra["first_comment"] = (first["body"], first["author"])
            Twin.objects.filter(pk=twin.pk).update(create_intent_at=timezone.now())
            ref = adapter.create_entity(
                **extra,
                project=project,
                summary=plan.fields["summary"],
                description=plan.fields["description"],
                entity_type=rules.incoming_entity_type(
                    replica["entity"]["type"], local_types=type(adapter).entity_types
                ),
                correlation_id=twin.correlation_id,
                correlation_display=f"Exalate {replica['entity']['key']}"[:100],
            )
            created_now, carried = True, first["id"] if first is not None else None
        with transaction.atomic():
            Twin.objects.filter(pk=twin.pk).update(
                local_entity_id=ref.id,
                local_key=ref.key,
                local_url=ref.url,
                # the type the tracker created (a fallback such as Task when the project lacks it)
                entity_type=(ref.entity_type or replica["entity"]["type"])[:40],
                known_summary=plan.fields["summary"],
                known_description=plan.fields["description"],
            )
        twin.local_entity_id, twin.local_key, twin.local_url = ref.id, ref.key, ref.url
    elif plan.fields:
        adapter.update_entity(
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
                attachment_adopted(twin, a, item.local_id)  # else it stays Pending forever
                continue
        else:
            item = MirroredItem.objects.create(
                twin=twin,
                kind=MirroredItem.Kind.ATTACHMENT,
                remote_id=a["id"],
                sha256=a["sha256"],
                file_name=a["file_name"][:255],
            )
        created_id = attachment_mirror(twin, a, event, adapter, item)
        if created_id is None:
            continue  # refused, too large or skipped: a warning on the twin; the rest goes on
        _item_done(item, created_id)
        taken_local.add(created_id)
        claims.renew(Twin, twin.pk)
    # 3. comments, each once (last: the final journal write moves the incident's
    # sys_updated_on past the uploads, so change detection does not re-read for them)
    to_write: list[tuple[MirroredItem, dict]] = []
    for c in plan.comments:
        item = mirrored.get((MirroredItem.Kind.COMMENT, c["id"]))
        if c["id"] == carried:
            to_write.append((item, c))  # written by the create just now: only its id is missing
            continue
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
        to_write.append((item, c))
    if to_write:  # every intent is committed before the first write
        created = adapter.add_comments(
            twin.local_entity_id,
            [(c["body"], c["author"]) for _, c in to_write],
            written=1 if carried is not None else 0,
        )
        for (item, _), made in zip(to_write, created, strict=True):
            _item_done(item, made.id)
            taken_local.add(made.id)
        claims.renew(Twin, twin.pk)
    return _trusted_receipt(twin, adapter.write_receipt(twin.local_entity_id), created_now)


def _trusted_receipt(
    twin: Twin, receipt: WriteReceipt | None, created_now: bool
) -> WriteReceipt | None:
    """The receipt when it tells the entity's whole state after this apply, else None.

    A create made in this attempt: the counter started with it. An update: the counter
    before our first write must be the one last scanned (else someone wrote since), and no
    attachment was uploaded (an upload moves no counter, so a file someone else attached
    meanwhile would only show in a re-read).
    """
    if receipt is None or receipt.mod_count is None:
        return None
    if created_now:
        return receipt if receipt.base_mod_count is None else None
    if receipt.attachments_marker or receipt.base_mod_count is None:
        return None
    return receipt if receipt.base_mod_count == twin.last_seen_mod_count else None


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
