"""The drain: nothing depends on one Celery message surviving.

A beat task (``SYNC_DRAIN_INTERVAL``) frees the leases of dead worker processes on this
host and re-nudges every row that has been due for longer than ``SYNC_DRAIN_GRACE``
seconds: outgoing events (delivery), incoming replicas (apply), twins marked for a scan,
queued exalate requests. The rows are the queue; the nudges are only hints.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from connections.models import Connection

from .. import claims, nudge
from ..models import ConnectionSyncState, ExalateRequest, SyncEvent, Twin
from .base import OPEN_EVENT_STATUSES


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
            nudge.deliver(cid)
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
            nudge.apply(tid)
        counts["apply"] = len(twin_ids)

        scans = Twin.objects.filter(
            scan_requested__gt=F("scan_done"),
            connection__status=Connection.Status.ACTIVE,
        ).filter(Q(scan_nudged_at__isnull=True) | Q(scan_nudged_at__lte=stale))
        scan_ids = list(scans.values_list("pk", flat=True)[:limit])
        Twin.objects.filter(pk__in=scan_ids).update(scan_nudged_at=now)
        for tid in scan_ids:
            nudge.scan(tid)
        counts["scan"] = len(scan_ids)

        requests_due = ExalateRequest.objects.filter(
            status=ExalateRequest.Status.QUEUED,
            next_attempt_at__lte=stale,
            connection__status=Connection.Status.ACTIVE,
        )
        req_ids = list(requests_due.values_list("pk", flat=True)[:limit])
        ExalateRequest.objects.filter(pk__in=req_ids).update(next_attempt_at=now)
        for rid in req_ids:
            nudge.exalate(rid)
        counts["exalate"] = len(req_ids)
    return counts
