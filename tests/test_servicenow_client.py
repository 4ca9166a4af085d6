"""The ServiceNow client against a real sandbox over HTTP: every operation and every error type."""

from __future__ import annotations

import hashlib
import time

import pytest
import requests

from servicenow_adapter import errors
from servicenow_adapter import query as q
from servicenow_adapter.client import (
    BasicCredentials,
    OAuthCredentials,
    RetryPolicy,
    ServiceNowClient,
)
from tests.live import LiveSandbox, free_port
from trackers.errors import (
    NotATrackerInstance,
    TrackerAuthenticationError,
    TrackerBadRequest,
    TrackerNotFound,
    TrackerPermissionError,
    TrackerUnreachable,
    TransientTrackerError,
)

pytestmark = pytest.mark.integration
FAST = RetryPolicy(max_attempts=4, max_total_seconds=10, base_delay=0.01, max_delay=0.05)
CLIENT_ID, CLIENT_SECRET = "console-client", "s3cret-client-value"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    sb = LiveSandbox(
        tmp_path_factory.mktemp("sn-client"),
        seed="demo",
        extra_args=["--oauth-client-id", CLIENT_ID, "--oauth-client-secret", CLIENT_SECRET],
    ).start()
    yield sb
    sb.stop()


@pytest.fixture(autouse=True)
def no_faults(sandbox):
    requests.delete(f"{sandbox.url}/sandbox/faults", timeout=5)
    yield
    requests.delete(f"{sandbox.url}/sandbox/faults", timeout=5)


def fault(sandbox, **settings) -> None:
    requests.post(f"{sandbox.url}/sandbox/faults", json=settings, timeout=5).raise_for_status()


def stats(sandbox, reset: bool = False) -> dict:
    method = requests.delete if reset else requests.get
    return method(f"{sandbox.url}/sandbox/stats", timeout=5).json()


def make_user(sandbox, user_name: str, password: str = "pw-123", **extra) -> None:
    body = {"user_name": user_name, "password": password, "name": user_name.title(), **extra}
    requests.post(f"{sandbox.url}/sandbox/users", json=body, timeout=5).raise_for_status()


def client(sandbox, *, user=None, password=None, retry=FAST, timeout=5.0, **kw) -> ServiceNowClient:
    creds = BasicCredentials(username=user or sandbox.user, password=password or sandbox.password)
    return ServiceNowClient(sandbox.url, credentials=creds, retry=retry, timeout=timeout, **kw)


def oauth_client(sandbox, *, secret=CLIENT_SECRET, password=None) -> ServiceNowClient:
    creds = OAuthCredentials(
        client_id=CLIENT_ID,
        client_secret=secret,
        username=sandbox.user,
        password=password or sandbox.password,
    )
    return ServiceNowClient(sandbox.url, credentials=creds, retry=FAST, timeout=5)


def first_incident(c: ServiceNowClient) -> dict:
    return c.table_page(
        "incident", query="number=INC0010001", fields=("sys_id", "number"), limit=1
    ).rows[0]


# -- Table API ------------------------------------------------------------------------------------


def test_get_returns_raw_strings_with_bare_reference_ids(sandbox):
    c = client(sandbox)
    sys_id = first_incident(c)["sys_id"]
    row = c.table_get(
        "incident",
        sys_id,
        fields=("number", "caller_id", "sys_mod_count", "sys_updated_on", "priority"),
    )
    assert row["number"] == "INC0010001"
    assert len(row["caller_id"]) == 32 and isinstance(row["caller_id"], str)
    assert row["sys_mod_count"].isdigit() and row["priority"] == "3"
    assert len(row["sys_updated_on"]) == 19 and row["sys_updated_on"][10] == " "


def test_get_of_a_missing_record_carries_the_instance_message_and_detail(sandbox):
    with pytest.raises(TrackerNotFound) as caught:
        client(sandbox).table_get("incident", "0" * 32)
    assert caught.value.status == 404
    assert "No Record found" in caught.value.message
    assert caught.value.detail == "Record doesn't exist or ACL restricts the record retrieval"


