"""Bulk Exalate, Bulk Unexalate and Bulk Connect: runs that survive a worker kill (issue 13).

A run is a :class:`~sync.trigger_models.BulkRun` row with :class:`~sync.trigger_models.BulkItem`
rows as its work list. The worker claims the run with a lease (``sync.claims``), renews it
after every batch, and marks each item done or failed in the same transaction as its
effect; a worker killed mid-way leaves a lease that lapses (or that the drain frees when
the process is gone, :func:`bulk_drain`) and the next worker continues with the items
still pending. Nothing is done twice: a twin is unique per (connection, entity), so an
item redone after a crash finds the twin it made and only re-checks it.

* **Bulk Exalate** (Exalate: "syncs every matching unsynced entity and re-checks synced
  ones"): lists the trigger's current matches (key-set by id), then per batch of 50 reads
  the sources together (``read_replicas``) and gets or makes each twin and scans it.
* **Bulk Unexalate**: stops every twin the trigger found (``twin_unexalate``, issue 12).
* **Bulk Connect**: a CSV of local number ↔ remote key pairs (:mod:`.bulk_csv`); the
  worker checks each row (unknown local number, already twinned) for the preview;
  Confirm links the good rows with ``entity_connect`` (issue 12), the bad ones never.
"""

from __future__ import annotations

import importlib
import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from connections.models import Connection
from connections.selectors import tracker_adapter_class_get, tracker_adapter_get
from trackers.errors import TrackerError, TransientTrackerError

from .. import claims, nudge
from ..models import SyncError, Twin
from ..trigger_models import BulkItem, BulkRun, Trigger, TriggerTwin
from . import detect
from .base import SyncRefused, state_for
from .scan import twin_scan
from .triggers import PAGE, PrefetchedReplicas, audit

logger = logging.getLogger(__name__)
BATCH = 50
LEASE = 120.0


def _tasks():
    from .. import tasks

    return tasks


def _nudge_run(run_id, countdown: float | None = None) -> None:
    nudge.nudge(_tasks().bulk_run, str(run_id), countdown=countdown)


def _start(*, trigger: Trigger, kind: str, requested_by: str) -> BulkRun:
    if trigger.connection.status == Connection.Status.PENDING:
        raise SyncRefused(f"Connection {trigger.connection.name} is still pending.")
    if kind == BulkRun.Kind.EXALATE and trigger.connection.status != Connection.Status.ACTIVE:
        raise SyncRefused(
            f"Connection {trigger.connection.name} is "
            f"{trigger.connection.get_status_display().lower()}: activate it before a Bulk Exalate."
        )
    with transaction.atomic():
        running = (
            BulkRun.objects.select_for_update()
            .filter(trigger=trigger, kind=kind, status__in=BulkRun.OPEN)
            .first()
        )
        if running:
            return running  # pressing the button twice starts one run
        if kind == BulkRun.Kind.UNEXALATE:
            # Otherwise the next poll would exalate the matches again with new mirrors.
            Trigger.objects.filter(pk=trigger.pk).update(active=False, updated_at=timezone.now())
        run = BulkRun.objects.create(
            kind=kind,
            trigger=trigger,
            connection=trigger.connection,
            query=trigger.query,
            requested_by=requested_by[:150],
            next_attempt_at=timezone.now(),
        )
        _nudge_run(run.pk)
    audit(requested_by, f"bulk-{kind}", f"trigger {trigger.pk}", f"run {run.pk}")
    return run


def bulk_exalate_start(*, trigger: Trigger, requested_by: str = "") -> BulkRun:
    """Start (or return the open) Bulk Exalate of ``trigger``: every current match is twinned
    and checked. Raises SyncRefused unless the connection is Active."""
    return _start(trigger=trigger, kind=BulkRun.Kind.EXALATE, requested_by=requested_by)


def bulk_unexalate_start(*, trigger: Trigger, requested_by: str = "") -> BulkRun:
    """Start (or return the open) Bulk Unexalate of ``trigger``: every twin it found stops syncing
    (``twin_unexalate``, after its queue drains). The trigger is disabled first, or its next
    poll would exalate the same incidents again."""
    return _start(trigger=trigger, kind=BulkRun.Kind.UNEXALATE, requested_by=requested_by)


