"""The sync engine in one process: a local connection (two rows on one node) and an in-memory tracker.

Celery is replaced by a list the test drains (``Runner``, in place of ``sync.nudge.nudge``):
every task the services nudge is run in order, in this process, so each test sees the
whole path exalate → scan → deliver → receive → apply → ack → scan without processes.
The tracker is plugged through the registry (``tests.sync_fakes.plug``). The live tests
(test_sync_live.py) run the same code across two nodes, two sandboxes and real workers.
"""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from connections.models import Connection
from sync import claims, nudge, services
from sync.models import ExalateRequest, MirroredItem, SyncError, SyncEvent, Twin
from tests.sync_fakes import FakeAdapter, plug
from trackers.errors import TrackerAuthenticationError, TrackerBadRequest, TransientTrackerError

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
PDF = b"%PDF-1.4\n" + b"0123456789" * 9000


class Runner:
    """Collects the services' nudges (``sync.nudge.nudge``) and runs their tasks in order,
    in this process, like one worker would."""

    def __init__(self):
        self.queue: list[tuple[object, tuple]] = []
        self.delayed: list[tuple[object, tuple]] = []

    def enqueue(self, task, *args, countdown=None):
        (self.delayed if countdown else self.queue).append((task, args))

    def run(self, max_steps: int = 500) -> int:
        steps = 0
        while self.queue and steps < max_steps:
            task, args = self.queue.pop(0)
            task(*args)  # a Celery task called directly runs its body here
            steps += 1
        assert not self.queue, "the engine kept nudging itself"
        return steps

    def run_delayed(self):
        """Make every waiting retry due now and run it."""
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
def local_pair(db):
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


def exalate(conn, key, runner):
    request = services.entity_exalate(connection=conn, key=key)
    runner.run()
    request.refresh_from_db()
    return request


def seeded(tracker):
    return tracker.seed(
        comments=[
            ("Beth Anglin", "First"),
            ("Beth Anglin", "<b>bold</b> [code]<i>html</i>[/code]"),
            ("Fred Luddy", "Third"),
        ],
        attachments=[("screen.png", "image/png", PNG), ("report.pdf", "application/pdf", PDF)],
    )


def mirror_of(tracker, source):
    twins = list(Twin.objects.exclude(local_entity_id=source["id"]).exclude(local_entity_id=""))
    assert len(twins) == 1
    return tracker.incidents[twins[0].local_entity_id]


def test_first_sync_makes_one_mirror_with_fields_comments_and_identical_attachments(
    tracker, runner, local_pair
):
    left, right = local_pair
    source = seeded(tracker)
    request = exalate(left, source["key"], runner)
    assert request.status == ExalateRequest.Status.DONE
    mirror = mirror_of(tracker, source)
    assert (mirror["summary"], mirror["description"]) == (source["summary"], source["description"])
    assert [c["body"] for c in mirror["comments"]] == [
        f"[{c['author']}] {c['body']}" for c in source["comments"]
    ]
    assert [(a["file_name"], a["sha256"]) for a in mirror["attachments"]] == [
        (a["file_name"], a["sha256"]) for a in source["attachments"]
    ]
    assert mirror["correlation_id"] == f"exalate:{right.pk}:{source['id']}"
    twin = Twin.objects.get(connection=left)
    assert twin.status == Twin.Status.SYNCHRONIZED
    assert (twin.local_key, twin.remote_key) == (source["key"], mirror["key"])
    assert twin.remote_url == tracker.entity_url(mirror["id"])
    assert Twin.objects.get(connection=right).status == Twin.Status.SYNCHRONIZED
    # Only the first sync's own writes: no echo event in either direction.
    assert SyncEvent.objects.filter(direction="out", kind="replica").count() == 1


def test_exalating_the_same_incident_twice_makes_one_mirror(tracker, runner, local_pair):
    left, _ = local_pair
    source = seeded(tracker)
    services.entity_exalate(connection=left, key=source["key"])
    services.entity_exalate(connection=left, key=source["key"])  # a second tab
    runner.run()
    exalate(left, source["key"], runner)  # and once more later
    assert len(tracker.incidents) == 2
    assert Twin.objects.filter(connection=left).count() == 1


def test_comment_added_on_either_side_arrives_once_and_never_comes_back(
    tracker, runner, local_pair
):
    left, right = local_pair
    source = seeded(tracker)
    exalate(left, source["key"], runner)
    mirror = mirror_of(tracker, source)
    tracker.human_comment(mirror["id"], "Reply from the right", author="Fred Luddy")
    services.webhook_receive(entity_id=mirror["id"])
    runner.run()
    tracker.human_comment(source["id"], "Answer from the left")
    services.connection_detect_changes(left.pk)  # the polling path
    runner.run()
    for conn in (left, right):  # polls that see only the sync's own writes send nothing
        services.connection_detect_changes(conn.pk)
        services.webhook_receive(entity_id=source["id"])
        services.webhook_receive(entity_id=mirror["id"])
    runner.run()
    bodies_left = [c["body"] for c in source["comments"]]
    bodies_right = [c["body"] for c in mirror["comments"]]
    assert bodies_left.count("[Fred Luddy] Reply from the right") == 1
    assert bodies_right.count("[Beth Anglin] Answer from the left") == 1
    assert len(bodies_left) == 5 and len(bodies_right) == 5
    assert not any(
        re.match(r"^\[[^\]]+\] \[[^\]]+\] ", b) for b in bodies_left + bodies_right
    )  # no echo of an echo