def test_malformed_sys_id_is_refused_before_any_request(sandbox):
    c = client(sandbox)
    with pytest.raises(TrackerNotFound):
        c.table_get("incident", "../sys_user")
    assert c.calls == 0


def test_create_update_and_delete_round_trip(sandbox):
    c = client(sandbox)
    created = c.table_create(
        "incident", {"short_description": "Created by the client", "impact": "1", "urgency": "2"}
    )
    assert created["number"].startswith("INC00") and created["priority"] == "2"
    assert created["sys_created_by"] == "admin" and created["sys_mod_count"] == "0"
    updated = c.table_update("incident", created["sys_id"], {"description": "More words"})
    assert updated["description"] == "More words" and updated["sys_mod_count"] == "1"
    c.table_delete("incident", created["sys_id"])
    with pytest.raises(TrackerNotFound):
        c.table_get("incident", created["sys_id"])


def test_writes_are_stamped_with_the_calling_user(sandbox):
    beth = client(sandbox, user="beth.anglin", password="beth")
    sys_id = first_incident(beth)["sys_id"]
    row = beth.table_update(
        "incident",
        sys_id,
        {"comments": "Beth was here"},
        fields=("sys_updated_by", "sys_mod_count"),
    )
    assert row["sys_updated_by"] == "beth.anglin"
    entry = beth.journal_list(sys_id)[-1]
    assert entry["value"] == "Beth was here" and entry["sys_created_by"] == "beth.anglin"


def test_unknown_table_is_a_bad_request_with_the_instance_message(sandbox):
    with pytest.raises(TrackerBadRequest) as caught:
        client(sandbox).table_page("no_such_table", query="", limit=1)
    assert "Invalid table no_such_table" in caught.value.message


def test_resolving_without_close_fields_is_refused_by_the_data_policy(sandbox):
    c = client(sandbox)
    sys_id = first_incident(c)["sys_id"]
    with pytest.raises(TrackerPermissionError) as caught:
        c.table_update("incident", sys_id, {"state": "6"})
    assert "Data Policy Exception" in caught.value.detail
    assert c.table_get("incident", sys_id, fields=("state",))["state"] == "2"


# -- paging ----------------------------------------------------------------------------------------


