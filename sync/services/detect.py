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
from trackers.errors import TrackerAuthenticationError, TrackerError

from .. import claims, nudge
from ..models import ConnectionSyncState, Twin
from ..nudge import scan as nudge_scan  # twin_request_scan's ``nudge`` argument hides the module
from . import failures
from .base import state_for

logger = logging.getLogger(__name__)


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
                nudge_scan(twin_id)
    return marked


def webhook_receive(*, entity_id: str, mod_count: int | None = None) -> int:
    """The tracker announced that entity ``entity_id`` changed (ServiceNow: a business rule).

    Marks every twin of that entity on an active connection for a scan (announcements
    are hints: the scan re-reads the entity). Returns the number of twins marked.
    """
    ids = list(
        Twin.objects.filter(
            local_entity_id=entity_id, connection__status=Connection.Status.ACTIVE
        ).values_list("pk", flat=True)
    )
    with transaction.atomic():
        return len(twin_request_scan(twin_ids=ids, mod_count=mod_count))


def connection_detect_changes(connection_id) -> int:
    """Poll the instance for entities changed since the connection's watermark.

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
            changed = tracker_adapter_get().list_changed(
                since=since, overlap_seconds=settings.CHANGE_POLL_OVERLAP
            )
        except TrackerAuthenticationError as exc:
            failures.login_refused(connection=connection, exc=exc)
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


def detect_changes_all() -> int:
    """Enqueue change detection for every active connection that has twins; return how many."""
    ids = list(
        Connection.objects.filter(status=Connection.Status.ACTIVE, twins__isnull=False)
        .order_by()
        .values_list("pk", flat=True)
        .distinct()
    )
    for cid in ids:
        nudge.detect_changes(cid)
    return len(ids)