def test_summary_edit_travels_and_an_unchanged_field_never_overwrites(tracker, runner, local_pair):
    left, _ = local_pair
    source = seeded(tracker)
    exalate(left, source["key"], runner)
    mirror = mirror_of(tracker, source)
    tracker.human_edit(source["id"], summary="Printer fixed")
    tracker.human_edit(mirror["id"], description="Edited on the right")
    services.webhook_receive(entity_id=source["id"])
    services.webhook_receive(entity_id=mirror["id"])
    runner.run()
    assert mirror["summary"] == source["summary"] == "Printer fixed"
    assert mirror["description"] == source["description"] == "Edited on the right"


def test_crash_after_a_comment_write_does_not_add_it_twice(
    tracker, runner, local_pair, monkeypatch
):
    left, _ = local_pair
    source = seeded(tracker)
    real = tracker.add_comment
    calls = {"n": 0}

    def crash_once(entity_id, **kw):
        created = real(entity_id, **kw)
        calls["n"] += 1
        if calls["n"] == 2:  # two attachments, then the second comment was written: the worker dies
            raise SystemExit("killed")
        return created

    monkeypatch.setattr(tracker, "add_comment", crash_once)
    with pytest.raises(SystemExit):
        exalate(left, source["key"], runner)
    Twin.objects.update(claimed_until=None, claimed_by="")  # the dead worker's lease
    runner.queue.clear()
    services.sync_drain()
    SyncEvent.objects.update(next_attempt_at=timezone.now())
    for twin in Twin.objects.all():
        services.twin_apply(twin.pk)
    runner.run()
    mirror = mirror_of(tracker, source)
    assert len(mirror["comments"]) == 3
    assert len(mirror["attachments"]) == 2
    assert MirroredItem.objects.filter(local_id="").count() == 0


def test_crash_after_creating_the_incident_finds_it_by_correlation_id(
    tracker, runner, local_pair, monkeypatch
):
    left, _ = local_pair
    source = seeded(tracker)
    real_create = tracker.create_entity

    def create_then_die(**kw):
        real_create(**kw)
        raise SystemExit("killed after the create")

    monkeypatch.setattr(tracker, "create_entity", create_then_die)
    with pytest.raises(SystemExit):
        exalate(left, source["key"], runner)
    monkeypatch.setattr(tracker, "create_entity", real_create)
    Twin.objects.update(claimed_until=None, claimed_by="")
    runner.queue.clear()
    SyncEvent.objects.update(next_attempt_at=timezone.now())
    for twin in Twin.objects.all():
        services.twin_apply(twin.pk)
    runner.run()
    assert len(tracker.incidents) == 2
    assert mirror_of(tracker, source)["comments"]


def test_transient_error_retries_with_backoff_recording_each_attempt(tracker, runner, local_pair):
    left, _ = local_pair
    source = seeded(tracker)
    tracker.fail_next("create_entity", TransientTrackerError("HTTP 503", retry_after=7))
    exalate(left, source["key"], runner)
    event = SyncEvent.objects.get(direction="in", kind="replica")
    assert event.status == "queued" and event.attempts == 1 and "503" in event.last_error
    assert (event.next_attempt_at - timezone.now()).total_seconds() > 5
    assert Twin.objects.get(connection=left).status == Twin.Status.IN_PROGRESS
    runner.run_delayed()
    event.refresh_from_db()
    assert event.status == "done" and event.attempts == 2
    assert Twin.objects.get(connection=left).status == Twin.Status.SYNCHRONIZED


def test_permanent_error_blocks_only_its_twin_until_retried(tracker, runner, local_pair):
    left, right = local_pair
    bad, good = seeded(tracker), tracker.seed(summary="Other")
    tracker.fail_next(
        "create_entity", TrackerBadRequest("Data policy: caller is mandatory", status=400)
    )
    exalate(left, bad["key"], runner)
    exalate(left, good["key"], runner)
    bad_twin = Twin.objects.get(connection=right, remote_entity_id=bad["id"])
    assert bad_twin.status == Twin.Status.ERROR
    assert SyncError.objects.get(twin=bad_twin, resolved_at__isnull=True).message.startswith(
        "Data policy"
    )
    assert (
        Twin.objects.get(connection=left, local_entity_id=good["id"]).status
        == Twin.Status.SYNCHRONIZED
    )
    # The sender's status page shows the remote's error too.
    assert Twin.objects.get(connection=left, local_entity_id=bad["id"]).status == Twin.Status.ERROR
    services.twin_retry(twin=bad_twin)
    runner.run()
    assert Twin.objects.get(pk=bad_twin.pk).status == Twin.Status.SYNCHRONIZED
    assert (
        Twin.objects.get(connection=left, local_entity_id=bad["id"]).status
        == Twin.Status.SYNCHRONIZED
    )
    assert len(tracker.incidents) == 4