def test_list_reads_every_page_in_a_total_order(sandbox):
    c = client(sandbox, page_size=7)
    stats(sandbox, reset=True)
    rows = c.table_list("incident", query="", fields=("sys_id", "sys_updated_on"))
    pages = stats(sandbox)["GET /api/now/table/incident"]
    total = client(sandbox).table_page("incident", query="", limit=1).total
    assert len(rows) == total and len({r["sys_id"] for r in rows}) == total
    assert [(r["sys_updated_on"], r["sys_id"]) for r in rows] == sorted(
        (r["sys_updated_on"], r["sys_id"]) for r in rows
    )
    assert pages == -(-total // 7)


def test_paging_does_not_stop_at_a_short_page(sandbox):
    # An ACL hides network incidents after the limit is applied: pages come back short.
    make_user(sandbox, "acl.reader", acl={"incident": "hide:category=network"})
    c = client(sandbox, user="acl.reader", password="pw-123", page_size=5)
    rows = c.table_list("incident", query="", fields=("sys_id", "category"))
    everything = client(sandbox).table_list("incident", query="", fields=("sys_id", "category"))
    visible = [r["sys_id"] for r in everything if r["category"] != "network"]
    assert len(visible) < len(everything)
    assert [r["sys_id"] for r in rows] == visible


def test_a_page_reports_total_and_next_link(sandbox):
    page = client(sandbox).table_page(
        "incident", query="ORDERBYnumber", fields=("number",), limit=3, offset=3
    )
    assert [r["number"] for r in page.rows] == ["INC0010004", "INC0010005", "INC0010006"]
    assert page.total and page.total >= 36 and page.has_next


def test_user_text_with_caret_ampersand_and_equals_cannot_change_a_query(sandbox):
    c = client(sandbox)
    text = "Odd ^NQ text & a=b %20 done"
    created = c.table_create("incident", {"short_description": text})
    hits = c.table_list(
        "incident", query=q.term("short_description", "=", text), fields=("sys_id",)
    )
    assert [r["sys_id"] for r in hits] == [created["sys_id"]]
    injected = c.table_list(
        "incident", query=q.term("number", "=", "x^NQnumberISNOTEMPTY"), fields=("sys_id",)
    )
    assert injected == []


def test_a_cancelled_transaction_is_retried_with_a_smaller_page(sandbox):
    c = client(sandbox, page_size=40)
    fault(sandbox, quota=True, count=1, paths="/api/now/table/incident")
    rows = c.table_list("incident", query="", fields=("sys_id",))
    assert len(rows) >= 36
    assert c.calls >= 3  # the cancelled page, then pages of 20


# -- journal ---------------------------------------------------------------------------------------


def test_comment_and_work_note_patches_append_journal_rows(sandbox):
    c = client(sandbox)
    sys_id = c.table_create("incident", {"short_description": "Journal test"})["sys_id"]
    row = c.table_update(
        "incident", sys_id, {"comments": "Public\nline 2"}, fields=("comments", "sys_mod_count")
    )
    assert row["comments"] == ""  # journal fields never echo their raw value
    c.table_update("incident", sys_id, {"work_notes": "Internal"})
    assert [r["value"] for r in c.journal_list(sys_id)] == ["Public\nline 2"]
    both = c.journal_list(sys_id, elements=("comments", "work_notes"))
    # Entries of one second are ordered by sys_id, so compare without order.
    assert sorted((r["element"], r["value"]) for r in both) == [
        ("comments", "Public\nline 2"),
        ("work_notes", "Internal"),
    ]
    assert [(r["sys_created_on"], r["sys_id"]) for r in both] == sorted(
        (r["sys_created_on"], r["sys_id"]) for r in both
    )
    assert c.table_get("incident", sys_id, fields=("sys_mod_count",))["sys_mod_count"] == "2"


def test_display_names_of_users_are_looked_up_in_one_call(sandbox):
    c = client(sandbox)
    assert c.users_by_name(["beth.anglin", "zoe.angstrom", "nobody"]) == {
        "beth.anglin": "Beth Anglin",
        "zoe.angstrom": "Zoë Ångström",
    }
    assert c.calls == 1


# -- attachments ------------------------------------------------------------------------------------


def test_upload_list_metadata_and_streamed_download_round_trip(sandbox):
    c = client(sandbox)
    sys_id = c.table_create("incident", {"short_description": "Attachment test"})["sys_id"]
    parts = [bytes([i % 256]) * 65536 for i in range(20)]  # 1.3 MB sent as a chunked stream
    data = b"".join(parts)
    meta = c.attachment_upload(
        table_name="incident", table_sys_id=sys_id, file_name="Schéma réseau – 東京.bin",
        content_type="application/x-custom-thing", chunks=iter(parts),
    )  # fmt: skip
    assert meta["hash"] == hashlib.sha256(data).hexdigest()
    assert meta["size_bytes"] == str(len(data)) and meta["state"] == "pending"
    listed = c.attachment_list("incident", sys_id)
    assert [(a["file_name"], a["content_type"]) for a in listed] == [
        ("Schéma réseau – 東京.bin", "application/x-custom-thing")
    ]
    assert c.attachment_get(meta["sys_id"])["table_sys_id"] == sys_id
    chunks = list(c.attachment_download(meta["sys_id"], chunk_size=32768))
    assert b"".join(chunks) == data and max(len(x) for x in chunks) <= 32768


def test_upload_to_a_missing_incident_is_not_found(sandbox):
    with pytest.raises(TrackerNotFound):
        client(sandbox).attachment_upload(
            table_name="incident",
            table_sys_id="f" * 32,
            file_name="a.txt",
            content_type="text/plain",
            chunks=[b"x"],
        )


def test_download_of_a_missing_attachment_is_not_found(sandbox):
    with pytest.raises(TrackerNotFound):
        list(client(sandbox).attachment_download("e" * 32))


# -- errors and retries --------------------------------------------------------------------------------


def test_wrong_password_is_an_authentication_error_that_names_no_secret(sandbox):
    with pytest.raises(TrackerAuthenticationError) as caught:
        client(sandbox, password="not-the-password").table_page("incident", query="", limit=1)
    assert caught.value.status == 401 and "User Not Authenticated" in caught.value.message
    assert "not-the-password" not in str(caught.value)


def test_missing_table_rights_are_a_permission_error_with_detail(sandbox):
    make_user(sandbox, "no.journal", acl={"sys_journal_field": "deny"})
    with pytest.raises(TrackerPermissionError) as caught:
        client(sandbox, user="no.journal", password="pw-123").journal_list("a" * 32)
    assert caught.value.detail == "Insufficient rights to query records"


def test_nothing_listening_is_unreachable(sandbox):
    c = ServiceNowClient(
        f"http://127.0.0.1:{free_port()}",
        credentials=BasicCredentials(username="a", password="b"),
        retry=FAST,
        timeout=2,
    )
    with pytest.raises(TrackerUnreachable) as caught:
        c.table_page("incident", query="", limit=1)
    assert "connection refused" in caught.value.message
    assert c.calls == FAST.max_attempts


def test_429_with_retry_after_is_waited_for_then_retried(sandbox):
    c = client(sandbox)
    fault(sandbox, status=429, retry_after=1, count=1)
    started = time.monotonic()
    assert c.table_page("incident", query="", fields=("sys_id",), limit=1).rows
    assert time.monotonic() - started >= 1.0
    assert c.calls == 2


def test_429_with_only_x_ratelimit_reset_waits_until_the_reset(sandbox):
    c = client(sandbox)
    fault(sandbox, status=429, rate_limit_reset=1, count=1)
    started = time.monotonic()
    c.table_page("incident", query="", fields=("sys_id",), limit=1)
    assert time.monotonic() - started >= 0.5 and c.calls == 2


def test_a_429_storm_without_headers_backs_off_then_gives_up_as_transient(sandbox):
    c = client(sandbox)
    stats(sandbox, reset=True)
    fault(sandbox, status=429)
    with pytest.raises(TransientTrackerError) as caught:
        c.table_page("incident", query="", limit=1)
    assert caught.value.status == 429 and "Rate limit exceeded" in caught.value.message
    assert stats(sandbox)["GET /api/now/table/incident"] == FAST.max_attempts


def test_a_429_storm_that_passes_is_survived(sandbox):
    c = client(
        sandbox,
        retry=RetryPolicy(max_attempts=6, max_total_seconds=10, base_delay=0.01, max_delay=0.05),
    )
    fault(sandbox, status=429, count=4)
    assert c.table_page("incident", query="", fields=("sys_id",), limit=1).rows
    assert c.calls == 5


def test_retry_after_beyond_the_budget_is_raised_at_once_with_its_wait(sandbox):
    c = client(sandbox, retry=RetryPolicy(max_attempts=5, max_total_seconds=2))
    fault(sandbox, status=429, retry_after=30)
    started = time.monotonic()
    with pytest.raises(TransientTrackerError) as caught:
        c.table_page("incident", query="", limit=1)
    assert time.monotonic() - started < 1.5 and caught.value.retry_after == pytest.approx(30, abs=1)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried(sandbox, status):
    c = client(sandbox)
    fault(sandbox, status=status, count=2)
    assert c.table_page("incident", query="", fields=("sys_id",), limit=1).rows
    assert c.calls == 3


def test_a_hibernating_instance_page_is_transient(sandbox):
    c = client(sandbox)
    fault(sandbox, html=True)
    with pytest.raises(errors.NonJSONAnswer) as caught:
        c.table_page("incident", query="", limit=1)
    assert caught.value.hibernating and "hibernating" in caught.value.message
    fault(sandbox, html=True, count=1)
    assert client(sandbox).table_page("incident", query="", fields=("sys_id",), limit=1).rows


def test_a_request_queued_with_202_is_retried(sandbox):
    c = client(sandbox)
    fault(sandbox, status=202, count=1)
    assert c.table_page("incident", query="", fields=("sys_id",), limit=1).rows and c.calls == 2


def test_a_hanging_read_times_out_and_is_retried(sandbox):
    c = client(sandbox, timeout=0.5)
    fault(sandbox, hang=True, count=1, hang_seconds=5)
    started = time.monotonic()
    assert c.table_page("incident", query="", fields=("sys_id",), limit=1).rows
    assert 0.5 <= time.monotonic() - started < 4 and c.calls == 2


def test_a_write_that_timed_out_is_not_repeated(sandbox):
    c = client(sandbox, timeout=0.5)
    sys_id = c.table_create("incident", {"short_description": "No double comments"})["sys_id"]
    stats(sandbox, reset=True)
    fault(sandbox, hang=True, count=1, hang_seconds=5, methods="PATCH")
    with pytest.raises(TrackerUnreachable):
        c.table_update("incident", sys_id, {"comments": "only once"})
    assert stats(sandbox)["PATCH /api/now/table/incident/{sys_id}"] == 1


def test_a_write_refused_with_429_is_retried(sandbox):
    c = client(sandbox)
    sys_id = c.table_create("incident", {"short_description": "Retry on 429"})["sys_id"]
    fault(sandbox, status=429, count=1, methods="PATCH")
    c.table_update("incident", sys_id, {"comments": "after the 429"})
    assert [r["value"] for r in c.journal_list(sys_id)] == ["after the 429"]


def test_json_without_the_result_envelope_is_not_a_servicenow_answer(sandbox):
    c = client(sandbox)
    fault(sandbox, status=200, count=1)  # a 2xx fault answers {"result": []}: the envelope is fine
    assert c.table_page("incident", query="", limit=1).rows == []
    with pytest.raises(NotATrackerInstance):
        errors.result_of({"data": []}, requests.Response(), "GET /x")


def test_no_session_cookie_is_kept(sandbox):
    c = client(sandbox)
    c.table_page("incident", query="", limit=1)
    assert len(c.session.cookies) == 0


# -- OAuth ----------------------------------------------------------------------------------------------


def test_oauth_gets_a_token_once_and_sends_it_as_bearer(sandbox):
    stats(sandbox, reset=True)
    c = oauth_client(sandbox)
    c.table_page("incident", query="", limit=1)
    c.table_page("incident", query="", limit=1)
    counted = stats(sandbox)
    assert counted["POST /oauth_token.do"] <= 1 and counted["GET /api/now/table/incident"] == 2


def test_an_expired_token_is_refreshed_once_and_the_request_retried(sandbox):
    c = oauth_client(sandbox)
    c.table_page("incident", query="", limit=1)
    requests.post(f"{sandbox.url}/sandbox/tokens/expire", json={"kind": "access"}, timeout=5)
    stats(sandbox, reset=True)
    assert c.table_page("incident", query="", fields=("sys_id",), limit=1).rows
    counted = stats(sandbox)
    assert counted["POST /oauth_token.do"] == 1 and counted["GET /api/now/table/incident"] == 2


def test_an_expired_refresh_token_falls_back_to_the_password_grant(sandbox):
    c = oauth_client(sandbox)
    c.table_page("incident", query="", limit=1)
    requests.post(f"{sandbox.url}/sandbox/tokens/expire", json={"kind": "all"}, timeout=5)
    stats(sandbox, reset=True)
    assert c.table_page("incident", query="", fields=("sys_id",), limit=1).rows
    assert stats(sandbox)["POST /oauth_token.do"] == 2  # refused refresh, then password grant


def test_a_401_after_the_refresh_is_an_authentication_error(sandbox):
    c = oauth_client(sandbox)
    c.table_page("incident", query="", limit=1)
    fault(sandbox, status=401, paths="/api/now")
    with pytest.raises(TrackerAuthenticationError):
        c.table_page("incident", query="", limit=1)


def test_a_wrong_client_secret_is_an_authentication_error_without_the_secret(sandbox):
    c = oauth_client(sandbox, secret="wrong-secret-value")
    with pytest.raises(TrackerAuthenticationError) as caught:
        c.table_page("incident", query="", limit=1)
    assert "client id, client secret" in caught.value.message
    assert "wrong-secret-value" not in str(caught.value)
