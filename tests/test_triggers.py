"""Triggers at work, in one process: a local connection, the query-running fake tracker.

Celery is replaced by a list the test drains (``sync.nudge.nudge`` is the seam), as in
test_sync_engine.py; the tracker is plugged through the registry.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from connections.models import Connection
from sync import services
from sync.models import SyncEvent, TriggerTwin, Twin
from tests.trigger_fakes import (  # noqa: F401 - fixtures
    pair_fixture,
    runner_fixture,
    tracker_fixture,
    twins_on,
)

pytestmark = pytest.mark.django_db


def sources(tracker, n, summary="Network down", **fields):
    return [tracker.seed(summary=f"{summary} {i}", fields=fields) for i in range(n)]


def test_saving_a_trigger_mirrors_exactly_its_matches_once(tracker, runner, pair):
    left, right = pair
    hits = sources(tracker, 3, priority="1")
    misses = sources(tracker, 2, summary="Printer", priority="3")
    trigger, count = services.trigger_save(connection=left, query="priority=1")
    assert count == 3
    runner.run()
    assert {t.local_entity_id for t in twins_on(left)} == {h["id"] for h in hits}
    assert all(t.status == Twin.Status.SYNCHRONIZED for t in twins_on(left))
    assert TriggerTwin.objects.filter(trigger=trigger).count() == 3
    # 3 mirrors were made, none for the misses, and another poll makes nothing new.
    assert len(tracker.incidents) == 5 + 3
    services.triggers_detect_all()
    runner.run()
    assert twins_on(left).count() == 3 and len(tracker.incidents) == 8
    assert not {m["id"] for m in misses} & set(
        twins_on(left).values_list("local_entity_id", flat=True)
    )


def test_an_incident_changed_to_match_later_is_picked_up_by_the_next_poll(tracker, runner, pair):
    left, _ = pair
    inc = tracker.seed(summary="Quiet", fields={"priority": "3"})
    services.trigger_save(connection=left, query="priority=1")
    runner.run()
    assert not twins_on(left).exists()
    inc["fields"]["priority"] = "1"
    tracker.human_edit(inc["id"])
    services.detect_changes_all()
    runner.run()
    assert twins_on(left).get().local_entity_id == inc["id"]


def test_the_webhook_hint_exalates_a_new_match(tracker, runner, pair):
    left, _ = pair
    services.trigger_save(connection=left, query="priority=1")
    runner.run()
    inc = tracker.seed(summary="Fresh", fields={"priority": "1"})
    services.webhook_receive(entity_id=inc["id"])
    runner.run()
    assert twins_on(left).get().local_entity_id == inc["id"]


def test_two_triggers_matching_one_incident_make_one_twin(tracker, runner, pair):
    left, _ = pair
    inc = tracker.seed(summary="Network down", fields={"priority": "1"})
    t1, _ = services.trigger_save(connection=left, query="priority=1")
    t2, _ = services.trigger_save(connection=left, query="short_descriptionLIKEnetwork")
    runner.run()
    twin = twins_on(left).get()
    assert twin.local_entity_id == inc["id"]
    assert set(TriggerTwin.objects.filter(twin=twin).values_list("trigger_id", flat=True)) == {
        t1.pk,
        t2.pk,
    }
    assert SyncEvent.objects.filter(twin=twin, direction="out", kind="replica").count() == 1


def test_a_disabled_trigger_starts_nothing_new_but_its_twins_go_on(tracker, runner, pair):
    left, _ = pair
    first = tracker.seed(summary="One", fields={"priority": "1"})
    trigger, _ = services.trigger_save(connection=left, query="priority=1")
    runner.run()
    services.trigger_set_active(trigger=trigger, active=False)
    tracker.seed(summary="Two", fields={"priority": "1"})
    services.detect_changes_all()
    tracker.human_comment(first["id"], "still syncing")
    runner.run()
    assert twins_on(left).count() == 1
    mirror = tracker.incidents[Twin.objects.get(connection=left).remote_entity_id]
    assert any("still syncing" in c["body"] for c in mirror["comments"])


def test_a_deactivated_connection_holds_the_matches_and_sends_them_after_activate(
    tracker, runner, pair, settings
):
    left, right = pair
    Connection.objects.filter(pk__in=[left.pk, right.pk]).update(
        status=Connection.Status.DEACTIVATED
    )
    left.refresh_from_db()
    inc = tracker.seed(summary="Held", fields={"priority": "1"})
    services.trigger_save(connection=left, query="priority=1")
    runner.run()
    twin = twins_on(left).get()
    assert twin.local_entity_id == inc["id"] and not twin.remote_entity_id
    assert not SyncEvent.objects.exists()
    Connection.objects.filter(pk__in=[left.pk, right.pk]).update(status=Connection.Status.ACTIVE)
    settings.SYNC_DRAIN_GRACE = 0
    Twin.objects.update(scan_nudged_at=timezone.now() - timezone.timedelta(seconds=5))
    services.sync_drain()
    runner.run()
    twin.refresh_from_db()
    assert twin.status == Twin.Status.SYNCHRONIZED and twin.remote_entity_id


def test_a_poll_that_finds_new_matches_costs_one_query_per_trigger(tracker, runner, pair):
    left, _ = pair
    sources(tracker, 30, priority="1")
    trigger, _ = services.trigger_save(connection=left, query="priority=1")
    runner.run()
    sources(tracker, 10, summary="New", priority="1")
    tracker.calls.clear()
    services.trigger_detect(trigger.pk)
    assert tracker.calls.count("query_entities") == 1
    assert len(runner.queue) >= 1  # the new twins' first scans, batched
    runner.run()
    assert twins_on(left).count() == 40


def test_first_scans_of_new_twins_read_their_sources_in_one_batch(tracker, runner, pair):
    left, _ = pair
    sources(tracker, 12, priority="1")
    services.trigger_save(connection=left, query="priority=1")
    tracker.calls.clear()
    runner.run()
    assert tracker.calls.count("read_replicas") == 1
