# ruff: noqa: F811  (the engine tests' fixtures, imported)
"""Issue 10 in the engine, in one process (local connection, in-memory tracker, tasks run inline).

1: a same-second attachment is told apart by the listing's attachment marker; 4: a refused
attachment is a per-attachment state and a warning, the rest goes on, Retry sends it again;
5, 8, 9: credentials refused, a hibernating instance, a journal that cannot be read are one
connection error that a probe resolves by itself. The live tests (test_sync_issue10_live.py)
run the same paths across two nodes and two sandboxes.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from connections.models import Connection
from sync.models import AttachmentState, ConnectionProbe, SyncError, Twin
from sync.services import detect, failures
from tests.test_sync_engine import PNG, exalate, local_pair, mirror_of, runner, tracker  # noqa: F401
from trackers.errors import (
    AttachmentRefused,
    TrackerAuthenticationError,
    TrackerPermissionError,
    TrackerUnavailable,
    TrackerUnreachable,
)
from trackers.interface import ChangedEntity

pytestmark = pytest.mark.django_db


def _twins(source):
    return (
        Twin.objects.get(local_entity_id=source["id"]),
        Twin.objects.exclude(local_entity_id=source["id"]).get(),
    )


# -- item 1 -------------------------------------------------------------------------------------


def test_a_new_attachment_marker_marks_the_twin_even_with_the_same_count_and_second(
    tracker, runner, local_pair
):
    left, _ = local_pair
    source = tracker.seed(comments=[("Beth Anglin", "hello")])
    exalate(left, source["key"], runner)
    origin, _mirror = _twins(source)
    origin.refresh_from_db()
    when = timezone.now().replace(microsecond=0)
    first = detect.twin_request_scan(
        twin_ids=[origin.pk], mod_count=99, updated=when, attachments_marker="t/aaa", nudge=False
    )
    again = detect.twin_request_scan(
        twin_ids=[origin.pk], mod_count=99, updated=when, attachments_marker="t/aaa", nudge=False
    )
    newer = detect.twin_request_scan(
        twin_ids=[origin.pk], mod_count=99, updated=when, attachments_marker="t/bbb", nudge=False
    )
    assert (first, again, newer) == ([origin.pk], [], [origin.pk])


def test_polling_passes_the_marker_so_a_same_second_attachment_is_scanned(
    tracker, runner, local_pair, monkeypatch
):
    left, _ = local_pair
    source = tracker.seed(comments=[("Beth Anglin", "hello")])
    exalate(left, source["key"], runner)
    when = source["updated"]
    listing = [ChangedEntity(source["id"], source["mod_count"], when, when, "m1")]
    monkeypatch.setattr(tracker, "list_changed", lambda **kw: listing)
    detect.connection_detect_changes(left.pk)
    runner.run()
    # Same count, same second, a new attachment only the marker tells about.
    tracker._add_attachment(source, "same-second.png", "image/png", PNG)
    source["updated"] = when
    listing[:] = [ChangedEntity(source["id"], source["mod_count"], when, when, "m2")]
    assert detect.connection_detect_changes(left.pk) == 1
    runner.run()
    names = [a["file_name"] for a in mirror_of(tracker, source)["attachments"]]
    assert names == ["same-second.png"]


# -- item 4 -------------------------------------------------------------------------------------


def test_a_refused_attachment_is_a_warning_and_later_comments_go_through_then_retry_sends_it(
    tracker, runner, local_pair
):
    left, _ = local_pair
    source = tracker.seed(
        comments=[("Beth Anglin", "before")], attachments=[("huge.bin", "application/zip", PNG)]
    )
    tracker.fail_next(
        "add_attachment",
        AttachmentRefused("refused: too large", reason="over 1 MB", too_large=True),
    )
    exalate(left, source["key"], runner)
    origin, mirror_twin = _twins(source)
    mirror = mirror_of(tracker, source)
    assert [c["body"] for c in mirror["comments"]] == ["[Beth Anglin] before"]
    assert mirror["attachments"] == []
    state = AttachmentState.objects.get(twin=mirror_twin)
    assert (state.state, state.reason, state.file_name) == ("too_large", "over 1 MB", "huge.bin")
    mirror_twin.refresh_from_db()
    origin.refresh_from_db()
    assert mirror_twin.status == Twin.Status.SYNCHRONIZED  # a warning, not an error
    assert "huge.bin" in origin.remote_warning and "over 1 MB" in origin.remote_warning
    # A later comment still goes through; the refused file is not tried again meanwhile.
    tracker.human_comment(source["id"], "after")
    detect.twin_request_scan(twin_ids=[origin.pk])
    runner.run()
    assert [c["body"] for c in mirror_of(tracker, source)["comments"]][-1].endswith("after")
    assert tracker.calls.count("add_attachment") == 1
    # Retry on the twin, once the limit is lifted: it goes again, and the warnings clear.
    failures.twin_retry(twin=mirror_twin)
    runner.run()
    assert [a["file_name"] for a in mirror_of(tracker, source)["attachments"]] == ["huge.bin"]
    assert AttachmentState.objects.get(twin=mirror_twin).state == "mirrored"
    origin.refresh_from_db()
    assert origin.remote_warning == ""


def test_the_connection_page_counts_attachment_states(tracker, runner, local_pair, admin_client):
    left, right = local_pair
    source = tracker.seed(attachments=[("a.png", "image/png", PNG), ("b.png", "image/png", PNG)])
    tracker.fail_next("add_attachment", AttachmentRefused("no", reason="extension not allowed"))
    exalate(left, source["key"], runner)
    _origin, mirror_twin = _twins(source)
    page = admin_client.get(f"/connections/{mirror_twin.connection_id}/").content.decode()
    assert 'data-state="mirrored">1 mirrored' in page and 'data-state="refused">1 refused' in page
    page = admin_client.get(f"/twins/{mirror_twin.pk}/").content.decode()
    assert "extension not allowed" in page and "attachment-retry" in page


# -- items 5, 8, 9: connection errors that clear by themselves ------------------------------------


def _due(connection):
    ConnectionProbe.objects.filter(connection=connection).update(next_probe_at=timezone.now())


def test_refused_credentials_are_probed_on_a_back_off_and_resolve_by_themselves(
    tracker, runner, local_pair, monkeypatch
):
    left, _ = local_pair
    source = tracker.seed(comments=[("Beth Anglin", "hello")])
    exalate(left, source["key"], runner)
    tracker.fail_next("list_changed", TrackerAuthenticationError("401 User Not Authenticated"))
    detect.connection_detect_changes(left.pk)
    left.refresh_from_db()
    assert left.status == Connection.Status.ERROR
    probe = ConnectionProbe.objects.get(connection=left)
    assert 50 < (probe.next_probe_at - timezone.now()).total_seconds() <= 60
    refused = TrackerAuthenticationError("still refused")

    def still_refused():
        raise refused

    monkeypatch.setattr(tracker, "test_connection", still_refused)
    _due(left)
    assert failures.probes_run() == 0
    probe.refresh_from_db()
    assert probe.probes == 1
    assert 110 < (probe.next_probe_at - timezone.now()).total_seconds() <= 120  # growing
    monkeypatch.setattr(tracker, "test_connection", lambda: "ok")  # the password was fixed
    _due(left)
    assert failures.probes_run() == 1
    left.refresh_from_db()
    assert left.status == Connection.Status.ACTIVE
    assert not SyncError.objects.filter(connection=left, resolved_at__isnull=True).exists()
    assert SyncError.objects.filter(connection=left).count() == 1  # exactly one, now resolved


def test_a_hibernating_instance_is_a_connection_error_that_clears_when_it_wakes(
    tracker, runner, local_pair, monkeypatch
):
    left, _ = local_pair
    source = tracker.seed()
    exalate(left, source["key"], runner)
    asleep = TrackerUnavailable("The instance https://x.service-now.com is hibernating: wake it up")
    tracker.fail_next("list_changed", asleep)
    detect.connection_detect_changes(left.pk)
    error = SyncError.objects.get(connection=left, resolved_at__isnull=True)
    assert error.level == SyncError.Level.CONNECTION and "is hibernating" in error.message
    _due(left)
    monkeypatch.setattr(tracker, "test_connection", lambda: "ok")
    detect.detect_changes_all()  # the periodic task probes first
    left.refresh_from_db()
    assert left.status == Connection.Status.ACTIVE


def test_an_unreadable_journal_is_one_connection_error_naming_the_right(
    tracker, runner, local_pair
):
    left, _ = local_pair
    source = tracker.seed(comments=[("Beth Anglin", "hidden")])
    tracker.fail_next(
        "read_replica",
        TrackerPermissionError(
            "The comments of INC0010001 cannot be read: give 'admin' read access to the "
            "sys_journal_field table.",
            connection_level=True,
        ),
    )
    exalate(left, source["key"], runner)
    errors = list(SyncError.objects.filter(resolved_at__isnull=True))
    assert [e.level for e in errors] == [SyncError.Level.CONNECTION]
    assert "sys_journal_field" in errors[0].message
    left.refresh_from_db()
    assert (
        left.status == Connection.Status.ERROR
        and ConnectionProbe.objects.filter(connection=left).exists()
    )


def test_probe_delay_doubles_from_the_setting_up_to_an_hour(settings):
    settings.CONNECTION_PROBE_SECONDS = 60
    assert [failures.probe_delay(n) for n in (0, 1, 2, 10)] == [60, 120, 240, 3600]
    assert timedelta(seconds=failures.probe_delay(50)) == timedelta(hours=1)


def test_an_upload_whose_answer_was_lost_is_adopted_and_its_state_is_mirrored(
    tracker, runner, local_pair, monkeypatch
):
    """The instance stored the attachment but the answer never came (a timeout): the retry
    adopts that copy instead of uploading again, and the attachment is Mirrored, not left
    Pending (which once kept the N = 100 soak in CI from ever seeing its queues drained)."""
    left, _ = local_pair
    source = tracker.seed(attachments=[("late.png", "image/png", PNG)])
    real_upload = tracker.add_attachment
    calls = {"n": 0}

    def stored_then_timed_out(*args, **kwargs):
        created = real_upload(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:
            raise TrackerUnreachable("no answer within the timeout")
        return created

    monkeypatch.setattr(tracker, "add_attachment", stored_then_timed_out)
    exalate(left, source["key"], runner)
    runner.run_delayed()
    _origin, mirror_twin = _twins(source)
    assert [a["file_name"] for a in mirror_of(tracker, source)["attachments"]] == ["late.png"]
    assert calls["n"] == 1  # adopted, not uploaded twice
    state = AttachmentState.objects.get(twin=mirror_twin)
    assert (state.state, state.local_id) == (
        "mirrored",
        mirror_of(tracker, source)["attachments"][0]["id"],
    )
    mirror_twin.refresh_from_db()
    assert mirror_twin.status == Twin.Status.SYNCHRONIZED
