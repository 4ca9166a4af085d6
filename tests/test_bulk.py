"""Bulk Exalate / Unexalate / Connect in one process (fake tracker, tasks run in order).

A worker killed mid-run is simulated by a run whose lease is left behind (the kill gives
no chance to release it) and then expires: the drain hands the run to the next worker,
which continues with the pending items and makes no second twin or mirror.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from sync import claims, nudge, services
from sync.models import BulkItem, BulkRun, SyncEvent, Twin
from sync.services import bulk as bulk_module
from sync.services.base import SyncRefused
from sync.services.bulk_csv import MAX_ROWS, parse_pairs
from tests.trigger_fakes import (  # noqa: F401 - fixtures
    pair_fixture,
    runner_fixture,
    tracker_fixture,
    twins_on,
)

pytestmark = pytest.mark.django_db


def test_bulk_exalate_twins_every_match_and_shows_full_progress(tracker, runner, pair):
    left, _ = pair
    for i in range(7):
        tracker.seed(summary=f"Match {i}", fields={"priority": "1"})
    tracker.seed(summary="Other", fields={"priority": "4"})
    trigger, _ = services.trigger_save(connection=left, query="priority=1", active=False)
    run = services.bulk_exalate_start(trigger=trigger)
    assert services.bulk_exalate_start(trigger=trigger).pk == run.pk  # one open run
    runner.run()
    run.refresh_from_db()
    progress = services.bulk_progress(run)
    assert run.status == BulkRun.Status.DONE
    assert progress["done"] == 7 and progress["failed"] == 0 and progress["percent"] == 100
    assert progress["remaining"] == 0 and progress["rate_per_minute"] > 0
    assert twins_on(left).count() == 7
    assert all(t.status == Twin.Status.SYNCHRONIZED for t in twins_on(left))


def test_a_run_killed_mid_way_resumes_from_the_drain_without_a_duplicate(
    tracker, runner, pair, monkeypatch, settings
):
    left, _ = pair
    for i in range(120):
        tracker.seed(summary=f"Match {i}", fields={"priority": "1"})
    trigger, _ = services.trigger_save(connection=left, query="priority=1", active=False)
    run = services.bulk_exalate_start(trigger=trigger)
    real_batch = bulk_module._exalate_batch
    calls = {"n": 0}

    class Killed(BaseException):
        pass

    def dying(run_, items):
        calls["n"] += 1
        if calls["n"] == 2:
            raise Killed  # SIGKILL: no finally of ours would run either
        return real_batch(run_, items)

    monkeypatch.setattr(bulk_module, "_exalate_batch", dying)
    real_release = claims.release

    def release(model, pk, prefix=""):  # the killed worker never gives its run lease back
        if model is not BulkRun:
            real_release(model, pk, prefix=prefix)

    monkeypatch.setattr(claims, "release", release)
    with pytest.raises(Killed):
        runner.run()
    runner.queue.clear()
    monkeypatch.undo()
    monkeypatch.setattr(nudge, "nudge", runner.enqueue)
    from tests.sync_fakes import FakeAdapter

    monkeypatch.setattr(FakeAdapter, "current", tracker)
    settings.TRACKER_ADAPTERS = {"servicenow": "tests.sync_fakes.FakeAdapter"}
    assert BulkItem.objects.filter(run=run, status="done").count() == 50
    assert services.bulk_drain() == 0  # the lease still looks held
    BulkRun.objects.filter(pk=run.pk).update(
        claimed_until=timezone.now() - timezone.timedelta(seconds=1),
        next_attempt_at=timezone.now() - timezone.timedelta(seconds=60),
    )
    assert services.bulk_drain() == 1
    runner.run()
    settings.SYNC_DRAIN_GRACE = 0  # the nudges lost with the killed worker
    SyncEvent.objects.update(next_attempt_at=timezone.now() - timezone.timedelta(seconds=1))
    services.sync_drain()
    runner.run()
    run.refresh_from_db()
    assert run.status == BulkRun.Status.DONE
    assert services.bulk_progress(run)["done"] == 120
    assert twins_on(left).count() == 120
    assert len(tracker.incidents) == 240  # 120 sources, 120 mirrors: no duplicate


def test_cancel_stops_a_run_before_its_next_item(tracker, runner, pair):
    left, _ = pair
    tracker.seed(summary="Match", fields={"priority": "1"})
    trigger, _ = services.trigger_save(connection=left, query="priority=1", active=False)
    run = services.bulk_exalate_start(trigger=trigger)
    services.bulk_cancel(run=run)
    runner.run()
    run.refresh_from_db()
    assert run.status == BulkRun.Status.CANCELLED
    assert not twins_on(left).exists()


def test_bulk_exalate_needs_an_active_connection(tracker, runner, pair):
    left, _ = pair
    trigger, _ = services.trigger_save(connection=left, query="priority=1", active=False)
    left.status = "deactivated"
    left.save()
    trigger.refresh_from_db()
    with pytest.raises(SyncRefused, match="activate it"):
        services.bulk_exalate_start(trigger=trigger)


# --- the Bulk Connect file ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (b"  \n\n", "The file is empty"),
        ("INC0010001,INC0020001\nINC0010002,INC\xe90020002\n".encode("latin-1"), "not UTF-8"),
        (b"local,remote\n", "header line but no rows"),
        (b"INC0010001,INC0020001\nINC0010002;INC0020002\n", "mixes separators"),
        (
            b"local,remote\n" + b"".join(b"INC%07d,REM%07d\n" % (i, i) for i in range(100_000)),
            "at most",
        ),
    ],
    ids=["empty", "blank", "not-utf8", "header-only", "mixed-separators", "100000-rows"],
)
def test_an_unusable_file_is_refused_as_a_whole(data, message):
    with pytest.raises(SyncRefused, match=message):
        parse_pairs(data)


def test_each_bad_row_gets_its_reason_and_good_rows_stay_good():
    rows = parse_pairs(
        b"local number;remote key\n"
        b"INC0010001;INC0020001\n"
        b"INC0010002\n"
        b"INC0010001;INC0020009\n"
        b"INC0010003;INC0020001\n"
        b"INC 4;INC0020004\n"
        b"INC0010005;INC0020005;\n"
    )
    by_line = {r.line: r.problem for r in rows}
    assert by_line[2] == "" and by_line[7] == ""
    assert "Malformed line" in by_line[3]
    assert "Duplicate row: local number INC0010001 is already on line 2" in by_line[4]
    assert "Duplicate row: remote key INC0020001" in by_line[5]
    assert "not a local number" in by_line[6]
    assert MAX_ROWS == 10_000


def test_bulk_connect_preview_flags_unknown_and_twinned_local_numbers(tracker, runner, pair):
    left, _ = pair
    known = tracker.seed(summary="Known")
    twinned = tracker.seed(summary="Twinned")
    Twin.objects.create(connection=left, local_entity_id=twinned["id"], local_key=twinned["key"])
    data = (
        f"{known['key']},REM0000001\nINC0099999,REM0000002\n{twinned['key']},REM0000003\n"
        "broken line\n"
    ).encode()
    run = services.bulk_connect_upload(connection=left, data=data, file_name="pairs.csv")
    runner.run()
    run.refresh_from_db()
    assert run.status == BulkRun.Status.PREVIEW
    items = {i.line: i for i in run.items.all()}
    assert items[1].status == "pending" and items[1].local_entity_id == known["id"]
    assert "Unknown local number" in items[2].error
    assert "Already twinned" in items[3].error
    assert "Malformed line" in items[4].error
    csv_text = services.bulk_connect_result_csv(run)
    assert csv_text.splitlines()[0] == "line,local number,remote key,result,reason"
    assert "valid, not linked yet" in csv_text


def test_bulk_unexalate_stops_every_twin_of_the_trigger_and_disables_it(tracker, runner, pair):
    left, _ = pair
    for i in range(3):
        tracker.seed(summary=f"Match {i}", fields={"priority": "1"})
    other = tracker.seed(summary="Manual", fields={"priority": "2"})
    trigger, _ = services.trigger_save(connection=left, query="priority=1")
    runner.run()
    manual = services.entity_exalate(connection=left, key=other["key"])
    runner.run()
    run = services.bulk_unexalate_start(trigger=trigger)
    runner.run()
    services.unexalates_sweep()
    runner.run()
    run.refresh_from_db()
    trigger.refresh_from_db()
    assert run.status == BulkRun.Status.DONE and services.bulk_progress(run)["done"] == 3
    assert not trigger.active
    assert list(twins_on(left).values_list("local_key", flat=True)) == [other["key"]]
    manual.refresh_from_db()


def test_bulk_connect_confirm_links_the_good_rows_only(tracker, runner, pair):
    left, right = pair
    a = tracker.seed(summary="Left side")
    b = tracker.seed(summary="Right side")
    c = tracker.seed(summary="Unpaired")
    data = f"{a['key']},{b['key']}\nINC0099999,{c['key']}\n".encode()
    run = services.bulk_connect_upload(connection=left, data=data)
    runner.run()
    run.refresh_from_db()
    assert run.status == BulkRun.Status.PREVIEW
    services.bulk_connect_confirm(run=run)
    runner.run()
    run.refresh_from_db()
    assert run.status == BulkRun.Status.DONE, services.bulk_connect_result_csv(run)
    twin = twins_on(left).get()
    assert (twin.local_entity_id, twin.remote_key) == (a["id"], b["key"])
    result = services.bulk_connect_result_csv(run)
    assert f"1,{a['key']},{b['key']},linked," in result
    assert "not linked,Unknown local number" in result
