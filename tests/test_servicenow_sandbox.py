"""The ServiceNow sandbox answers like an instance: shapes, headers, quirks, persistence, controls."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests

from servicenow_adapter.sandbox.seed import pdf_bytes, png_bytes
from tests.live import LiveSandbox

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).parent / "fixtures" / "servicenow"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    sb = LiveSandbox(
        tmp_path_factory.mktemp("sn-sandbox"),
        seed="demo",
        extra_args=["--display-tz", "America/Los_Angeles"],
    ).start()
    yield sb
    sb.stop()


@pytest.fixture
def api(sandbox):
    s = sandbox.session()
    s.base = sandbox.url  # type: ignore[attr-defined]
    return s


def get(api, path: str, **params) -> requests.Response:
    return api.get(api.base + path, params=params, timeout=10)


def incident(api, number: str = "INC0010001", **params) -> dict:
    r = get(api, "/api/now/table/incident", sysparm_query=f"number={number}", **params)
    return r.json()["result"][0]


def test_a_record_has_the_recorded_shape(api):
    recorded = json.loads((FIXTURES / "incident_get_by_sys_id_servicenowdocs.json").read_text())[
        "result"
    ]
    row = incident(api)
    shared = set(recorded) & set(row)
    assert {
        "number",
        "sys_id",
        "short_description",
        "state",
        "caller_id",
        "sys_mod_count",
        "sys_updated_on",
    } <= shared
    for name in shared:
        assert (
            isinstance(row[name], type(recorded[name])) or recorded[name] == "" or row[name] == ""
        ), name
    assert set(row["caller_id"]) == {"link", "value"} and row["caller_id"]["link"].endswith(
        row["caller_id"]["value"]
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row["sys_created_on"])
    assert re.fullmatch(r"[0-9a-f]{32}", row["sys_id"])
    assert row["comments"] == "" and row["work_notes"] == ""


def test_display_values_show_labels_names_local_times_and_the_journal(api):
    raw = incident(api, sysparm_fields="state,caller_id,sys_updated_on,priority")
    shown = incident(
        api,
        sysparm_display_value="true",
        sysparm_fields="state,caller_id,sys_updated_on,priority,comments",
    )
    both = incident(
        api,
        sysparm_display_value="all",
        sysparm_fields="state,caller_id",
        sysparm_exclude_reference_link="true",
    )
    assert shown["state"] == "In Progress" and shown["priority"] == "3 - Moderate"
    assert (
        set(shown["caller_id"]) == {"display_value", "link"}
        and shown["caller_id"]["display_value"] == "Joe Employee"
    )
    assert shown["sys_updated_on"] != raw["sys_updated_on"]  # shifted to America/Los_Angeles
    assert shown["comments"].startswith(
        shown["comments"][:19] + " - Beth Anglin (Additional comments)\nPlease try"
    )
    assert both == {"state": {"display_value": "In Progress", "value": "2"},
                    "caller_id": {"display_value": "Joe Employee", "value": raw["caller_id"]["value"]}}  # fmt: skip


def test_excluded_reference_links_are_bare_sys_ids(api):
    row = incident(
        api,
        sysparm_exclude_reference_link="true",
        sysparm_fields="caller_id,caller_id.name,invalid_field",
    )
    assert (
        re.fullmatch(r"[0-9a-f]{32}", row["caller_id"]) and row["caller_id.name"] == "Joe Employee"
    )
    assert "invalid_field" not in row


def test_lists_carry_total_count_and_link_headers_with_the_recorded_prev_quirk(api):
    r = get(api, "/api/now/table/incident", sysparm_limit="5", sysparm_query="ORDERBYnumber")
    assert int(r.headers["X-Total-Count"]) >= 36
    links = dict((rel, url) for url, rel in re.findall(r'<([^>]+)>;rel="(\w+)"', r.headers["Link"]))
    assert "sysparm_offset=-5" in links["prev"] and "sysparm_offset=5" in links["next"]
    assert r.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert r.headers["Server"] == "ServiceNow"


def test_v1_answers_404_for_an_empty_result_and_v2_an_empty_list(api):
    assert get(api, "/api/now/v1/table/incident", sysparm_query="number=NOPE").status_code == 404
    r = get(api, "/api/now/v2/table/incident", sysparm_query="number=NOPE")
    assert r.status_code == 200 and r.json() == {"result": []}


def test_errors_use_the_instance_envelope(api, sandbox):
    r = requests.get(f"{sandbox.url}/api/now/table/incident", auth=("admin", "wrong"), timeout=5)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Basic realm="Service-now"'
    assert r.json() == {
        "error": {
            "message": "User Not Authenticated",
            "detail": "Required to provide Auth information",
        },
        "status": "failure",
    }
    assert get(api, "/api/now/table/foo").json()["error"] == {
        "message": "Invalid table foo",
        "detail": None,
    }
    assert (
        get(api, "/api/now/nothing/here").json()["error"]["message"]
        == "Requested URI does not represent any resource"
    )
    assert (
        get(api, "/api/now/table/incident/" + "0" * 32).json()["error"]["message"]
        == "No Record found"
    )


def test_new_records_get_numbers_after_the_seed_and_201_with_location(api):
    r = api.post(
        api.base + "/api/now/table/incident", json={"short_description": "x" * 200}, timeout=5
    )
    assert r.status_code == 201 and r.headers["Location"].endswith(r.json()["result"]["sys_id"])
    body = r.json()["result"]
    assert int(body["number"][3:]) > 10036 and len(body["short_description"]) == 160
    assert body["priority"] == "5" and body["sys_created_by"] == "admin"


def test_every_write_bumps_mod_count_and_is_stamped_with_the_caller(api, sandbox):
    row = incident(api, "INC0010002")
    beth = requests.Session()
    beth.auth = ("beth.anglin", "beth")
    r = beth.patch(
        f"{sandbox.url}/api/now/table/incident/{row['sys_id']}",
        json={"comments": "Hej från Beth"},
        timeout=5,
    )
    after = r.json()["result"]
    assert int(after["sys_mod_count"]) == int(row["sys_mod_count"]) + 1
    assert (
        after["sys_updated_by"] == "beth.anglin"
        and after["sys_updated_on"] >= row["sys_updated_on"]
    )
    journal = get(api, "/api/now/table/sys_journal_field",
                  sysparm_query=f"element_id={row['sys_id']}^ORDERBYDESCsys_created_on").json()["result"]  # fmt: skip
    assert journal[0]["value"] == "Hej från Beth" and journal[0]["sys_created_by"] == "beth.anglin"


def test_seed_has_realistic_variety(api):
    incidents = get(
        api, "/api/now/table/incident", sysparm_query="numberSTARTSWITHINC00100"
    ).json()["result"]
    assert len(incidents) >= 36
    assert any("\n" in i["description"] for i in incidents)
    assert any(re.search(r"[^\x00-\x7f]", i["short_description"]) for i in incidents)
    notes = get(api, "/api/now/table/sys_journal_field", sysparm_query="element=work_notes").json()[
        "result"
    ]
    comments = get(
        api, "/api/now/table/sys_journal_field", sysparm_query="element=comments"
    ).json()["result"]
    assert (
        notes
        and any("[code]" in c["value"] for c in comments)
        and any("<p>" in c["value"] for c in comments)
    )
    files = get(api, "/api/now/attachment").json()["result"]
    types = {f["content_type"] for f in files}
    assert {"image/png", "application/pdf", "text/plain"} <= types
    assert any(re.search(r"[^\x00-\x7f]", f["file_name"]) for f in files)


def test_generated_files_are_valid(tmp_path):
    png = png_bytes(seed=3)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    pdf = pdf_bytes("Report", ["line (1)"])
    assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF") and b"startxref" in pdf


def test_multipart_upload_and_download_headers(api):
    sys_id = incident(api, "INC0010003")["sys_id"]
    r = api.post(api.base + "/api/now/attachment/upload", data={"table_name": "incident", "table_sys_id": sys_id},
                 files={"file": ("bericht – ü.txt", "Grüße\n".encode(), "text/plain")}, timeout=5)  # fmt: skip
    assert r.status_code == 201
    meta = r.json()["result"]
    download = get(api, f"/api/now/attachment/{meta['sys_id']}/file")
    assert (
        download.content == "Grüße\n".encode() and download.headers["Content-Type"] == "text/plain"
    )
    assert (
        "filename*=UTF-8''bericht%20%E2%80%93%20%C3%BC.txt"
        in download.headers["Content-Disposition"]
    )
    assert json.loads(download.headers["X-Attachment-Metadata"])["sys_id"] == meta["sys_id"]


def test_raw_upload_needs_a_content_type_and_its_parameters(api):
    sys_id = incident(api, "INC0010003")["sys_id"]
    r = api.post(api.base + "/api/now/attachment/file", params={"table_name": "incident", "table_sys_id": sys_id},
                 data=b"x", headers={"Content-Type": "text/plain"}, timeout=5)  # fmt: skip
    assert r.status_code == 400 and "file_name" in r.json()["error"]["detail"]


def test_oauth_token_endpoint_grants_and_refuses(sandbox):
    url = f"{sandbox.url}/oauth_token.do"
    form = {
        "client_id": "exalate-sandbox",
        "client_secret": "exalate-sandbox-secret",
        "username": "admin",
        "password": "admin",
    }
    token = requests.post(url, data={**form, "grant_type": "password"}, timeout=5).json()
    assert (
        token["token_type"] == "Bearer"
        and token["scope"] == "useraccount"
        and token["refresh_token"]
    )
    refreshed = requests.post(
        url,
        data={**form, "grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
        timeout=5,
    ).json()
    assert refreshed["access_token"] and "refresh_token" not in refreshed
    bad = requests.post(
        url, data={**form, "client_secret": "nope", "grant_type": "password"}, timeout=5
    )
    assert bad.status_code == 401 and bad.json() == {
        "error_description": "access_denied",
        "error": "server_error",
    }
    r = requests.get(f"{sandbox.url}/api/now/table/incident?sysparm_limit=1",
                     headers={"Authorization": f"Bearer {refreshed['access_token']}"}, timeout=5)  # fmt: skip
    assert r.status_code == 200


def test_faults_follow_count_and_path_filters(sandbox, api):
    try:
        requests.post(
            f"{sandbox.url}/sandbox/faults",
            json={"status": 418, "count": 2, "paths": "/api/now/attachment"},
            timeout=5,
        )
        assert get(api, "/api/now/table/incident", sysparm_limit="1").status_code == 200
        assert [get(api, "/api/now/attachment").status_code for _ in range(3)] == [418, 418, 200]
        r = requests.post(f"{sandbox.url}/sandbox/faults", json={"bogus": 1}, timeout=5)
        assert r.status_code == 400 and "bogus" in r.json()["error"]["detail"]
    finally:
        requests.delete(f"{sandbox.url}/sandbox/faults", timeout=5)


def test_a_password_changed_at_run_time_applies_at_once(sandbox):
    requests.post(
        f"{sandbox.url}/sandbox/users",
        json={"user_name": "rotating", "password": "one-1"},
        timeout=5,
    )
    assert requests.get(
        f"{sandbox.url}/api/now/table/incident?sysparm_limit=1",
        auth=("rotating", "one-1"),
        timeout=5,
    ).ok
    requests.post(
        f"{sandbox.url}/sandbox/users",
        json={"user_name": "rotating", "password": "two-2"},
        timeout=5,
    )
    assert (
        requests.get(
            f"{sandbox.url}/api/now/table/incident?sysparm_limit=1",
            auth=("rotating", "one-1"),
            timeout=5,
        ).status_code
        == 401
    )


def test_data_survives_a_restart_and_seeding_twice_adds_nothing(tmp_path):
    sb = LiveSandbox(tmp_path, seed="demo").start()
    try:
        s = sb.session()
        created = s.post(
            f"{sb.url}/api/now/table/incident", json={"short_description": "Keep me"}, timeout=5
        ).json()["result"]
        total = int(
            s.get(f"{sb.url}/api/now/table/incident?sysparm_limit=1", timeout=5).headers[
                "X-Total-Count"
            ]
        )
        sb.stop()
        sb.start()
        s = sb.session()
        again = s.get(f"{sb.url}/api/now/table/incident/{created['sys_id']}", timeout=5).json()[
            "result"
        ]
        assert again["short_description"] == "Keep me" and again["number"] == created["number"]
        assert (
            int(
                s.get(f"{sb.url}/api/now/table/incident?sysparm_limit=1", timeout=5).headers[
                    "X-Total-Count"
                ]
            )
            == total
        )
        following = s.post(
            f"{sb.url}/api/now/table/incident", json={"short_description": "Next"}, timeout=5
        ).json()["result"]
        assert int(following["number"][3:]) == int(created["number"][3:]) + 1
    finally:
        sb.stop()


@pytest.mark.browser
def test_the_entity_link_opens_the_right_record_in_a_browser(sandbox, page):
    from playwright.sync_api import expect

    from servicenow_adapter.mapping import entity_url

    session = sandbox.session()
    row = session.get(
        f"{sandbox.url}/api/now/table/incident?sysparm_query=number=INC0010001", timeout=5
    ).json()["result"][0]
    page.goto(entity_url(sandbox.url, row["sys_id"]))
    expect(page.locator("#number")).to_have_text("INC0010001")
    expect(page.locator("#short_description")).to_have_text(row["short_description"])
    expect(page.locator("#comments li")).to_have_count(3)
    expect(page.locator("#attachments")).to_contain_text("outlook-error.png")


def test_concurrent_writers_lose_no_update(api, sandbox):
    from concurrent.futures import ThreadPoolExecutor

    created = api.post(
        api.base + "/api/now/table/incident", json={"short_description": "Busy"}, timeout=5
    ).json()["result"]

    def comment(i: int) -> int:
        s = sandbox.session()
        return s.patch(
            f"{sandbox.url}/api/now/table/incident/{created['sys_id']}",
            json={"comments": f"c{i}"},
            timeout=10,
        ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(comment, range(24))) == {200}
    row = get(
        api, f"/api/now/table/incident/{created['sys_id']}", sysparm_fields="sys_mod_count"
    ).json()["result"]
    journal = get(
        api, "/api/now/table/sys_journal_field", sysparm_query=f"element_id={created['sys_id']}"
    )
    assert row["sys_mod_count"] == "24" and journal.headers["X-Total-Count"] == "24"


def test_home_page_lists_incidents_and_the_record_form_adds_a_comment_as_an_agent(api, sandbox):
    home = requests.get(f"{sandbox.url}/", timeout=10)
    assert home.status_code == 200 and "INC0010001" in home.text
    row = incident(api, "INC0010003")
    before = int(row["sys_mod_count"])
    posted = requests.post(
        f"{sandbox.url}/incident.do?sys_id={row['sys_id']}",
        data={"user_name": "beth.anglin", "comment": "Posted <b>from</b> the form"},
        allow_redirects=False,
        timeout=10,
    )
    assert posted.status_code == 303
    after = incident(api, "INC0010003")
    assert int(after["sys_mod_count"]) == before + 1 and after["sys_updated_by"] == "beth.anglin"
    page = requests.get(f"{sandbox.url}/incident.do?sys_id={row['sys_id']}", timeout=10).text
    assert "Posted &lt;b&gt;from&lt;/b&gt; the form" in page
    refused = requests.post(
        f"{sandbox.url}/incident.do?sys_id={row['sys_id']}",
        data={"user_name": "nobody", "comment": "x"},
        timeout=10,
    )
    assert refused.status_code == 400
