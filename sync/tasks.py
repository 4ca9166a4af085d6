"""Celery tasks of the sync engine: each takes ids, re-fetches, and calls one service.

The database is the queue (``sync.models``); these messages only nudge a worker to look
at a row, and only ``sync.nudge`` sends them (after commit). Every task is idempotent: it claims its row with a conditional UPDATE and
returns quietly when the row is gone, already done, or claimed by another worker. That is
why they run with ``acks_late`` (a message whose worker died is delivered again, and
doing the work twice does no harm) and why :func:`drain` can re-send any of them.
Soft and hard time limits stop a task that hangs; the row's lease then lapses (or is
freed by the drain when the process is gone) and the work resumes from its intent records.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from . import nudge, services

logger = logging.getLogger(__name__)

_SHORT = {"soft_time_limit": 120, "time_limit": 150}
_LONG = {
    "soft_time_limit": settings.CELERY_TASK_SOFT_TIME_LIMIT,
    "time_limit": settings.CELERY_TASK_TIME_LIMIT,
}


def _quietly(fn, *args):
    try:
        return fn(*args)
    except SoftTimeLimitExceeded:
        logger.warning(
            "%s%r hit its soft time limit; the drain task will resume it.", fn.__name__, args
        )
        return None


@shared_task(name="sync.exalate", acks_late=True, ignore_result=True, **_SHORT)
def exalate(request_id: str) -> None:
    """Resolve an exalate request (incident number → twin) and run the first scan."""
    _quietly(services.exalate_request_process, request_id)


@shared_task(name="sync.scan", acks_late=True, ignore_result=True, **_SHORT)
def scan(twin_id: int) -> None:
    """Read a twin's local incident and queue what the other side lacks."""
    nudge.started("sync.scan", twin_id)
    _quietly(services.twin_scan, twin_id)


@shared_task(name="sync.apply", acks_late=True, ignore_result=True, **_LONG)
def apply(twin_id: int) -> None:
    """Apply a twin's incoming replicas in order (long: may move large attachments)."""
    nudge.started("sync.apply", twin_id)
    _quietly(services.twin_apply, twin_id)


@shared_task(name="sync.deliver", acks_late=True, ignore_result=True, **_SHORT)
def deliver(connection_id: str) -> None:
    """Send a connection's due outgoing events to its remote node."""
    nudge.started("sync.deliver", connection_id)
    _quietly(services.connection_deliver, connection_id)


@shared_task(name="sync.poll", acks_late=True, ignore_result=True, **_SHORT)
def poll(connection_id: str) -> None:
    """From a node without URL: exchange messages with the remote node."""
    _quietly(services.connection_poll, connection_id)


@shared_task(name="sync.detect_changes", acks_late=True, ignore_result=True, **_SHORT)
def detect_changes(connection_id: str) -> None:
    """Poll the instance for incidents changed since the connection's watermark."""
    _quietly(services.connection_detect_changes, connection_id)


@shared_task(name="sync.detect_changes_all", acks_late=True, ignore_result=True, **_SHORT)
def detect_changes_all() -> None:
    """Beat: change detection for every active connection."""
    services.detect_changes_all()


@shared_task(name="sync.poll_remotes", acks_late=True, ignore_result=True, **_SHORT)
def poll_remotes() -> None:
    """Beat: every private connection on which this node has no URL polls its remote."""
    services.poll_remotes_all()


@shared_task(name="sync.drain", acks_late=True, ignore_result=True, **_SHORT)
def drain() -> None:
    """Beat: re-nudge work whose message was lost; free leases of dead workers."""
    services.sync_drain()


# --- triggers and bulk runs (issue 13) ------------------------------------------------------


@shared_task(name="sync.trigger_detect", acks_late=True, ignore_result=True, **_SHORT)
def trigger_detect(trigger_id: str) -> None:
    """Run one trigger's query from its watermark; exalate each new match."""
    _quietly(services.trigger_detect, trigger_id)


@shared_task(name="sync.trigger_scan_batch", acks_late=True, ignore_result=True, **_SHORT)
def trigger_scan_batch(twin_ids: list[int]) -> None:
    """Scans of several twins, their source reads batched: the first scans of twins a trigger
    made, and the twins one poll found changed (``sync.services.detect.scans_nudge``)."""
    _quietly(services.twins_scan_batch, twin_ids)


@shared_task(name="sync.trigger_hint", acks_late=True, ignore_result=True, **_SHORT)
def trigger_hint(entity_id: str) -> None:
    """The webhook announced an entity: does it now match an active trigger?"""
    _quietly(services.trigger_hint_process, entity_id)


@shared_task(name="sync.bulk_run", acks_late=True, ignore_result=True, **_LONG)
def bulk_run(run_id: str) -> None:
    """Work on a Bulk Exalate / Unexalate / Connect run under its lease."""
    _quietly(services.bulk_run_process, run_id)


@shared_task(name="sync.bulk_drain", acks_late=True, ignore_result=True, **_SHORT)
def bulk_drain() -> None:
    """Beat: resume bulk runs whose worker died or whose nudge was lost."""
    services.bulk_drain()


@shared_task(name="sync.unexalates_sweep", acks_late=True, ignore_result=True, **_SHORT)
def unexalates_sweep() -> None:
    """Beat (issue 12): end unexalated twins whose queue drained; remove delivered tombstones."""
    _quietly(services.unexalates_sweep)
