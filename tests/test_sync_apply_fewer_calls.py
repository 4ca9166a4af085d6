"""Issue 14 in the engine: the create carries the first comment, the other comments go in one
``add_comments`` call, and no confirming re-read follows an apply whose writes the adapter
could account for; a crash between the writes and the read-back writes nothing twice.

In one process with a local connection (``tests.test_sync_engine``'s Runner); the tracker
is the in-memory fake with the ServiceNow adapter's write behaviour added (``Receipts``).
"""

from __future__ import annotations

import pytest

from sync import services
from sync.models import ExalateRequest, MirroredItem, SyncEvent, Twin
from tests.sync_fakes import FakeAdapter, plug
from tests.test_sync_engine import PNG, local_pair, runner  # noqa: F401 - fixtures
from trackers.errors import TrackerError, TransientTrackerError
from trackers.interface import CreatedItem, EntityRef, WriteReceipt

pytestmark = pytest.mark.django_db


class Receipts(FakeAdapter):
    """The fake tracker plus what the ServiceNow adapter does since issue 14: a create that
    writes the first comment (counter 0), ``add_comments`` with one read-back
    (``journal_read``), and a receipt when every write moved the counter by one."""

    creates_with_comment = True

    def __init__(self):
        super().__init__()
        self.reads: list[str] = []
        self.logs: dict[str, dict] = {}
        self.written: dict[str, list[str]] = {}

    def _note(self, entity_id: str, *, created: bool = False) -> None:
        inc = self.incidents[entity_id]
        log = self.logs.setdefault(entity_id, {"ok": True, "base": None, "last": None})
        if created:
            log.update(created=True, last=inc["mod_count"])
        elif log["last"] is None:
            log.update(base=inc["mod_count"] - 1, last=inc["mod_count"])
        else:
            log["ok"] = log["ok"] and inc["mod_count"] == log["last"] + 1
            log["last"] = inc["mod_count"]
        log["updated"] = inc["updated"]

    def read_replica(self, entity_id: str) -> dict:
        self.reads.append(entity_id)
        return super().read_replica(entity_id)

    def create_entity(self, *, first_comment=None, **kw) -> EntityRef:
        ref = super().create_entity(**kw)
        if first_comment is not None:
            inc = self.incidents[ref.id]
            cid = self._add_comment(inc, body=first_comment[0], author_display=first_comment[1])
            inc["mod_count"] = 0  # the insert wrote it
            self.written.setdefault(ref.id, []).append(cid)
        self._note(ref.id, created=True)
        return ref

    def add_comments(self, entity_id, comments, *, written=0) -> list[CreatedItem]:
        self._call("add_comments")
        for body, author in comments[written:]:
            cid = self._add_comment(self._live(entity_id), body=body, author_display=author)
            self.written.setdefault(entity_id, []).append(cid)
            self._note(entity_id)
        self._call("journal_read")
        return [CreatedItem(i) for i in self.written.pop(entity_id)[-len(comments) :]]

    def add_attachment(self, entity_id, **kw) -> CreatedItem:
        item = super().add_attachment(entity_id, **kw)
        self._note(entity_id)
        return item

    def write_receipt(self, entity_id: str) -> WriteReceipt | None:
        log = self.logs.pop(entity_id, None)
        if not log or not log["ok"]:
            return None
        return WriteReceipt(
            mod_count=log["last"],
            base_mod_count=None if log.get("created") else log["base"],
            updated=log["updated"],
        )


@pytest.fixture
def tracker(settings, monkeypatch):
    return plug(settings, monkeypatch, Receipts())


def seed(tracker):
    return tracker.seed(
        comments=[("Beth Anglin", "First"), ("Fred Luddy", "Second"), ("Beth Anglin", "First")],
        attachments=[("screen.png", "image/png", PNG)],
    )


def mirror_twin(source) -> Twin:
    return Twin.objects.exclude(local_entity_id=source["id"]).exclude(local_entity_id="").get()


