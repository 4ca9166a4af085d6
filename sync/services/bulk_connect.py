"""Bulk Connect: a CSV of local number ↔ remote key pairs, previewed, then linked (issue 13).

Exalate offers Bulk Connect for other trackers, not for ServiceNow; this node does. The file
is read by :mod:`.bulk_csv` (whole-file refusals and per-row reasons); the worker checks
each row on the instance for the preview (``bulk._connect_validate``); Confirm links the
good rows with ``entity_connect`` (issue 12), never the bad ones; the result is CSV.
"""

from __future__ import annotations

import csv
import io

from django.db import transaction
from django.utils import timezone

from connections.models import Connection
from connections.selectors import tracker_adapter_class_get

from ..trigger_models import BulkItem, BulkRun
from .base import SyncRefused
from .bulk import _nudge_run
from .bulk_csv import parse_pairs
from .triggers import audit


def bulk_connect_upload(
    *, connection: Connection, data: bytes, file_name: str = "", requested_by: str = ""
) -> BulkRun:
    """Read a CSV of pairs into a Bulk Connect run in ``validating`` (the worker then checks the
    keys on the instance and the run waits in ``preview`` for Confirm). Raises SyncRefused for a
    file that cannot be used at all; nothing is linked before Confirm."""
    if connection.status != Connection.Status.ACTIVE:
        raise SyncRefused(
            f"Connection {connection.name} is {connection.get_status_display().lower()}: "
            "only an active connection can connect entities."
        )
    cls = tracker_adapter_class_get()
    rows = parse_pairs(data, local_problem=cls.key_problem)
    with transaction.atomic():
        run = BulkRun.objects.create(
            kind=BulkRun.Kind.CONNECT,
            status=BulkRun.Status.VALIDATING,
            connection=connection,
            file_name=(file_name or "")[:255],
            requested_by=requested_by[:150],
            next_attempt_at=timezone.now(),
        )
        BulkItem.objects.bulk_create(
            [
                BulkItem(
                    run=run,
                    line=r.line,
                    local_key=cls.normalize_key(r.local_key) if not r.problem else r.local_key,
                    remote_key=r.remote_key,
                    status=BulkItem.Status.BAD if r.problem else BulkItem.Status.PENDING,
                    error=r.problem,
                )
                for r in rows
            ],
            batch_size=1000,
        )
        _nudge_run(run.pk)
    return run


def bulk_connect_confirm(*, run: BulkRun, requested_by: str = "") -> BulkRun:
    """Confirm a previewed Bulk Connect: link its good rows (the bad ones stay unlinked)."""
    with transaction.atomic():
        updated = BulkRun.objects.filter(
            pk=run.pk, kind=BulkRun.Kind.CONNECT, status=BulkRun.Status.PREVIEW
        ).update(status=BulkRun.Status.QUEUED, next_attempt_at=timezone.now())
        if not updated:
            run.refresh_from_db()
            if run.status in (BulkRun.Status.QUEUED, BulkRun.Status.RUNNING, BulkRun.Status.DONE):
                return run  # confirmed twice: one run
            raise SyncRefused(
                "Only a checked Bulk Connect file waiting for Confirm can be confirmed."
            )
        _nudge_run(run.pk)
    audit(requested_by, "bulk-connect", f"connection {run.connection_id}", f"run {run.pk}")
    run.refresh_from_db()
    return run


def bulk_connect_result_csv(run: BulkRun) -> str:
    """The run's rows as CSV: ``line,local number,remote key,result,reason``."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["line", "local number", "remote key", "result", "reason"])
    for item in BulkItem.objects.filter(run=run).order_by("line", "id"):
        result = {
            BulkItem.Status.DONE: "linked",
            BulkItem.Status.FAILED: "failed",
            BulkItem.Status.BAD: "not linked",
            BulkItem.Status.SKIPPED: "not linked",
        }.get(item.status, "valid, not linked yet")
        writer.writerow([item.line, item.local_key, item.remote_key, result, item.error])
    return out.getvalue()
