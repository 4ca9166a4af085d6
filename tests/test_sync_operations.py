"""Console operations in one process (issue 12): Unexalate, Connect, errors on both nodes,
Resolve / Resolve and retry, error mails, held changes after Activate.

A local connection (two rows on one node) and the in-memory tracker, as in
test_sync_engine.py; Celery is replaced by a list the test drains (the ``sync.nudge.nudge``
seam).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from connections.models import Connection
from connections.services import connection_activate, connection_deactivate
from sync import nudge, selectors, services
from sync.mail import errors_mail_send
from sync.models import MirroredItem, SyncError, SyncEvent, Twin, TwinEnding
from tests.sync_fakes import FakeAdapter, plug

pytestmark = pytest.mark.django_db


class Runner:
    def __init__(self):
        self.queue: list = []
        self.delayed: list = []

    def enqueue(self, task, *args, countdown=None):
        (self.delayed if countdown else self.queue).append((task, args))

    def run(self, max_steps: int = 500) -> None:
        steps = 0
        while self.queue and steps < max_steps:
            task, args = self.queue.pop(0)
            task(*args)
            steps += 1
        assert not self.queue, "the engine kept nudging itself"

    def run_all(self):
        """Run what is queued, then the delayed work (due now), until nothing is left."""
        for _ in range(5):
            self.run()
            if not self.delayed:
                return
            SyncEvent.objects.update(next_attempt_at=timezone.now())
            self.queue.extend(self.delayed)
            self.delayed.clear()
        self.run()


@pytest.fixture
def tracker(settings, monkeypatch):
    return plug(settings, monkeypatch, FakeAdapter())


@pytest.fixture
def runner(monkeypatch):
    r = Runner()
    monkeypatch.setattr(nudge, "nudge", r.enqueue)
    return r


@pytest.fixture
def pair(db):
    a = Connection.objects.create(
        name="Left", type=Connection.Type.LOCAL, status=Connection.Status.ACTIVE, secret="s" * 32
    )
    b = Connection.objects.create(
        name="Right", type=Connection.Type.LOCAL, status=Connection.Status.ACTIVE, secret="s" * 32
    )
    a.local_peer, b.local_peer = b, a
    a.save()
    b.save()
    return a, b


def exalated(tracker, runner, conn, **seed):
    source = tracker.seed(comments=[("Beth Anglin", "First"), ("Fred Luddy", "Second")], **seed)
    services.entity_exalate(connection=conn, key=source["key"])
    runner.run_all()
    twin = Twin.objects.get(connection=conn, local_entity_id=source["id"])
    mirror = tracker.incidents[twin.remote_entity_id]
    return source, twin, mirror


def scan_change(runner, twin):
    services.twin_request_scan(twin_ids=[twin.pk])
    runner.run_all()


def test_deleted_mirror_is_an_error_in_words_on_both_nodes(tracker, runner, pair):
    left, right = pair
    source, twin, mirror = exalated(tracker, runner, left)
    tracker.delete(mirror["id"])
    tracker.human_comment(source["id"], "After the mirror went")
    scan_change(runner, twin)

    theirs = SyncError.objects.get(connection=right, resolved_at__isnull=True)
    assert theirs.code == "entity_gone" and not theirs.remote
    assert (
        f"The incident {mirror['key']} no longer exists in this node's instance" in theirs.message
    )
    ours = SyncError.objects.get(connection=left, resolved_at__isnull=True)
    assert ours.remote and ours.code == "entity_gone"
    assert f"The remote incident {mirror['key']} no longer exists" in ours.message
    twin.refresh_from_db()
    assert twin.status == Twin.Status.ERROR
    failed = SyncEvent.objects.get(connection=left, direction="out", kind="replica", status="error")
    assert "no longer exists" in failed.last_error


def test_unexalate_then_exalate_again_makes_a_new_mirror_with_every_comment_once(
    tracker, runner, pair
):
    left, right = pair
    source, twin, mirror = exalated(tracker, runner, left)
    tracker.delete(mirror["id"])
    tracker.human_comment(source["id"], "Third")
    scan_change(runner, twin)

    services.twin_unexalate(twin=twin, requested_by="admin")
    runner.run_all()
    services.unexalates_sweep()
    assert not Twin.objects.filter(connection=right).exists()  # ended on the other node
    assert not Twin.objects.filter(connection=left).exists()  # tombstone gone once delivered
    assert not SyncError.objects.filter(resolved_at__isnull=True).exists()

    services.entity_exalate(connection=left, key=source["key"])
    runner.run_all()
    new = Twin.objects.get(connection=left, local_entity_id=source["id"])
    assert new.pk != twin.pk and new.status == Twin.Status.SYNCHRONIZED
    again = tracker.incidents[new.remote_entity_id]
    assert again["id"] != mirror["id"]
    bodies = [c["body"] for c in again["comments"]]
    assert bodies == ["[Beth Anglin] First", "[Fred Luddy] Second", "[Beth Anglin] Third"]


def test_unexalate_by_default_waits_for_a_pending_apply(tracker, runner, pair):
    left, right = pair
    source, twin, mirror = exalated(tracker, runner, left)
    theirs = Twin.objects.get(connection=right)
    tracker.human_comment(source["id"], "On its way")
    services.twin_request_scan(twin_ids=[twin.pk], nudge=False)
    services.twin_scan(twin.pk)
    services.connection_deliver(left.pk)  # stored on the right, not applied yet
    runner.queue.clear()
    services.twin_unexalate(twin=twin)
    assert TwinEnding.objects.get(twin=twin).ended_at is None  # waiting for the queue
    # The right side's pending apply goes through first, then the twin ends.
    services.twin_apply(theirs.pk)
    runner.run_all()
    services.unexalates_sweep()
    runner.run_all()
    services.unexalates_sweep()
    assert "[Beth Anglin] On its way" in [c["body"] for c in mirror["comments"]]
    assert not Twin.objects.exists()


def test_unexalate_at_once_refuses_while_a_change_is_being_applied(tracker, runner, pair):
    left, _ = pair
    _, twin, _ = exalated(tracker, runner, left)
    Twin.objects.filter(pk=twin.pk).update(
        claimed_until=timezone.now() + timedelta(seconds=60), claimed_by="worker-1"
    )
    with pytest.raises(services.SyncRefused, match="being applied right now"):
        services.twin_unexalate(twin=twin, at_once=True)
    assert not TwinEnding.objects.exists()
    assert SyncEvent.objects.filter(twin=twin).exists()  # nothing lost from the queue


def test_unexalate_all_of_a_connection_at_once(tracker, runner, pair):
    left, right = pair
    for _ in range(3):
        exalated(tracker, runner, left)
    assert services.connection_unexalate_all(connection=left, requested_by="admin") == 3
    runner.run_all()
    services.unexalates_sweep()
    assert not Twin.objects.exists()
    assert len(tracker.incidents) == 6  # the incidents stay


def test_connect_links_two_existing_incidents_and_the_first_sync_is_an_update(
    tracker, runner, pair
):
    left, right = pair
    mine = tracker.seed(summary="Mine", comments=[("Beth Anglin", "Mine 1")])
    theirs = tracker.seed(summary="Theirs")
    twin = services.entity_connect(
        connection=left, local_key=mine["key"], remote_key=theirs["key"], requested_by="admin"
    )
    assert (twin.local_key, twin.remote_key) == (mine["key"], theirs["key"])
    runner.run_all()
    assert len(tracker.incidents) == 2  # nothing created
    assert tracker.incidents[theirs["id"]]["summary"] == "Mine"
    assert [c["body"] for c in tracker.incidents[theirs["id"]]["comments"]] == [
        "[Beth Anglin] Mine 1"
    ]
    twin.refresh_from_db()
    assert twin.status == Twin.Status.SYNCHRONIZED
    other = Twin.objects.get(connection=right)
    assert (other.local_entity_id, other.remote_entity_id) == (theirs["id"], mine["id"])


def test_connect_the_initiating_side_wins_even_when_the_remote_side_scans_first(
    tracker, runner, pair
):
    """The remote node scans its just-linked incident first (its poll often sees it as
    changed: it was created moments ago); its summary must not race the first sync back
    (a flaky browser test saw A's incident take B's summary), its comments go across."""
    left, right = pair
    mine = tracker.seed(summary="Mine", comments=[("Beth Anglin", "Mine 1")])
    theirs = tracker.seed(summary="Theirs", comments=[("Fred Luddy", "Theirs 1")])
    services.entity_connect(connection=left, local_key=mine["key"], remote_key=theirs["key"])
    other = Twin.objects.get(connection=right)
    runner.queue.clear()
    services.twin_request_scan(twin_ids=[other.pk])  # the remote side's poll first
    runner.run_all()
    services.twin_request_scan(twin_ids=[Twin.objects.get(connection=left).pk])
    runner.run_all()
    assert tracker.incidents[mine["id"]]["summary"] == "Mine"
    assert tracker.incidents[theirs["id"]]["summary"] == "Mine"
    # comments go both ways, once: nothing of either side is dropped
    assert [c["body"] for c in tracker.incidents[mine["id"]]["comments"]] == [
        "Mine 1",
        "[Fred Luddy] Theirs 1",
    ]
    assert [c["body"] for c in tracker.incidents[theirs["id"]]["comments"]] == [
        "Theirs 1",
        "[Beth Anglin] Mine 1",
    ]
    tracker.human_edit(theirs["id"], summary="Edited on B")
    scan_change(runner, other)
    assert tracker.incidents[mine["id"]]["summary"] == "Edited on B"
    assert SyncError.objects.count() == 0


def test_connect_refuses_clearly_and_writes_nothing(tracker, runner, pair):
    left, right = pair
    source, twin, mirror = exalated(tracker, runner, left)
    other = tracker.seed(summary="Other")
    third = tracker.seed(summary="Third")
    cases = [
        ("INC9999999", other["key"], "There is no incident INC9999999 in this node's instance"),
        (other["key"], "INC9999998", "There is no incident INC9999998 in the remote node's"),
        (source["key"], third["key"], f"{source['key']} is already twinned on Left"),
        (other["key"], mirror["key"], f"The remote incident {mirror['key']} is already twinned"),
        ("not a key!", other["key"], "Enter an incident number"),
        (other["key"], "", "Enter the remote incident's number"),
    ]
    before = Twin.objects.count()
    for local_key, remote_key, words in cases:
        with pytest.raises(services.SyncRefused, match=words):
            services.entity_connect(connection=left, local_key=local_key, remote_key=remote_key)
    # the remote incident already twinned on the remote node (twinned from the right side)
    services.entity_exalate(connection=right, key=third["key"])
    runner.run_all()
    with pytest.raises(services.SyncRefused, match=f"{third['key']} is already twinned"):
        services.entity_connect(connection=left, local_key=other["key"], remote_key=third["key"])
    assert Twin.objects.count() == before + 2  # only the exalate's two twins
    connection_deactivate(connection=left, user="admin")
    left.refresh_from_db()
    with pytest.raises(services.SyncRefused, match="only an active connection"):
        services.entity_connect(connection=left, local_key=other["key"], remote_key=third["key"])


def test_resolve_really_clears_the_twin_error_state_and_later_changes_flow(tracker, runner, pair):
    left, right = pair
    source, twin, mirror = exalated(tracker, runner, left)
    tracker.fail_next("add_comment", __import__("trackers.errors").errors.TrackerBadRequest("no"))
    tracker.human_comment(source["id"], "Refused once")
    scan_change(runner, twin)
    theirs = Twin.objects.get(connection=right)
    assert theirs.status == Twin.Status.ERROR
    twin.refresh_from_db()
    assert twin.status == Twin.Status.ERROR  # shown on both nodes
    for error in SyncError.objects.filter(resolved_at__isnull=True):
        services.error_resolve(error=error)
    runner.run_all()
    twin.refresh_from_db()
    theirs.refresh_from_db()
    assert (twin.status, theirs.status) == (Twin.Status.SYNCHRONIZED, Twin.Status.SYNCHRONIZED)
    assert (twin.last_error, twin.remote_error, theirs.last_error) == ("", "", "")
    tracker.human_comment(source["id"], "Later")
    scan_change(runner, twin)
    assert "[Beth Anglin] Later" in [c["body"] for c in mirror["comments"]]


def test_retry_on_the_sending_node_retries_the_remote_apply(tracker, runner, pair):
    left, right = pair
    source, twin, mirror = exalated(tracker, runner, left)
    tracker.fail_next("add_comment", __import__("trackers.errors").errors.TrackerBadRequest("no"))
    tracker.human_comment(source["id"], "Second try")
    scan_change(runner, twin)
    ours = SyncError.objects.get(connection=left, resolved_at__isnull=True)
    assert services.errors_resolve(error_ids=[ours.pk], retry=True) == 1
    runner.run_all()
    assert "[Beth Anglin] Second try" in [c["body"] for c in mirror["comments"]]
    assert not SyncError.objects.filter(resolved_at__isnull=True).exists()
    assert Twin.objects.filter(status=Twin.Status.SYNCHRONIZED).count() == 2
    assert MirroredItem.objects.filter(kind="comment").count() == 3


def test_a_held_change_goes_out_at_once_after_activate(tracker, runner, pair):
    left, right = pair
    source, twin, mirror = exalated(tracker, runner, left)
    connection_deactivate(connection=left, user="admin")
    tracker.human_comment(source["id"], "Held")
    assert services.connection_detect_changes(left.pk) == 1  # detected while deactivated
    runner.run_all()
    rows = selectors.queue_page(tab="outgoing")["rows"]
    assert [(r["status"], r["local_key"]) for r in rows] == [("held", source["key"])]
    left.refresh_from_db()
    connection_activate(connection=left, user="admin")
    assert services.connection_activated(connection=left) >= 1
    runner.run()
    assert selectors.queue_page(tab="outgoing")["rows"] == []
    assert [c["body"] for c in mirror["comments"]].count("[Beth Anglin] Held") == 1


def test_a_storm_of_errors_sends_one_mail_per_connection_and_period(
    tracker, runner, pair, settings, django_user_model, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.ERROR_MAIL_PERIOD = 600
    django_user_model.objects.create_user("ops", "ops@example.com", "x", is_staff=True)
    left, right = pair
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(5):
            services.connection_error_raise(connection=left, message=f"Refused {i}")
        services.connection_error_raise(connection=right, message="Refused too")
    assert len(mail.outbox) == 2
    assert "open error(s) on Left" in mail.outbox[0].subject
    assert mail.outbox[0].to == ["ops@example.com"]
    later = timezone.now() + timedelta(seconds=601)
    assert errors_mail_send(connection_id=left.pk, now=later) is True
    assert errors_mail_send(connection_id=left.pk, now=later) is False
    assert len(mail.outbox) == 3
