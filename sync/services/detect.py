"""Change detection: which twins' local entities changed, so that a scan looks at them.

Two ways in, both only *hints* (the scan re-reads the entity):

* **Polling** (:func:`connection_detect_changes`, every ``CHANGE_POLL_INTERVAL`` seconds
  via :func:`detect_changes_all`): the tracker lists entities updated since the
  connection's **watermark** (``ConnectionSyncState.watermark``) minus an overlap of
  ``CHANGE_POLL_OVERLAP`` seconds, so a change committed late with an earlier timestamp
  is not missed; the watermark only advances after the twins are marked.
* **Webhook** (:func:`webhook_receive`): the tracker announces one entity (ServiceNow: a
  business rule posts its sys_id and sys_mod_count).

The overlap re-lists changes already seen: :func:`twin_request_scan` skips a twin whose
(entity id, mod count) was scanned or announced before, unless a newer change time was
listed (a new attachment changes no ``sys_mod_count``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from connections.models import Connection
from connections.selectors import tracker_adapter_get
from trackers.errors import TrackerError

from .. import claims, nudge
from ..models import ConnectionSyncState, Twin
from ..nudge import scan as nudge_scan  # twin_request_scan's ``nudge`` argument hides the module
from . import failures
from .base import state_for

logger = logging.getLogger(__name__)

#: Connections whose changes are detected. A deactivated one too (issue 12): its changed
#: twins stay marked, held (the scan, delivery and apply wait), and go out on Activate.
DETECTING = (Connection.Status.ACTIVE, Connection.Status.DEACTIVATED)


def twin_request_scan(
    *,
    twin_ids: Iterable[int],
    mod_count: int | None = None,
    updated=None,
    attachments_marker: str = "",
    nudge: bool = True,
) -> list[int]:
    """Mark twins as needing a scan of their local entity; return the ids marked.

    With ``mod_count`` and ``updated`` (from a change listing), a twin is skipped when
    that ``sys_mod_count`` was already scanned or announced, no newer change time was
    announced and the ``attachments_marker`` (``ChangedEntity.attachments_marker``) is
    the one announced before: the (sys_id, sys_mod_count) de-duplication of the overlap
    window, widened by the time and the marker because a new attachment changes no
    ``sys_mod_count`` and may fall in the second of the last listing. ``nudge``
    enqueues a scan task per marked twin.
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
            if attachments_marker:
                newer = newer | ~Q(last_attachments_marker=attachments_marker)
                update["last_attachments_marker"] = attachments_marker
            qs = qs.filter(newer)
            update["scan_mod_count"] = mod_count
        if qs.update(**update):
            marked.append(twin_id)
            if nudge:
                nudge_scan(twin_id)
    return marked


#: Twins per batched scan task: their source reads share one request per list (ServiceNow
#: ``sys_idIN`` chunks of 100: incidents, journal, attachments).
SCAN_BATCH = 50


def scans_nudge(twin_ids: list[int]) -> None:
    """Nudge the scans of marked twins: one ``sync.scan`` for a lone twin, else batched scans
    (``sync.trigger_scan_batch``, :data:`SCAN_BATCH` twins each) whose source reads are
    batched by the adapter's ``read_replicas``, so a poll that finds many changes costs a
    fraction of a call per incident (issue 14) instead of three."""
    if len(twin_ids) == 1:
        nudge_scan(twin_ids[0])
        return
    for start in range(0, len(twin_ids), SCAN_BATCH):
        nudge.scan_batch(twin_ids[start : start + SCAN_BATCH])


def webhook_receive(*, entity_id: str, mod_count: int | None = None) -> int:
    """The tracker announced that entity ``entity_id`` changed (ServiceNow: a business rule).

    Marks every twin of that entity on an active connection for a scan (announcements
    are hints: the scan re-reads the entity). Returns the number of twins marked.
    """
    ids = list(
        Twin.objects.filter(
            local_entity_id=entity_id, connection__status__in=DETECTING
        ).values_list("pk", flat=True)
    )
    with transaction.atomic():
        marked = len(twin_request_scan(twin_ids=ids, mod_count=mod_count))
        from .triggers import triggers_webhook_hint  # issue 13: a new match of a trigger?

        triggers_webhook_hint(entity_id=entity_id)
        return marked


def connection_detect_changes(connection_id) -> int:
    """Poll the instance for entities changed since the connection's watermark.

    Lists changes from ``watermark - CHANGE_POLL_OVERLAP``, keeps those with a twin on
    this connection, marks them for a scan unless their (sys_id, sys_mod_count) was seen,
    and only then advances the watermark to the newest ``updated`` seen. Returns the
    number of twins marked. Errors leave the watermark where it was.
    """
    connection = Connection.objects.filter(pk=connection_id, status__in=DETECTING).first()
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
            changed = tracker_adapter_get().list_changed(
                since=since, overlap_seconds=settings.CHANGE_POLL_OVERLAP
            )
        except TrackerError as exc:
            # Credentials refused, a hibernating instance, a right every entity needs: one
            # connection error that clears by itself (probed). Anything else: next poll.
            # A 429's Retry-After holds every call of this node (the adapter's busy gate).
            if failures.tracker_connection_error(connection=connection, exc=exc) is None:
                logger.info("Change detection on %s failed, will retry: %s", connection.pk, exc)
            failures.node_tracker_failed(connection=connection, exc=exc)  # still? node error
            return 0
        failures.node_tracker_ok()  # a poll that works resolves the node's own errors
        by_id: dict[str, tuple[int, datetime, str]] = {}
        newest = state.watermark
        for c in changed:
            mc, upd, marker = by_id.get(c.id, (-1, c.updated, ""))
            by_id[c.id] = (
                max(mc, c.mod_count),
                max(upd, c.updated),
                getattr(c, "attachments_marker", "") or marker,
            )
            if newest is None or c.updated > newest:
                newest = c.updated
        ids = list(by_id)
        with transaction.atomic():
            for start in range(0, len(ids), 500):
                rows = Twin.objects.filter(
                    connection=connection, local_entity_id__in=ids[start : start + 500]
                ).values_list("pk", "local_entity_id")
                for pk, entity_id in rows:
                    mod_count, updated, marker = by_id[entity_id]
                    marked += twin_request_scan(
                        twin_ids=[pk],
                        mod_count=mod_count,
                        updated=updated,
                        attachments_marker=marker,
                        nudge=False,
                    )
            scans_nudge(marked)
            ConnectionSyncState.objects.filter(pk=state.pk).update(
                watermark=newest, last_detect_at=timezone.now()
            )
    finally:
        claims.release(ConnectionSyncState, state.pk, prefix="detect_")
    return len(marked)


def detect_changes_all() -> int:
    """Probe connections whose self-clearing error is due (``failures.probes_run``), then
    enqueue change detection for every active connection that has twins; return how many."""
    try:
        failures.probes_run()
    except Exception:  # noqa: BLE001 - a failing probe must never stop change detection
        logger.exception("Probing connections in Error failed")
    ids = list(
        Connection.objects.filter(status__in=DETECTING, twins__isnull=False)
        .order_by()
        .values_list("pk", flat=True)
        .distinct()
    )
    for cid in ids:
        nudge.detect_changes(cid)
    from .triggers import triggers_detect_all  # issue 13: the triggers' queries, same tick

    triggers_detect_all()
    return len(ids)