def bulk_cancel(*, run: BulkRun, requested_by: str = "") -> BulkRun:
    """Cancel a run: it stops before its next item (what is done stays done)."""
    with transaction.atomic():
        BulkRun.objects.filter(
            pk=run.pk, status__in=[*BulkRun.OPEN, BulkRun.Status.PREVIEW]
        ).update(cancel_requested=True)
        BulkRun.objects.filter(
            pk=run.pk, status__in=[BulkRun.Status.QUEUED, BulkRun.Status.PREVIEW]
        ).filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=timezone.now())).update(
            status=BulkRun.Status.CANCELLED, finished_at=timezone.now()
        )
    audit(requested_by, "bulk-cancelled", f"run {run.pk}")
    run.refresh_from_db()
    return run


def bulk_progress(run: BulkRun) -> dict:
    """``{"total", "done", "failed", "bad", "remaining", "percent", "rate_per_minute",
    "seconds_left"}`` of a run (rate over the time since it started; None before it did)."""
    counts = dict(
        BulkItem.objects.filter(run=run).values_list("status").annotate(n=Count("id")).order_by()
    )
    done, failed = counts.get(BulkItem.Status.DONE, 0), counts.get(BulkItem.Status.FAILED, 0)
    bad = counts.get(BulkItem.Status.BAD, 0) + counts.get(BulkItem.Status.SKIPPED, 0)
    pending = counts.get(BulkItem.Status.PENDING, 0)
    total = done + failed + pending
    rate = left = None
    if run.started_at and done + failed:
        end = run.finished_at or timezone.now()
        minutes = max((end - run.started_at).total_seconds(), 0.001) / 60
        rate = (done + failed) / minutes
        left = round(pending / rate * 60) if pending and rate else 0
    finished = run.status in (BulkRun.Status.DONE, BulkRun.Status.CANCELLED, BulkRun.Status.FAILED)
    percent = 100 if finished and not pending else (100 * (done + failed) // total if total else 0)
    return {
        "total": total,
        "done": done,
        "failed": failed,
        "bad": bad,
        "remaining": pending,
        "percent": percent,
        "rate_per_minute": round(rate, 1) if rate is not None else None,
        "seconds_left": left,
    }


# --- the worker -----------------------------------------------------------------------------


def bulk_run_process(run_id) -> None:
    """Work on run ``run_id`` under its lease until done, cancelled or the lease is lost."""
    run = BulkRun.objects.select_related("connection", "trigger").filter(pk=run_id).first()
    if run is None or run.status not in BulkRun.OPEN:
        return
    if not claims.claim(BulkRun, run.pk, ttl=LEASE):
        return
    try:
        if run.status == BulkRun.Status.QUEUED:
            BulkRun.objects.filter(pk=run.pk).update(
                status=BulkRun.Status.RUNNING, started_at=run.started_at or timezone.now()
            )
            run.refresh_from_db()
        if run.kind == BulkRun.Kind.CONNECT and run.status == BulkRun.Status.VALIDATING:
            _connect_validate(run)
        elif run.kind == BulkRun.Kind.CONNECT:
            _work(run, _connect_one)
        else:
            if not run.listed:
                _list(run)
            run.refresh_from_db()
            if run.status == BulkRun.Status.RUNNING:
                _work(run, _exalate_batch if run.kind == BulkRun.Kind.EXALATE else _unexalate_one)
    except claims.ClaimLost:
        return
    except TransientTrackerError as exc:
        _retry_later(run, str(exc), exc.retry_after)
    except TrackerError as exc:
        _finish(run, BulkRun.Status.FAILED, f"The instance refused the run: {exc}")
    finally:
        claims.release(BulkRun, run.pk)


def _retry_later(run: BulkRun, message: str, retry_after: float | None) -> None:
    delay = nudge.backoff_seconds(run.attempts + 1, retry_after)
    BulkRun.objects.filter(pk=run.pk).update(
        attempts=run.attempts + 1,
        error=f"Paused, will go on: {message}"[:2000],
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
    )
    _nudge_run(run.pk, countdown=delay)


def _finish(run: BulkRun, status: str, error: str = "") -> None:
    BulkRun.objects.filter(pk=run.pk).update(
        status=status, error=error[:2000], finished_at=timezone.now()
    )


def _cancelled(run: BulkRun) -> bool:
    if BulkRun.objects.filter(pk=run.pk, cancel_requested=True).exists():
        _finish(run, BulkRun.Status.CANCELLED)
        return True
    return False


def _add_items(run: BulkRun, items: list[BulkItem]) -> None:
    ids = [i.local_entity_id for i in items]
    have = set(
        BulkItem.objects.filter(run=run, local_entity_id__in=ids).values_list(
            "local_entity_id", flat=True
        )
    )
    BulkItem.objects.bulk_create([i for i in items if i.local_entity_id not in have])


def _list(run: BulkRun) -> None:
    """Fill the work list: the trigger's matches (exalate) or its twins (unexalate)."""
    if run.kind == BulkRun.Kind.UNEXALATE:
        links = (
            TriggerTwin.objects.filter(trigger_id=run.trigger_id)
            .filter(twin__in=Twin.objects.filter(_issue12("live_twins")()))
            .select_related("twin")
        )
        with transaction.atomic():
            _add_items(
                run,
                [
                    BulkItem(
                        run=run,
                        local_entity_id=link.twin.local_entity_id or f"twin:{link.twin_id}",
                        local_key=link.twin.local_key,
                        twin_id=link.twin_id,
                    )
                    for link in links
                ],
            )
            BulkRun.objects.filter(pk=run.pk).update(listed=True)
        return
    adapter = tracker_adapter_get()
    after = run.list_cursor
    while True:
        if _cancelled(run):
            return
        page = adapter.query_entities(run.query, after_id=after, limit=PAGE)
        with transaction.atomic():
            _add_items(
                run,
                [
                    BulkItem(
                        run=run,
                        local_entity_id=m.id,
                        local_key=m.key,
                        summary=m.summary[:200],
                    )
                    for m in page.matches
                ],
            )
            if page.matches:
                after = page.matches[-1].id
            done = not page.more or not page.matches
            BulkRun.objects.filter(pk=run.pk).update(list_cursor=after, listed=done)
        claims.renew(BulkRun, run.pk, ttl=LEASE)
        if done:
            return


def _work(run: BulkRun, handler) -> None:
    """Hand the pending items to ``handler`` in batches until none is left (or cancel)."""
    while True:
        if _cancelled(run):
            return
        batch = list(BulkItem.objects.filter(run=run, status=BulkItem.Status.PENDING)[:BATCH])
        if not batch:
            _finish(run, BulkRun.Status.DONE)
            return
        if handler is _exalate_batch:
            handler(run, batch)
        else:
            for item in batch:
                handler(run, item)
                claims.renew(BulkRun, run.pk, ttl=LEASE)
        claims.renew(BulkRun, run.pk, ttl=LEASE)


def _item_end(item: BulkItem, *, ok: bool, error: str = "", twin_id=None) -> None:
    BulkItem.objects.filter(pk=item.pk, status=BulkItem.Status.PENDING).update(
        status=BulkItem.Status.DONE if ok else BulkItem.Status.FAILED,
        error=error[:2000],
        twin_id=twin_id or item.twin_id,
        done_at=timezone.now(),
    )


def _exalate_batch(run: BulkRun, items: list[BulkItem]) -> None:
    """Twin and scan a batch: the sources are read together, each twin is got or made once."""
    adapter = tracker_adapter_get()
    try:
        replicas = adapter.read_replicas([i.local_entity_id for i in items])
    except TransientTrackerError:
        raise
    except TrackerError:
        replicas = {}
    reader = PrefetchedReplicas(adapter, replicas)
    connection = run.connection
    for item in items:
        try:
            with transaction.atomic():
                state_for(connection)
                try:
                    with transaction.atomic():
                        twin, _ = Twin.objects.get_or_create(
                            connection=connection,
                            local_entity_id=item.local_entity_id,
                            defaults={
                                "local_key": item.local_key,
                                "local_url": adapter.entity_url(item.local_entity_id),
                            },
                        )
                except IntegrityError:
                    twin = Twin.objects.get(
                        connection=connection, local_entity_id=item.local_entity_id
                    )
                if run.trigger_id:
                    TriggerTwin.objects.get_or_create(trigger_id=run.trigger_id, twin=twin)
                detect.twin_request_scan(twin_ids=[twin.pk], nudge=False)
            twin_scan(twin.pk, adapter=reader)
            problem = (
                SyncError.objects.filter(twin=twin, resolved_at__isnull=True)
                .values_list("message", flat=True)
                .first()
            )
            _item_end(item, ok=not problem, error=problem or "", twin_id=twin.pk)
        except TransientTrackerError:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad incident never blocks the others
            logger.exception("Bulk Exalate of %s failed", item.local_key)
            _item_end(item, ok=False, error=f"{item.local_key or item.local_entity_id}: {exc}")
        claims.renew(BulkRun, run.pk, ttl=LEASE)


def _issue12(name: str):
    """``sync.services.<name>`` (``twin_unexalate``, ``entity_connect``: issue 12), or None."""
    return getattr(importlib.import_module("sync.services"), name, None)


def _unexalate_one(run: BulkRun, item: BulkItem) -> None:
    unexalate = _issue12("twin_unexalate")
    twin = Twin.objects.filter(pk=item.twin_id).first()
    if twin is None:
        _item_end(item, ok=True, error="Already stopped.")
        return
    if unexalate is None:
        _item_end(item, ok=False, error="Unexalate is not available on this node yet (issue 12).")
        return
    try:
        unexalate(twin=twin, requested_by=run.requested_by)
    except SyncRefused as exc:
        _item_end(item, ok=False, error=f"{twin.local_key}: {exc}")
        return
    _item_end(item, ok=True)


def _connect_validate(run: BulkRun) -> None:
    """Check the good-looking rows on the instance: unknown local number, already twinned."""
    pending = list(BulkItem.objects.filter(run=run, status=BulkItem.Status.PENDING))
    adapter = tracker_adapter_get()
    found = adapter.find_entities([i.local_key for i in pending])
    twinned_local = set(
        Twin.objects.filter(
            connection=run.connection, local_entity_id__in=[r.id for r in found.values()]
        ).values_list("local_entity_id", flat=True)
    )
    twinned_remote = {
        k.upper()
        for k in Twin.objects.filter(
            connection=run.connection, remote_key__in=[i.remote_key for i in pending]
        ).values_list("remote_key", flat=True)
    }
    label = tracker_adapter_class_get().entity_label
    with transaction.atomic():
        for item in pending:
            ref = found.get(item.local_key.upper()) or found.get(item.local_key)
            problem = ""
            if ref is None:
                problem = f"Unknown local number: no single {label} {item.local_key} in this node's instance."
            elif ref.id in twinned_local:
                problem = (
                    f"Already twinned: {item.local_key} already syncs on {run.connection.name}."
                )
            elif item.remote_key.upper() in twinned_remote:
                problem = f"Already twinned: remote {item.remote_key} already syncs on {run.connection.name}."
            fields = {"local_entity_id": ref.id if ref else ""}
            if problem:
                fields.update(status=BulkItem.Status.BAD, error=problem)
            BulkItem.objects.filter(pk=item.pk).update(**fields)
        BulkRun.objects.filter(pk=run.pk).update(status=BulkRun.Status.PREVIEW)


def _connect_one(run: BulkRun, item: BulkItem) -> None:
    connect = _issue12("entity_connect")
    if connect is None:
        _item_end(item, ok=False, error="Connect is not available on this node yet (issue 12).")
        return
    try:
        twin = connect(
            connection=run.connection,
            local_key=item.local_key,
            remote_key=item.remote_key,
            requested_by=run.requested_by,
        )
    except SyncRefused as exc:
        _item_end(item, ok=False, error=str(exc))
        return
    _item_end(item, ok=True, twin_id=twin.pk)


def bulk_drain() -> int:
    """Beat: free leases of dead workers, re-nudge open runs nobody works on; return how many."""
    claims.release_dead_claims(BulkRun)
    claims.release_dead_claims(Trigger)
    now = timezone.now()
    stale = now - timedelta(seconds=settings.SYNC_DRAIN_GRACE)
    ids = list(
        BulkRun.objects.filter(status__in=BulkRun.OPEN, next_attempt_at__lte=stale)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .values_list("pk", flat=True)[:100]
    )
    BulkRun.objects.filter(pk__in=ids).update(next_attempt_at=now)
    for pk in ids:
        _nudge_run(pk)
    return len(ids)
