"""ServiceNowAdapter against a sandbox that behaves like a real instance (issue 10, items 2, 3, 5, 6).

Random sys_ids, the clock frozen on one second, ACL-hidden incidents (still counted),
a journal the user may not read (200, no rows, X-Total-Count 0), odd attachments, a
maximum attachment size.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests

from servicenow_adapter.adapter import ServiceNowAdapter
from servicenow_adapter.client import BasicCredentials, RetryPolicy, ServiceNowClient
from tests.live import LiveSandbox
from trackers.errors import AttachmentRefused, TrackerNotFound, TrackerPermissionError
from trackers.replica import replica_validate

pytestmark = pytest.mark.integration
FAST = RetryPolicy(max_attempts=2, max_total_seconds=3, base_delay=0.01, max_delay=0.05)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    sb = LiveSandbox(tmp_path_factory.mktemp("sn-real"), seed="none").start()
    yield sb
    sb.stop()


@pytest.fixture(autouse=True)
def reset(sandbox):
    yield
    requests.delete(f"{sandbox.url}/sandbox/faults", timeout=5)
    requests.post(f"{sandbox.url}/sandbox/clock", json={"frozen": False}, timeout=5)
    requests.delete(f"{sandbox.url}/sandbox/limits", timeout=5)


def adapter(sandbox, user: str = "admin", password: str = "admin") -> ServiceNowAdapter:
    creds = BasicCredentials(username=user, password=password)
    client = ServiceNowClient(sandbox.url, credentials=creds, retry=FAST, timeout=5)
    return ServiceNowAdapter(client, author_lookup=False)


def user_with(sandbox, user_name: str, acl: dict) -> ServiceNowAdapter:
    body = {"user_name": user_name, "password": "pw-123", "name": user_name, "acl": acl}
    requests.post(f"{sandbox.url}/sandbox/users", json=body, timeout=5).raise_for_status()
    return adapter(sandbox, user_name, "pw-123")


def new_incident(a: ServiceNowAdapter, summary: str):
    return a.create_entity(summary=summary, description="", entity_type="incident",
                           correlation_id="", correlation_display="")  # fmt: skip


def comment_as_person(sandbox, sys_id: str, text: str) -> None:
    s = sandbox.session()
    s.patch(f"{sandbox.url}/api/now/table/incident/{sys_id}", json={"comments": text},
            timeout=5).raise_for_status()  # fmt: skip


# -- item 2: same-second comments keep the order people see ------------------------------------


def test_ten_comments_in_one_second_keep_the_order_people_see(sandbox):
    a = adapter(sandbox)
    ref = new_incident(a, "ten in one second")
    requests.post(f"{sandbox.url}/sandbox/clock", json={"frozen": True}, timeout=5)
    for i in range(1, 11):
        comment_as_person(sandbox, ref.id, f"comment {i:02d}")
    replica = a.read_replica(ref.id)
    assert len({c["created"] for c in replica["comments"]}) == 1
    assert [c["body"] for c in replica["comments"]] == [f"comment {i:02d}" for i in range(1, 11)]


def test_same_text_twice_and_multi_paragraph_comments_in_one_second(sandbox):
    a = adapter(sandbox)
    ref = new_incident(a, "paragraphs")
    requests.post(f"{sandbox.url}/sandbox/clock", json={"frozen": True}, timeout=5)
    texts = ["first\n\nsecond paragraph", "same", "third", "same", "last line\n"]
    for text in texts:
        comment_as_person(sandbox, ref.id, text)
    bodies = [c["body"] for c in a.read_replica(ref.id)["comments"]]
    assert [b.strip() for b in bodies] == [t.strip() for t in texts]


# -- item 3: odd attachments never block the incident --------------------------------------------


def test_a_long_file_name_and_content_type_are_fitted_not_fatal(sandbox):
    a = adapter(sandbox)
    ref = new_incident(a, "odd attachment")
    long_name = "n" * 292 + ".png"  # 296 characters
    s = sandbox.session()
    r = s.post(f"{sandbox.url}/api/now/attachment/file",
               params={"table_name": "incident", "table_sys_id": ref.id, "file_name": long_name},
               data=b"\x89PNG-ish", headers={"Content-Type": "image/" + "x" * 414},  # 420 chars
               timeout=5)  # fmt: skip
    assert r.status_code == 201, r.text
    comment_as_person(sandbox, ref.id, "after the odd file")
    replica = replica_validate(a.read_replica(ref.id))
    (att,) = replica["attachments"]
    assert len(att["file_name"]) <= 255 and att["file_name"].endswith(".png")
    assert att["file_name"].startswith("nnnn")
    assert att["content_type"] == "application/octet-stream"
    assert [c["body"] for c in replica["comments"]] == ["after the odd file"]


# -- item 4 (adapter part): a refused upload is an AttachmentRefused, not a failed incident ------


def test_an_upload_over_the_size_limit_is_refused_as_too_large(sandbox):
    a = adapter(sandbox)
    ref = new_incident(a, "too large")
    requests.post(f"{sandbox.url}/sandbox/limits", json={"max_attachment_bytes": 1000}, timeout=5)
    with pytest.raises(AttachmentRefused) as caught:
        a.add_attachment(ref.id, file_name="big.bin", content_type="application/octet-stream",
                         chunks=[b"x" * 600, b"x" * 600])  # fmt: skip
    assert caught.value.too_large and "max_size" in caught.value.reason
    assert a.add_comment(ref.id, body="still fine", author="Beth").id  # the incident goes on


# -- item 5: a journal that cannot be read is named, never silently empty -----------------------


def test_comments_that_cannot_be_read_raise_naming_the_right(sandbox):
    a = adapter(sandbox)
    ref = new_incident(a, "unreadable comments")
    comment_as_person(sandbox, ref.id, "one")
    comment_as_person(sandbox, ref.id, "two")
    blind = user_with(sandbox, "blind", {"sys_journal_field": "empty"})
    with pytest.raises(TrackerPermissionError) as caught:
        blind.read_replica(ref.id)
    assert "sys_journal_field" in caught.value.message and "'blind'" in caught.value.message
    with pytest.raises(TrackerPermissionError) as caught:
        blind.test_connection()
    assert "read access to the sys_journal_field" in caught.value.message
    assert "Connected" in a.test_connection()


def test_an_incident_without_comments_reads_fine_without_journal_rows(sandbox):
    a = adapter(sandbox)
    ref = new_incident(a, "no comments")
    blind = user_with(sandbox, "blind2", {"sys_journal_field": "empty"})
    assert blind.read_replica(ref.id)["comments"] == []


# -- item 6: rows hidden by ACLs are named as hidden, not as missing ----------------------------


def test_acl_hidden_incidents_are_reported_as_not_readable(sandbox):
    a = adapter(sandbox)
    hidden = new_incident(a, "classified: hidden one")
    new_incident(a, "an ordinary one")
    limited = user_with(
        sandbox, "limited", {"incident": "hide:short_descriptionSTARTSWITHclassified"}
    )
    for call in (
        lambda: limited.find_entity(hidden.key),
        lambda: limited.get_entity(hidden.id),
        lambda: limited.read_replica(hidden.id),
        lambda: limited.add_comment(hidden.id, body="hi", author="Beth"),
    ):
        with pytest.raises(TrackerPermissionError) as caught:
            call()
        assert "exists" in caught.value.message and "read access" in caught.value.message
        assert "'limited'" in caught.value.message
    with pytest.raises(TrackerPermissionError) as caught:
        limited.test_connection()
    assert "hidden by ACLs" in caught.value.message
    with pytest.raises(TrackerNotFound):
        limited.get_entity("0" * 32)  # truly missing stays "not found"


# -- item 1 (adapter part): the listing marks an attachment change -----------------------------


def test_the_change_listing_marks_an_attachment_added_in_the_same_second(sandbox):
    a = adapter(sandbox)
    # Frozen first, so the incident and its attachment share one second (created a moment
    # before the freeze, the two could straddle a second boundary: a flaky run).
    requests.post(f"{sandbox.url}/sandbox/clock", json={"frozen": True}, timeout=5)
    ref = new_incident(a, "same-second attachment")
    since = datetime.now(UTC)
    before = {c.id: c for c in a.list_changed(since=since, overlap_seconds=60)}[ref.id]
    a.add_attachment(ref.id, file_name="p.png", content_type="image/png", chunks=[b"png"])
    after = {c.id: c for c in a.list_changed(since=since, overlap_seconds=60)}[ref.id]
    assert (after.mod_count, after.updated) == (before.mod_count, before.updated)
    assert before.attachments_updated is None and after.attachments_updated is not None


def test_the_attachment_marker_changes_for_a_second_attachment_in_the_same_second(sandbox):
    a = adapter(sandbox)
    ref = new_incident(a, "two in one second")
    requests.post(f"{sandbox.url}/sandbox/clock", json={"frozen": True}, timeout=5)
    since = datetime.now(UTC)
    a.add_attachment(ref.id, file_name="1.png", content_type="image/png", chunks=[b"one"])
    first = {c.id: c for c in a.list_changed(since=since, overlap_seconds=60)}[ref.id]
    a.add_attachment(ref.id, file_name="2.png", content_type="image/png", chunks=[b"two"])
    second = {c.id: c for c in a.list_changed(since=since, overlap_seconds=60)}[ref.id]
    assert first.attachments_updated == second.attachments_updated  # one frozen second
    assert first.attachments_marker and first.attachments_marker != second.attachments_marker


# -- item 7 (adapter part): a long Retry-After holds every call from this node ------------------


@pytest.mark.django_db
def test_a_long_retry_after_holds_every_client_of_the_node(sandbox, settings):
    from servicenow_adapter import busy
    from trackers.errors import TransientTrackerError
    from trackers.interface import TrackerConfig

    settings.SERVICENOW_RETRY_MAX_SECONDS = 5
    config = TrackerConfig(tracker="servicenow", instance_url=sandbox.url, auth_method="basic",
                           username="admin", password="admin", client_id="", client_secret="",
                           from_env=False)  # fmt: skip
    busy.SHARED.clear(sandbox.url)
    try:
        requests.post(f"{sandbox.url}/sandbox/faults",
                      json={"status": 429, "retry_after": 120, "count": 1}, timeout=5)  # fmt: skip
        requests.delete(f"{sandbox.url}/sandbox/stats", timeout=5)
        with pytest.raises(TransientTrackerError) as caught:
            ServiceNowAdapter.from_config(config).list_changed(
                since=datetime.now(UTC), overlap_seconds=5
            )
        assert caught.value.retry_after and caught.value.retry_after >= 119
        # Another client (another task, another worker) does not call the instance at all.
        for call in (
            lambda: ServiceNowAdapter.from_config(config).list_changed(
                since=datetime.now(UTC), overlap_seconds=5
            ),
            lambda: ServiceNowAdapter.from_config(config).get_entity("0" * 32),
        ):
            with pytest.raises(TransientTrackerError) as caught:
                call()
            assert 100 < caught.value.retry_after <= 120
        stats = requests.get(f"{sandbox.url}/sandbox/stats", timeout=5).json()
        assert stats.get("total") == 1
        assert busy.BusyGate().remaining(sandbox.url) > 100  # a fresh gate: the shared cache
    finally:
        busy.SHARED.clear(sandbox.url)


# -- item 9 (adapter part): hibernation is an instance-wide condition, named with its URL -------


def test_a_hibernating_instance_is_a_connection_level_unavailable_error(sandbox):
    from trackers.errors import TrackerUnavailable

    requests.post(f"{sandbox.url}/sandbox/faults", json={"html": True}, timeout=5)
    with pytest.raises(TrackerUnavailable) as caught:
        adapter(sandbox).list_changed(since=datetime.now(UTC), overlap_seconds=5)
    assert f"The instance {sandbox.url} is hibernating" in caught.value.message
