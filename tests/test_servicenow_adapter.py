"""ServiceNowAdapter (the sync engine's interface to ServiceNow) against a real sandbox."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from servicenow_adapter.adapter import ServiceNowAdapter
from servicenow_adapter.client import BasicCredentials, RetryPolicy, ServiceNowClient
from tests.live import LiveSandbox, free_port
from trackers.errors import (
    AmbiguousEntityKey,
    NotATrackerInstance,
    TrackerAuthenticationError,
    TrackerError,
    TrackerNotFound,
    TrackerPermissionError,
    TrackerUnreachable,
    TransientTrackerError,
)
from trackers.interface import TrackerConfig

pytestmark = pytest.mark.integration
FAST = RetryPolicy(max_attempts=3, max_total_seconds=5, base_delay=0.01, max_delay=0.05)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    sb = LiveSandbox(tmp_path_factory.mktemp("sn-adapter"), seed="demo").start()
    yield sb
    sb.stop()


@pytest.fixture(autouse=True)
def no_faults(sandbox):
    requests.delete(f"{sandbox.url}/sandbox/faults", timeout=5)
    yield
    requests.delete(f"{sandbox.url}/sandbox/faults", timeout=5)


def adapter(url: str, user: str = "admin", password: str = "admin", **kw) -> ServiceNowAdapter:
    creds = BasicCredentials(username=user, password=password)
    return ServiceNowAdapter(ServiceNowClient(url, credentials=creds, retry=FAST, timeout=5, **kw))


def make_user(sandbox, user_name: str, acl: dict) -> None:
    body = {"user_name": user_name, "password": "pw-123", "name": user_name, "acl": acl}
    requests.post(f"{sandbox.url}/sandbox/users", json=body, timeout=5).raise_for_status()


class _Site(BaseHTTPRequestHandler):
    """A web server that is not ServiceNow: an HTML page, or JSON without the result envelope."""

    body = b"<html><body>Welcome to our intranet</body></html>"
    content_type = "text/html"

    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


class _JsonSite(_Site):
    body = json.dumps({"status": "ok", "items": []}).encode()
    content_type = "application/json"


@pytest.fixture(params=[_Site, _JsonSite], ids=["html", "json"])
def other_site(request):
    server = ThreadingHTTPServer(("127.0.0.1", 0), request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# -- test_connection ----------------------------------------------------------------------------------


def test_connection_succeeds_with_good_credentials(sandbox):
    message = adapter(sandbox.url).test_connection()
    assert "Connected to" in message and "sys_journal_field" in message


def test_connection_through_from_config_with_oauth(sandbox):
    config = TrackerConfig(
        tracker="servicenow", instance_url=sandbox.url + "/", auth_method="oauth", username="admin",
        password="admin", client_id="exalate-sandbox", client_secret="exalate-sandbox-secret", from_env=False,
    )  # fmt: skip
    assert "Connected to" in ServiceNowAdapter.from_config(config).test_connection()


def test_connection_reports_wrong_credentials_without_the_password(sandbox):
    with pytest.raises(TrackerAuthenticationError) as caught:
        adapter(sandbox.url, password="Hunter2-wrong").test_connection()
    assert "refused the user name and password for 'admin'" in caught.value.message
    assert "Hunter2-wrong" not in str(caught.value)


def test_connection_reports_an_unreachable_url():
    with pytest.raises(TrackerUnreachable) as caught:
        adapter(f"http://127.0.0.1:{free_port()}").test_connection()
    assert (
        "Could not reach" in caught.value.message and "connection refused" in caught.value.message
    )


def test_connection_reports_a_site_that_is_not_servicenow(other_site):
    with pytest.raises(NotATrackerInstance) as caught:
        adapter(other_site).test_connection()
    assert "not like a ServiceNow instance" in caught.value.message


def test_connection_reports_a_hibernating_instance(sandbox):
    requests.post(f"{sandbox.url}/sandbox/faults", json={"html": True}, timeout=5)
    with pytest.raises(TrackerUnreachable) as caught:
        adapter(sandbox.url).test_connection()
    assert "hibernating" in caught.value.message


def test_connection_reports_rate_limiting_as_try_again(sandbox):
    requests.post(f"{sandbox.url}/sandbox/faults", json={"status": 503}, timeout=5)
    with pytest.raises(TransientTrackerError) as caught:
        adapter(sandbox.url).test_connection()
    assert "Try again" in caught.value.message


@pytest.mark.parametrize(
    ("acl", "named"),
    [
        ({"incident": "deny"}, "incident table"),
        ({"sys_journal_field": "deny"}, "sys_journal_field"),
        ({"sys_journal_field": "hide"}, "an ACL hides them"),
        ({"sys_attachment": "deny"}, "sys_attachment"),
    ],
)
def test_connection_names_the_table_the_user_cannot_read(sandbox, acl, named):
    user = "limited." + list(acl)[0] + "." + list(acl.values())[0]
    make_user(sandbox, user, acl)
    with pytest.raises(TrackerPermissionError) as caught:
        adapter(sandbox.url, user=user, password="pw-123").test_connection()
    assert named in caught.value.message and user in caught.value.message


def test_from_config_refuses_incomplete_settings():
    config = TrackerConfig(
        "servicenow", "https://x.service-now.com", "basic", "", "", "", "", False
    )
    with pytest.raises(TrackerError):
        ServiceNowAdapter.from_config(config)


# -- finding -------------------------------------------------------------------------------------------


def test_find_entity_by_number_sys_id_and_link(sandbox):
    a = adapter(sandbox.url)
    ref = a.find_entity("INC0010001")
    assert ref.key == "INC0010001" and len(ref.id) == 32
    assert ref.url == f"{sandbox.url}/nav_to.do?uri=incident.do%3Fsys_id%3D{ref.id}"
    assert a.find_entity(" inc0010001 ") == ref
    assert a.find_entity(ref.id) == ref
    assert a.find_entity(ref.url) == ref
    assert a.get_entity(ref.id) == ref


def test_find_entity_of_an_unknown_number_is_not_found(sandbox):
    with pytest.raises(TrackerNotFound) as caught:
        adapter(sandbox.url).find_entity("INC9999999")
    assert "There is no incident INC9999999" in caught.value.message


def test_a_number_with_query_syntax_cannot_match_other_incidents(sandbox):
    with pytest.raises(TrackerNotFound):
        adapter(sandbox.url).find_entity("INC0010001^NQnumberISNOTEMPTY")


def test_a_duplicate_number_is_ambiguous_not_a_guess(sandbox):
    a = adapter(sandbox.url)
    original = a.find_entity("INC0010002")
    twin = a.client.table_create(
        "incident", {"number": "INC0010002", "short_description": "Imported duplicate"}
    )
    try:
        with pytest.raises(AmbiguousEntityKey) as caught:
            a.find_entity("INC0010002")
        assert set(caught.value.candidates) == {original.id, twin["sys_id"]}
    finally:
        a.client.table_delete("incident", twin["sys_id"])


def test_get_entity_of_a_missing_sys_id_is_not_found(sandbox):
    with pytest.raises(TrackerNotFound):
        adapter(sandbox.url).get_entity("0" * 32)


# -- reading --------------------------------------------------------------------------------------------


def test_a_number_lookup_serves_the_next_read_of_the_same_incident_once(sandbox, monkeypatch):
    """Issue 14: exalating one incident by number reads it once (the lookup's row)."""
    a = adapter(sandbox.url)
    first = a.read_replica(a.find_entity("INC0010001").id)  # warms the author-name cache
    a.client.calls = 0
    ref = a.find_entity("INC0010001")
    assert a.read_replica(ref.id) == first
    assert a.client.calls == 3  # the lookup, the journal, the attachment list
    a.client.calls = 0
    a.read_replica(ref.id)  # used once: the next read is a read
    assert a.client.calls == 3
    a.find_entity(ref.id)  # by sys_id: the same
    a.client.calls = 0
    a.read_replica(ref.id)
    assert a.client.calls == 2
    a.find_entity("INC0010001")
    monkeypatch.setattr("servicenow_adapter.adapter.FOUND_ROW_REUSE_SECONDS", 0.0)
    a.client.calls = 0
    a.read_replica(ref.id)  # too old: read again
    assert a.client.calls == 3


def test_read_replica_uses_three_calls_and_leaves_out_work_notes(sandbox):
    a = adapter(sandbox.url)
    ref = a.find_entity("INC0010001")
    a.read_replica(ref.id)  # warms the author-name cache
    a.client.calls = 0
    replica = a.read_replica(ref.id)
    assert a.client.calls == 3
    assert replica["entity"]["key"] == "INC0010001" and replica["summary"].startswith(
        "Email not syncing"
    )
    bodies = [c["body"] for c in replica["comments"]]
    assert (
        len(bodies) == 3
        and any("<b>Outlook 2021</b>" in b for b in bodies)
        and any("[code]" in b for b in bodies)
    )
    assert not any("Exchange logs" in b for b in bodies)  # the work note
    assert [c["author"] for c in replica["comments"]] == [
        "Beth Anglin",
        "Joe Employee",
        "Beth Anglin",
    ]
    assert [c["created"] for c in replica["comments"]] == sorted(
        c["created"] for c in replica["comments"]
    )
    assert [(x["file_name"], x["content_type"]) for x in replica["attachments"]] == [
        ("outlook-error.png", "image/png"),
        ("mailbox-diagnostics.pdf", "application/pdf"),
    ]
    assert replica["updated"].endswith("Z") and replica["mod_count"] >= 1


def test_streamed_attachment_bytes_match_the_replica_sha256(sandbox):
    a = adapter(sandbox.url)
    replica = a.read_replica(a.find_entity("INC0010001").id)
    for item in replica["attachments"]:
        data = b"".join(a.stream_attachment(item["id"], chunk_size=1024))
        assert hashlib.sha256(data).hexdigest() == item["sha256"] and len(data) == item["size"]
    png = b"".join(a.stream_attachment(replica["attachments"][0]["id"]))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_reading_a_missing_incident_is_not_found(sandbox):
    with pytest.raises(TrackerNotFound):
        adapter(sandbox.url).read_replica("1" * 32)


# -- writing -----------------------------------------------------------------------------------------


def test_create_update_comment_and_attachment_show_up_in_the_replica(sandbox):
    a = adapter(sandbox.url)
    ref = a.create_entity(
        summary="Mirrored from Jira: login loop",
        description="Line 1\nLine 2 – ü",
        entity_type="Bug",
        correlation_id="exalate:test:1",
        correlation_display="Exalate test",
    )
    assert ref.key.startswith("INC") and ref.url.endswith(ref.id)
    a.update_entity(ref.id, summary="Mirrored: login loop (updated)", description="New body")
    first = a.add_comment(ref.id, body="Same text", author="Beth Anglin")
    second = a.add_comment(ref.id, body="Same text", author="Beth Anglin")
    assert first.id != second.id
    png = bytes(range(256)) * 40
    added = a.add_attachment(
        ref.id,
        file_name="screen – ü.png",
        content_type="image/png",
        chunks=[png[:5000], png[5000:]],
    )
    replica = a.read_replica(ref.id)
    assert (
        replica["summary"] == "Mirrored: login loop (updated)"
        and replica["description"] == "New body"
    )
    assert {c["id"] for c in replica["comments"]} == {first.id, second.id}
    # A mirrored comment reads back with its original author, not the integration user.
    assert replica["comments"][0]["body"] == "Same text"
    assert replica["comments"][0]["author"] == "Beth Anglin"
    assert replica["attachments"] == [
        {"id": added.id, "file_name": "screen – ü.png", "content_type": "image/png", "size": len(png),
         "sha256": hashlib.sha256(png).hexdigest()},
    ]  # fmt: skip


def test_add_comment_returns_the_new_journal_entry_in_two_calls(sandbox):
    a = adapter(sandbox.url)
    ref = a.find_entity("INC0010003")
    a.client.calls = 0
    item = a.add_comment(ref.id, body="<p>HTML stays as typed</p>", author="Zoë Ångström")
    assert a.client.calls == 2
    entry = a.client.table_get(
        "sys_journal_field", item.id, fields=("element", "value", "element_id")
    )
    assert entry == {
        "element": "comments",
        "value": "[Zoë Ångström wrote]\n<p>HTML stays as typed</p>",
        "element_id": ref.id,
    }


def test_an_empty_comment_is_refused_before_writing(sandbox):
    a = adapter(sandbox.url)
    with pytest.raises(TrackerError):
        a.add_comment(a.find_entity("INC0010003").id, body="  ", author="")
    assert a.client.calls == 1  # only the lookup


def test_writing_to_a_missing_incident_is_not_found(sandbox):
    a = adapter(sandbox.url)
    with pytest.raises(TrackerNotFound):
        a.update_entity("2" * 32, summary="x", description="y")
    with pytest.raises(TrackerNotFound):
        a.add_comment("2" * 32, body="x", author="y")
    with pytest.raises(TrackerNotFound):
        a.add_attachment("2" * 32, file_name="a.txt", content_type="text/plain", chunks=[b"x"])


# -- change detection ----------------------------------------------------------------------------------


def test_list_changed_finds_updates_since_the_watermark_minus_overlap(sandbox):
    a = adapter(sandbox.url)
    ref = a.find_entity("INC0010004")
    a.update_entity(ref.id, summary="Changed for the poll", description="x")
    changes = a.list_changed(since=datetime.now(UTC) + timedelta(seconds=30), overlap_seconds=120)
    mine = [c for c in changes if c.id == ref.id]
    assert len(mine) == 1 and mine[0].updated.tzinfo is not None
    assert mine[0].mod_count == int(
        a.client.table_get("incident", ref.id, fields=("sys_mod_count",))["sys_mod_count"]
    )
    assert a.list_changed(since=datetime.now(UTC) + timedelta(hours=1), overlap_seconds=60) == []


def test_list_changed_reports_an_incident_whose_only_change_is_a_new_attachment(sandbox):
    a = adapter(sandbox.url)
    ref = a.find_entity("INC0010005")
    count = a.client.table_get("incident", ref.id, fields=("sys_mod_count",))["sys_mod_count"]
    a.add_attachment(
        ref.id, file_name="later.txt", content_type="text/plain", chunks=[b"added later"]
    )
    changes = [
        c for c in a.list_changed(since=datetime.now(UTC), overlap_seconds=60) if c.id == ref.id
    ]
    assert len(changes) == 1 and changes[0].mod_count == int(count)


def test_list_changed_skips_nothing_when_rows_change_between_pages(sandbox):
    a = adapter(sandbox.url, page_size=3)
    since = datetime.now(UTC) - timedelta(seconds=1)
    refs = [
        a.create_entity(
            summary=f"Paging {i}",
            description="",
            entity_type="incident",
            correlation_id=f"exalate:paging:{i}",
            correlation_display="",
        )
        for i in range(8)
    ]
    other = adapter(sandbox.url, user="beth.anglin", password="beth")
    original = a.client.table_page
    edited: list[str] = []

    def page_then_update(*args, **kwargs):
        result = original(*args, **kwargs)
        if not edited and args[0] == "incident":
            # Someone edits an incident from the first page: with offset paging it would move
            # to the end and push an unseen one back into the page already read.
            # The sandbox clock moves on 5 s so the edit sorts after every other row.
            edited.append(result.rows[0]["sys_id"])
            requests.post(f"{sandbox.url}/sandbox/clock", json={"offset_seconds": 5}, timeout=5)
            other.update_entity(edited[0], summary="Edited while paging", description="")
        return result

    a.client.table_page = page_then_update
    try:
        changes = a.list_changed(since=since, overlap_seconds=0)
    finally:
        requests.post(f"{sandbox.url}/sandbox/clock", json={"offset_seconds": 0}, timeout=5)
    assert {r.id for r in refs} <= {c.id for c in changes}
    assert max(c.mod_count for c in changes if c.id == edited[0]) >= 1
    assert a.client.calls >= 4  # several pages were read


def test_correlated_create_is_found_again_by_its_correlation_id(sandbox):
    a = adapter(sandbox.url)
    key = "exalate:conn-1:twin-42"
    assert a.find_entity_by_correlation(key) is None
    ref = a.create_entity(
        summary="Correlated",
        description="",
        entity_type="Task",
        correlation_id=key,
        correlation_display="Exalate INC1",
    )
    a.client.calls = 0
    assert a.find_entity_by_correlation(key) == ref and a.client.calls == 1
    assert a.find_entity_by_correlation(key + "^NQcorrelation_idISNOTEMPTY") is None
    assert a.find_entity_by_correlation("") is None
    assert "incident" in a.entity_types


def test_update_entity_writes_only_what_is_given(sandbox):
    a = adapter(sandbox.url)
    ref = a.create_entity(
        summary="Keep summary",
        description="Old",
        entity_type="incident",
        correlation_id="exalate:keep:1",
        correlation_display="",
    )
    a.client.calls = 0
    a.update_entity(ref.id, description="New")
    a.update_entity(ref.id)
    assert a.client.calls == 1
    replica = a.read_replica(ref.id)
    assert (replica["summary"], replica["description"]) == ("Keep summary", "New")


def test_a_comment_a_person_begins_with_an_author_line_keeps_its_real_author(sandbox):
    """Issue 11 (3): "[Joe Employee wrote]" typed by Beth stays Beth's comment, text intact."""
    a = adapter(sandbox.url)
    ref = a.create_entity(
        summary="Author lines",
        description="",
        entity_type="incident",
        correlation_id="exalate:authors:1",
        correlation_display="",
    )
    beth = requests.Session()
    beth.auth = ("beth.anglin", "beth")
    r = beth.patch(
        f"{sandbox.url}/api/now/table/incident/{ref.id}",
        json={"comments": "[Joe Employee wrote]\nPlease reset my password"},
        timeout=10,
    )
    assert r.status_code == 200
    a.add_comment(ref.id, body="Mirrored text", author="Fred Luddy")
    comments = a.read_replica(ref.id)["comments"]
    by_body = {c["body"]: c["author"] for c in comments}
    assert by_body["[Joe Employee wrote]\nPlease reset my password"] == "Beth Anglin"
    assert by_body["Mirrored text"] == "Fred Luddy"