def test_refused_login_is_one_connection_error_not_one_per_incident(tracker, runner, local_pair):
    left, _ = local_pair
    incidents = [tracker.seed(summary=f"n{i}") for i in range(3)]
    for inc in incidents:
        tracker.fail_next(
            "find_entity", TrackerAuthenticationError("User Not Authenticated", status=401)
        )
        services.entity_exalate(connection=left, key=inc["key"])
    runner.run()
    left.refresh_from_db()
    assert left.status == Connection.Status.ERROR and "User Not Authenticated" in left.last_error
    errors = SyncError.objects.filter(resolved_at__isnull=True)
    assert [e.level for e in errors] == ["connection"]
    assert ExalateRequest.objects.filter(status="queued").count() == 3  # waiting, not failed
    tracker._failures.clear()  # the admin fixed the credentials
    services.error_retry(error=errors[0])
    for request in ExalateRequest.objects.all():
        services.exalate_request_process(request.pk)
    runner.run()
    left.refresh_from_db()
    assert left.status == Connection.Status.ACTIVE
    assert Twin.objects.filter(connection=left, status=Twin.Status.SYNCHRONIZED).count() == 3


def test_only_one_worker_claims_a_twin_and_a_dead_workers_claim_is_freed(
    tracker, runner, local_pair, monkeypatch
):
    left, _ = local_pair
    twin = Twin.objects.create(connection=left, local_entity_id="x" * 32)
    assert claims.claim(Twin, twin.pk)
    monkeypatch.setattr(claims, "worker_identity", lambda: f"{claims._HOST}:999999")
    assert not claims.claim(Twin, twin.pk)  # another worker process
    Twin.objects.filter(pk=twin.pk).update(
        claimed_by=f"{claims._HOST}:999999"
    )  # held by a dead pid
    monkeypatch.undo()
    assert claims.release_dead_claims(Twin) == 1
    assert claims.claim(Twin, twin.pk)


def test_unknown_number_ends_the_request_with_a_clear_error(tracker, runner, local_pair):
    left, _ = local_pair
    request = exalate(left, "INC9999999", runner)
    assert request.status == ExalateRequest.Status.ERROR
    assert "No incident with number INC9999999" in request.error


def test_exalate_refuses_bad_numbers_and_inactive_connections(local_pair):
    left, _ = local_pair
    with pytest.raises(services.SyncRefused, match="incident number"):
        services.entity_exalate(connection=left, key="INC 1; DROP")
    left.status = Connection.Status.DEACTIVATED
    left.save()
    with pytest.raises(services.SyncRefused, match="deactivated"):
        services.entity_exalate(connection=left, key="INC0010001")
    assert not ExalateRequest.objects.exists()


def test_received_message_is_stored_once_and_invalid_replicas_are_refused(
    tracker, runner, local_pair
):
    _, right = local_pair
    good = {
        "event_id": "6f1c1e5e-7c55-4a34-9d5a-0a5a2f6b1f00",
        "seq": 1,
        "kind": "replica",
        "entity_id": "e" * 32,
        "peer_entity_id": "",
        "changed": ["summary", "description"],
        "replica": {
            "schema": 1,
            "tracker": "servicenow",
            "entity": {
                "id": "e" * 32,
                "key": "INC0000001",
                "url": "https://x.test",
                "type": "incident",
            },
            "summary": "s",
            "description": "d",
            "comments": [],
            "attachments": [],
            "updated": "2026-11-29T10:00:00Z",
            "mod_count": 1,
        },
    }
    bad = {
        **good,
        "event_id": "6f1c1e5e-7c55-4a34-9d5a-0a5a2f6b1f01",
        "replica": {**good["replica"], "summary": 5},
    }
    accepted, rejected = services.messages_receive(connection=right, messages=[good, good, bad])
    assert accepted == [good["event_id"], good["event_id"]]
    assert rejected == [
        {"event_id": bad["event_id"], "error": "replica.summary: 5 is not of type 'string'"}
    ]
    assert SyncEvent.objects.filter(direction="in").count() == 1


def test_a_replica_too_large_for_one_message_fails_with_a_clear_error(tracker, runner, settings):
    public = Connection.objects.create(
        name="Far",
        type=Connection.Type.PUBLIC,
        status=Connection.Status.ACTIVE,
        remote_url="http://127.0.0.1:9",
        secret="s" * 32,
    )
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 80_000  # a node then accepts 64,000-byte messages
    source = tracker.seed(description="x" * 100_000)
    exalate(public, source["key"], runner)
    event = SyncEvent.objects.get(direction="out")
    assert event.status == "error" and "more than the 0.1 MB a node accepts" in event.last_error
    assert Twin.objects.get().status == Twin.Status.ERROR
