"""Triggers: a saved query whose every match is exalated on its connection, once (issue 13).

Exalate's Triggers (``exalate-features.md``: entity type, **If** in the tracker's query
language, connection, notes, Active) with two safeguards Exalate lacks for ServiceNow:

* **On save** the query is checked term by term and against the table's real fields
  (``TrackerAdapter.query_problem``: an instance silently drops a condition on an unknown
  field and then matches far more than meant), then run once with limit 1 for the number
  of matches (``query_count``). An empty query matches everything: it is saved only
  when the admin confirms, having seen the count (:class:`ConfirmAll`).
* **At work**, change detection runs each active trigger's query once per poll with the
  trigger's own watermark (:func:`trigger_detect`, from :func:`triggers_detect_all`,
  which ``detect.detect_changes_all`` calls in the same beat tick); the webhook's hint is
  checked against the triggers too (:func:`triggers_webhook_hint`). Each match without a
  twin on the connection gets one (the twin's unique constraint per (connection, entity)
  makes two triggers share one) and its first scan; the source reads of a batch of new
  twins are made together (``read_replicas``: ``sys_idIN`` chunks).

A disabled trigger starts nothing new; its twins go on syncing. On a Deactivated
connection the trigger still finds its matches and makes their twins, which wait (the
scan runs only on an Active connection) and go out after Activate (the drain re-nudges).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from connections.models import Connection
from connections.selectors import tracker_adapter_class_get, tracker_adapter_get
from trackers.errors import TrackerError
from trackers.interface import QueryMatch, TrackerAdapter

from .. import claims, nudge
from ..models import Twin
from ..trigger_models import Trigger, TriggerTwin
from . import detect
from .base import SyncRefused, state_for
from .scan import twin_scan

logger = logging.getLogger(__name__)

#: Connection states on which a trigger finds matches (Deactivated: held until Activate).
FINDING = (Connection.Status.ACTIVE, Connection.Status.DEACTIVATED, Connection.Status.ERROR)
PAGE = 500
SCAN_BATCH = detect.SCAN_BATCH


class ConfirmAll(SyncRefused):
    """An empty query matches every entity: saved only with ``confirm_all``; ``count`` says how many."""

    def __init__(self, message: str, *, count: int):
        super().__init__(message)
        self.count = count


@dataclass(frozen=True)
class QueryCheck:
    """What saving a query found: ``count`` matches now (``None`` when it could not run)."""

    count: int


def _tasks():
    from .. import tasks

    return tasks


def audit(actor, action: str, target: str = "", detail: str = "") -> None:
    """Record an admin action in the audit log when the audit app is installed (issue 11)."""
    try:
        from audit.services import audit_record
    except Exception:  # noqa: BLE001 - not installed (yet): nothing to record into
        return
    try:
        audit_record(actor=actor or "system", action=action, target=target, detail=detail)
    except Exception:  # noqa: BLE001 - the audit log never blocks the action itself
        logger.exception("Could not record %s in the audit log", action)


def query_check(
    *, query: str, confirm_all: bool = False, adapter: TrackerAdapter | None = None
) -> QueryCheck:
    """Check ``query`` against this node's instance and count its matches (issue 13, on save).

    Calls: the table's fields (one request, see ``query_problem``) and one count (limit 1).
    Raises SyncRefused naming the bad term (syntax, unknown field, too long, the tracker
    cannot run queries, the instance cannot be reached), ConfirmAll for an empty query
    without ``confirm_all``.
    """
    query = (query or "").strip()
    try:
        adapter = adapter or tracker_adapter_get()
    except TrackerError as exc:
        raise SyncRefused(f"This node's instance is not set up: {exc}") from None
    if not adapter.supports_queries:
        raise SyncRefused(f"{adapter.display_name} has no trigger queries on this node.")
    problem = adapter.query_syntax_problem(query)
    if problem:
        raise SyncRefused(problem)
    try:
        problem = adapter.query_problem(query)
        if problem:
            raise SyncRefused(problem)
        count = adapter.query_count(query)
    except TrackerError as exc:
        raise SyncRefused(f"The query could not be run on this node's instance: {exc}") from None
    if not query and not confirm_all:
        raise ConfirmAll(
            f"The query is empty, so it matches every {adapter.entity_label}: all {count:,} of them "
            "would be exalated. Confirm to save it anyway.",
            count=count,
        )
    return QueryCheck(count=count)


def trigger_save(
    *,
    trigger: Trigger | None = None,
    connection: Connection,
    query: str,
    entity_type: str = "incident",
    notes: str = "",
    active: bool = True,
    confirm_all: bool = False,
    requested_by: str = "",
) -> tuple[Trigger, int]:
    """Create (``trigger`` None) or change a trigger after :func:`query_check`; return it and its count.

    A changed query starts again from no watermark (its first poll lists every current
    match). An active trigger is polled at once. Raises SyncRefused / ConfirmAll.
    """
    query = (query or "").strip()
    cls = tracker_adapter_class_get()
    if entity_type not in (cls.entity_types or ("incident",)):
        raise SyncRefused(f"{cls.display_name} triggers can watch {', '.join(cls.entity_types)}.")
    if connection.status == Connection.Status.PENDING:
        raise SyncRefused(
            f"Connection {connection.name} is still pending: accept its invitation first."
        )
    check = query_check(query=query, confirm_all=confirm_all)
    now = timezone.now()
    with transaction.atomic():
        if trigger is None:
            trigger = Trigger.objects.create(
                connection=connection,
                query=query,
                entity_type=entity_type,
                notes=notes,
                active=active,
                last_count=check.count,
                last_checked_at=now,
                created_by=requested_by[:150],
            )
            action = "trigger-created"
        else:
            trigger = Trigger.objects.select_for_update().get(pk=trigger.pk)
            if trigger.query != query or trigger.connection_id != connection.pk:
                trigger.watermark = None
            trigger.query, trigger.connection = query, connection
            trigger.entity_type, trigger.notes, trigger.active = entity_type, notes, active
            trigger.last_count, trigger.last_checked_at, trigger.last_error = check.count, now, ""
            trigger.save()
            action = "trigger-changed"
        if trigger.active:
            nudge.nudge(_tasks().trigger_detect, str(trigger.pk))
    audit(requested_by, action, f"trigger {trigger.pk}", query[:200])
    return trigger, check.count


def trigger_set_active(*, trigger: Trigger, active: bool, requested_by: str = "") -> Trigger:
    """Enable or disable a trigger. Disabled: it starts nothing new; its twins go on syncing.

    Enabled again, its next poll covers what changed while it was off (from its watermark).
    """
    with transaction.atomic():
        Trigger.objects.filter(pk=trigger.pk).update(active=active, updated_at=timezone.now())
        if active:
            nudge.nudge(_tasks().trigger_detect, str(trigger.pk))
    audit(
        requested_by, "trigger-enabled" if active else "trigger-disabled", f"trigger {trigger.pk}"
    )
    trigger.refresh_from_db()
    return trigger


def trigger_delete(*, trigger: Trigger, requested_by: str = "") -> None:
    """Delete a trigger. The twins it started go on syncing (Bulk Unexalate first to stop them)."""
    pk = trigger.pk
    Trigger.objects.filter(pk=pk).delete()
    audit(requested_by, "trigger-deleted", f"trigger {pk}", trigger.query[:200])


def trigger_preview(*, query: str, limit: int = 10) -> list[QueryMatch]:
    """The first ``limit`` matches of ``query`` (one request). Raises SyncRefused when it cannot run."""
    try:
        adapter = tracker_adapter_get()
        problem = adapter.query_syntax_problem(query or "")
        if problem:
            raise SyncRefused(problem)
        return adapter.query_entities(query or "", limit=limit).matches
    except TrackerError as exc:
        raise SyncRefused(f"The query could not be run on this node's instance: {exc}") from None


# --- at work ------------------------------------------------------------------------------


def triggers_detect_all() -> int:
    """Nudge a poll of every active trigger on a connection that finds (Active, Deactivated,
    Error); return how many. Called by ``detect.detect_changes_all`` in the same tick."""
    ids = list(
        Trigger.objects.filter(active=True, connection__status__in=FINDING).values_list(
            "pk", flat=True
        )
    )
    for pk in ids:
        nudge.nudge(_tasks().trigger_detect, str(pk))
    return len(ids)


def trigger_detect(trigger_id) -> int:
    """Run one trigger's query from its watermark and exalate each new match; return how many.

    Lists matches updated at or after ``watermark - CHANGE_POLL_OVERLAP`` (all current
    matches when there is no watermark yet), key-set paged by id, 500 per request: a
    poll that finds 10 new matches costs one request, however many twins exist. The
    watermark moves to the poll's start only after every page was processed.
    """
    trigger = (
        Trigger.objects.select_related("connection")
        .filter(pk=trigger_id, active=True, connection__status__in=FINDING)
        .first()
    )
    if trigger is None or not claims.claim(Trigger, trigger.pk, ttl=300):
        return 0
    started = timezone.now()
    made = 0
    try:
        adapter = tracker_adapter_get()
        since = (
            trigger.watermark - timedelta(seconds=settings.CHANGE_POLL_OVERLAP)
            if trigger.watermark
            else None
        )
        after = ""
        for _ in range(10_000):
            page = adapter.query_entities(trigger.query, since=since, after_id=after, limit=PAGE)
            made += len(exalate_matches(trigger=trigger, matches=page.matches))
            claims.renew(Trigger, trigger.pk, ttl=300)
            if not page.more or not page.matches:
                break
            after = page.matches[-1].id
        Trigger.objects.filter(pk=trigger.pk).update(
            watermark=started, last_poll_at=timezone.now(), last_error=""
        )
    except TrackerError as exc:
        logger.info("Trigger %s could not poll, will retry: %s", trigger.pk, exc)
        Trigger.objects.filter(pk=trigger.pk).update(last_error=str(exc)[:2000])
    except claims.ClaimLost:
        pass
    finally:
        claims.release(Trigger, trigger.pk)
    return made


def exalate_matches(*, trigger: Trigger, matches: Iterable[QueryMatch]) -> list[int]:
    """Give each match without a twin on the trigger's connection one; link all to the trigger.

    Returns the ids of the twins made now (their first scan is nudged in batches; on a
    connection that is not Active they wait). Safe to run twice and concurrently: the
    twin's unique constraint per (connection, entity) decides, never a second twin.
    """
    matches = list(matches)
    if not matches:
        return []
    connection = trigger.connection
    made: list[int] = []
    ids = [m.id for m in matches]
    with transaction.atomic():
        existing = dict(
            Twin.objects.filter(connection=connection, local_entity_id__in=ids).values_list(
                "local_entity_id", "pk"
            )
        )
        # A mirror this connection made (a local connection's other end, in the same
        # instance) is never exalated back on it.
        mirrors = set(
            Twin.objects.filter(connection=connection, remote_entity_id__in=ids).values_list(
                "remote_entity_id", flat=True
            )
        )
        state_for(connection)
        for match in matches:
            if match.id in existing or match.id in mirrors:
                continue
            try:
                with transaction.atomic():
                    twin = Twin.objects.create(
                        connection=connection,
                        local_entity_id=match.id,
                        local_key=match.key,
                        local_url=match.url,
                        entity_type=trigger.entity_type,
                    )
            except IntegrityError:  # another worker or trigger made it a moment ago
                twin = Twin.objects.filter(connection=connection, local_entity_id=match.id).first()
                if twin is None:
                    continue
            else:
                made.append(twin.pk)
            existing[match.id] = twin.pk
        TriggerTwin.objects.bulk_create(
            [TriggerTwin(trigger=trigger, twin_id=pk) for pk in existing.values()],
            ignore_conflicts=True,
        )
        if made:
            detect.twin_request_scan(twin_ids=made, nudge=False)
            for start in range(0, len(made), SCAN_BATCH):
                nudge.scan_batch(made[start : start + SCAN_BATCH])
    return made


class PrefetchedReplicas:
    """A tracker adapter whose ``read_replica`` answers first from replicas read in a batch.

    Everything else (and a replica not prefetched, or asked for a second time) goes to the
    real adapter, so a scan that re-reads after a write sees the instance, not the batch.
    """

    def __init__(self, adapter: TrackerAdapter, replicas: dict[str, dict]):
        self._adapter = adapter
        self._replicas = dict(replicas)

    def read_replica(self, entity_id: str) -> dict:
        """The prefetched replica of ``entity_id`` once, then the instance's."""
        replica = self._replicas.pop(entity_id, None)
        return replica if replica is not None else self._adapter.read_replica(entity_id)

    def __getattr__(self, name):
        return getattr(self._adapter, name)


