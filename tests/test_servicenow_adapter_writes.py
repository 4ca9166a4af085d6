"""Issue 14: the ServiceNow adapter's writes with the fewest calls, against a real sandbox.

The create carries the first comment, any number of comments cost one journal read, and
the write answers tell the incident's state (``write_receipt``) so the engine needs no
confirming re-read; someone else writing in between voids the receipt.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests

from servicenow_adapter.adapter import ServiceNowAdapter
from servicenow_adapter.client import BasicCredentials, RetryPolicy, ServiceNowClient
from tests.live import LiveSandbox
from trackers.errors import TrackerBadRequest, TrackerPermissionError

pytestmark = pytest.mark.integration
FAST = RetryPolicy(max_attempts=2, max_total_seconds=3, base_delay=0.01, max_delay=0.05)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    sb = LiveSandbox(tmp_path_factory.mktemp("sn-writes"), seed="none").start()
    yield sb
    sb.stop()


@pytest.fixture(autouse=True)
def reset(sandbox):
    yield
    requests.delete(f"{sandbox.url}/sandbox/faults", timeout=5)
    requests.post(f"{sandbox.url}/sandbox/clock", json={"frozen": False}, timeout=5)


def adapter(sandbox, user: str = "admin", password: str = "admin") -> ServiceNowAdapter:
    creds = BasicCredentials(username=user, password=password)
    client = ServiceNowClient(sandbox.url, credentials=creds, retry=FAST, timeout=5)
    return ServiceNowAdapter(client, author_lookup=False)


def create(a: ServiceNowAdapter, summary: str, first_comment=None):
    return a.create_entity(summary=summary, description="", entity_type="incident",
                           correlation_id=f"exalate:t:{summary}", correlation_display="t",
                           first_comment=first_comment)  # fmt: skip


def journal_texts(a: ServiceNowAdapter, sys_id: str) -> dict[str, str]:
    return {r["sys_id"]: r["value"] for r in a.client.journal_list(sys_id)}


def test_the_create_carries_the_first_comment_in_one_call(sandbox):
    a = adapter(sandbox)
    a.client.calls = 0
    ref = create(a, "carried", first_comment=("Hello", "Beth Anglin"))
    assert a.client.calls == 1
    [item] = a.add_comments(ref.id, [("Hello", "Beth Anglin")], written=1)
    assert a.client.calls == 2  # only the journal read: nothing written twice
    assert journal_texts(a, ref.id) == {item.id: "[Beth Anglin wrote]\nHello"}
    assert a.read_replica(ref.id)["comments"][0]["author"] == "Beth Anglin"


def test_three_comments_in_one_second_cost_one_journal_read_and_keep_their_ids(sandbox):
    a = adapter(sandbox)
    ref = create(a, "three", first_comment=("one", "Beth Anglin"))
    requests.post(f"{sandbox.url}/sandbox/clock", json={"frozen": True}, timeout=5)
    a.client.calls = 0
    items = a.add_comments(
        ref.id, [("one", "Beth Anglin"), ("two", "Fred Luddy"), ("one", "Beth Anglin")], written=1
    )
    assert a.client.calls == 3  # two PATCH + ONE journal read
    texts = journal_texts(a, ref.id)
    assert (
        len(items) == 3 and len({i.id for i in items}) == 3 and set(texts) == {i.id for i in items}
    )
    assert [texts[i.id] for i in items] == [
        "[Beth Anglin wrote]\none", "[Fred Luddy wrote]\ntwo", "[Beth Anglin wrote]\none"
    ]  # fmt: skip


def test_the_receipt_tells_the_state_a_listing_will_show(sandbox):
    a = adapter(sandbox)
    since = datetime.now(UTC)
    ref = create(a, "receipt", first_comment=("c1", "Beth Anglin"))
    a.add_attachment(ref.id, file_name="a.txt", content_type="text/plain", chunks=[b"abc"])
    a.add_comments(ref.id, [("c1", "Beth Anglin"), ("c2", "Beth Anglin")], written=1)
    receipt = a.write_receipt(ref.id)
    listed = {c.id: c for c in a.list_changed(since=since, overlap_seconds=60)}[ref.id]
    assert receipt.base_mod_count is None and receipt.mod_count == listed.mod_count == 1
    assert receipt.attachments_marker == listed.attachments_marker != ""
    assert receipt.updated >= listed.updated.replace(microsecond=0)
    assert a.write_receipt(ref.id) is None  # forgotten once given


def test_someone_else_writing_in_between_voids_the_receipt(sandbox):
    a, other = adapter(sandbox), adapter(sandbox)
    ref = create(a, "interleaved")
    other.update_entity(ref.id, description="typed by a person meanwhile")
    a.add_comments(ref.id, [("after", "Beth Anglin")])
    assert a.write_receipt(ref.id) is None
    a.add_comments(ref.id, [("x", "y"), ("z", "w")])  # an update: counted from its first write
    receipt = a.write_receipt(ref.id)
    assert receipt.base_mod_count == 2 and receipt.mod_count == 4


def test_an_empty_first_comment_is_refused_before_anything_is_written(sandbox):
    a = adapter(sandbox)
    a.client.calls = 0
    with pytest.raises(TrackerBadRequest):
        create(a, "empty", first_comment=("  ", ""))
    assert a.client.calls == 0


def test_comments_that_cannot_be_read_back_raise_naming_the_right(sandbox):
    a = adapter(sandbox)
    ref = create(a, "blind writer")
    body = {"user_name": "blindw", "password": "pw-123", "name": "blindw",
            "acl": {"sys_journal_field": "empty"}}  # fmt: skip
    requests.post(f"{sandbox.url}/sandbox/users", json=body, timeout=5).raise_for_status()
    blind = adapter(sandbox, "blindw", "pw-123")
    with pytest.raises(TrackerPermissionError) as caught:
        blind.add_comments(ref.id, [("one", "A"), ("two", "B")])
    assert "read access to sys_journal_field" in caught.value.message
    assert "'blindw'" in caught.value.message


def test_a_read_tells_the_attachment_marker_the_listing_shows(sandbox):
    a = adapter(sandbox)
    since = datetime.now(UTC)
    ref = create(a, "read marker")
    a.add_attachment(ref.id, file_name="1.txt", content_type="text/plain", chunks=[b"1"])
    a.add_attachment(ref.id, file_name="2.txt", content_type="text/plain", chunks=[b"2"])
    assert a.attachments_seen(ref.id) == ("", None)  # not read yet
    a.client.calls = 0
    a.read_replica(ref.id)
    assert a.client.calls == 3  # nothing extra to learn it
    marker, newest = a.attachments_seen(ref.id)
    listed = {c.id: c for c in a.list_changed(since=since, overlap_seconds=60)}[ref.id]
    assert (marker, newest) == (listed.attachments_marker, listed.attachments_updated)
    assert a.attachments_seen(ref.id) == ("", None)  # forgotten once given
    a.read_replicas([ref.id])  # the batched read of bulk and trigger runs tells it too
    assert a.attachments_seen(ref.id) == (marker, newest)