def test_the_create_carries_the_first_comment_and_nothing_is_re_read(tracker, runner, local_pair):
    left, _ = local_pair
    source = seed(tracker)
    tracker.calls.clear()
    request = services.entity_exalate(connection=left, key=source["key"])
    runner.run()
    request.refresh_from_db()
    assert request.status == ExalateRequest.Status.DONE
    twin = mirror_twin(source)
    mirror = tracker.incidents[twin.local_entity_id]
    assert [c["body"] for c in mirror["comments"]] == [
        "[Beth Anglin] First", "[Fred Luddy] Second", "[Beth Anglin] First"
    ]  # fmt: skip
    writes = [c for c in tracker.calls if c in ("create_entity", "add_comments", "journal_read")]
    assert writes == ["create_entity", "add_comments", "journal_read"]  # one batch, one read
    assert twin.local_entity_id not in tracker.reads  # no confirming re-read of the mirror
    assert not twin.needs_scan and twin.last_seen_mod_count == mirror["mod_count"] == 3
    assert set(MirroredItem.objects.filter(twin=twin).values_list("local_id", flat=True)) == {
        *(c["id"] for c in mirror["comments"]),
        *(a["id"] for a in mirror["attachments"]),
    }

    # a later comment on the original: one write, one read-back, still no re-read
    tracker.human_comment(source["id"], "Later")
    tracker.reads.clear()
    services.twin_request_scan(twin_ids=[Twin.objects.get(local_entity_id=source["id"]).pk])
    runner.run()
    twin.refresh_from_db()
    assert [c["body"] for c in mirror["comments"]][-1] == "[Beth Anglin] Later"
    assert tracker.reads == [source["id"]] and not twin.needs_scan
    assert twin.last_seen_mod_count == mirror["mod_count"]
    # nothing came back: the listing's own hint for our writes is skipped
    assert services.twin_request_scan(
        twin_ids=[twin.pk], mod_count=mirror["mod_count"], updated=mirror["updated"]
    ) == []  # fmt: skip
    assert not SyncEvent.objects.exclude(status=SyncEvent.Status.DONE).exists()


def test_a_crash_between_the_writes_and_the_read_back_writes_no_comment_twice(
    tracker,
    runner,
    local_pair,
):
    left, _ = local_pair
    source = seed(tracker)
    tracker.fail_next("journal_read", TransientTrackerError("connection reset by peer"))
    services.entity_exalate(connection=left, key=source["key"])
    runner.run()
    twin = mirror_twin(source)
    assert MirroredItem.objects.filter(twin=twin, local_id="").count() == 3  # intents only
    runner.run_delayed()
    twin.refresh_from_db()
    mirror = tracker.incidents[twin.local_entity_id]
    assert [c["body"] for c in mirror["comments"]] == [
        "[Beth Anglin] First", "[Fred Luddy] Second", "[Beth Anglin] First"
    ]  # fmt: skip
    assert sorted(MirroredItem.objects.filter(twin=twin, kind="comment").values_list(
        "local_id", flat=True)) == sorted(c["id"] for c in mirror["comments"])  # fmt: skip
    assert len(mirror["attachments"]) == 1
    assert not SyncEvent.objects.exclude(status=SyncEvent.Status.DONE).exists()


def test_someone_writing_during_the_apply_means_a_re_read(tracker, runner, local_pair):
    left, _ = local_pair
    source = seed(tracker)
    original = Receipts.add_attachment

    def person_comments_meanwhile(self, entity_id, **kw):
        item = original(self, entity_id, **kw)
        self.human_comment(entity_id, "typed on the mirror meanwhile", author="Abel Tuter")
        return item

    Receipts.add_attachment = person_comments_meanwhile
    try:
        services.entity_exalate(connection=left, key=source["key"])
        runner.run()
    finally:
        Receipts.add_attachment = original
    twin = mirror_twin(source)
    assert twin.local_entity_id in tracker.reads  # the receipt was void: scanned as before
    assert source["comments"][-1]["body"].endswith("typed on the mirror meanwhile")


def test_the_interface_default_adds_comments_one_by_one():
    fake = FakeAdapter()
    inc = fake.seed()
    items = fake.add_comments(inc["id"], [("a", "Beth"), ("b", "Fred")])
    assert [c["id"] for c in inc["comments"]] == [i.id for i in items]
    assert fake.calls == ["add_comment", "add_comment"] and fake.write_receipt(inc["id"]) is None
    with pytest.raises(TrackerError):
        fake.add_comments(inc["id"], [("a", "Beth")], written=1)
    assert not FakeAdapter.creates_with_comment


def test_the_scan_records_the_attachments_it_saw_so_the_listing_does_not_re_read(
    tracker,
    runner,
    local_pair,
    monkeypatch,
):
    left, _ = local_pair
    source = seed(tracker)
    newest = source["updated"]
    monkeypatch.setattr(Receipts, "attachments_seen", lambda self, i: ("T/abc", newest))
    services.entity_exalate(connection=left, key=source["key"])
    runner.run()
    twin = Twin.objects.get(local_entity_id=source["id"])
    assert twin.last_attachments_marker == "T/abc" and twin.last_listed_updated == newest
    hint = dict(mod_count=source["mod_count"], updated=newest)
    assert services.twin_request_scan(twin_ids=[twin.pk], attachments_marker="T/abc", **hint) == []
    assert services.twin_request_scan(twin_ids=[twin.pk], attachments_marker="T/abd", **hint)