def twins_scan_batch(twin_ids: Iterable[int]) -> int:
    """First scans of new twins, their source reads batched (``read_replicas``); return how many
    queued an outgoing replica. A twin whose batch read failed is read alone by its scan."""
    twins = list(
        Twin.objects.filter(
            pk__in=list(twin_ids), connection__status=Connection.Status.ACTIVE
        ).values_list("pk", "local_entity_id")
    )
    if not twins:
        return 0
    adapter = tracker_adapter_get()
    try:
        replicas = adapter.read_replicas([e for _, e in twins if e])
    except TrackerError as exc:
        logger.info("Batch read failed, the scans read one by one: %s", exc)
        replicas = {}
    reader = PrefetchedReplicas(adapter, replicas)
    return sum(1 for pk, _ in twins if twin_scan(pk, adapter=reader))


def triggers_webhook_hint(*, entity_id: str) -> None:
    """The webhook announced ``entity_id``: check it against the active triggers on a worker."""
    if Trigger.objects.filter(active=True, connection__status__in=FINDING).exists():
        nudge.nudge(_tasks().trigger_hint, entity_id)


def trigger_hint_process(entity_id: str) -> int:
    """Does ``entity_id`` now match an active trigger whose connection has no twin of it?
    One request per such trigger (``query_contains``); each match is exalated. Returns how many."""
    triggers = list(
        Trigger.objects.select_related("connection")
        .filter(active=True, connection__status__in=FINDING)
        .exclude(connection__twins__local_entity_id=entity_id)
    )
    made = 0
    if not triggers:
        return 0
    adapter = tracker_adapter_get()
    for trigger in triggers:
        try:
            if entity_id not in adapter.query_contains(trigger.query, [entity_id]):
                continue
            ref = adapter.get_entity(entity_id)
        except TrackerError as exc:
            logger.info("Webhook hint for %s on trigger %s failed: %s", entity_id, trigger.pk, exc)
            continue
        made += len(
            exalate_matches(
                trigger=trigger, matches=[QueryMatch(id=ref.id, key=ref.key, url=ref.url)]
            )
        )
    return made
