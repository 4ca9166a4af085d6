"""The Jira sandbox answers like a Jira site, Cloud (v3, ADF) and Data Center (v2, wiki), quirks included."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.live import _Process, free_port, wait_for

pytestmark = pytest.mark.integration
BOT = ("sync-bot@example.com", "sandbox-token")
DANA = ("dana.ops@example.com", "dana-token")
LEE = ("lee.viewer@example.com", "lee-token")
XSRF = {"X-Atlassian-Token": "no-check"}


class Site(requests.Session):
    """A session whose paths starting with ``/`` are under the site's REST API (5 s timeout)."""

    def __init__(self, base: str):
        super().__init__()
        self.base = base

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("timeout", 5)
        return super().request(
            method, self.base + url if url.startswith("/") else url, *args, **kwargs
        )


class LiveJiraSandbox(_Process):
    """``python -m jira_adapter.sandbox`` on a free port and its own SQLite file."""

    name = "jira-sandbox"

    def __init__(self, workdir, *, flavour: str = "cloud", extra_args: list[str] | None = None):
        super().__init__(workdir)
        self.flavour, self.port = flavour, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api = self.url + ("/rest/api/3" if flavour == "cloud" else "/rest/api/2")
        self.args = [sys.executable, "-m", "jira_adapter.sandbox", "--port", str(self.port), "--seed", "demo",
                     "--flavour", flavour, "--db", str(workdir / "jira.sqlite3"), *(extra_args or [])]  # fmt: skip

    def start(self) -> LiveJiraSandbox:
        self._spawn(self.args, os.environ.copy())
        wait_for(lambda: requests.get(f"{self.api}/serverInfo", timeout=2).ok, timeout=30,
                 what=f"jira sandbox on {self.url}", proc=self.proc, log=self.log_path)  # fmt: skip
        return self

    def session(self, who=BOT) -> Site:
        s = Site(self.api)
        if self.flavour == "cloud":
            s.auth = who
        else:
            s.headers["Authorization"] = f"Bearer {who[1]}"
        return s

    def control(self, path: str, body=None):
        r = requests.post(f"{self.url}/sandbox/{path}", json=body, timeout=5)
        assert r.ok, r.text
        return r.json()


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    sb = LiveJiraSandbox(tmp_path_factory.mktemp("jira-cloud")).start()
    yield sb
    sb.stop()


@pytest.fixture(scope="module")
def dc(tmp_path_factory):
    sb = LiveJiraSandbox(
        tmp_path_factory.mktemp("jira-dc"), flavour="dc", extra_args=["--upload-limit", "2048"]
    )
    yield sb.start()
    sb.stop()


@pytest.fixture
def api(cloud):
    yield cloud.session()
    requests.delete(f"{cloud.url}/sandbox/faults", timeout=5)


def text(value: str, *marks: str) -> dict:
    node = {"type": "text", "text": value}
    return node | {"marks": [{"type": m} for m in marks]} if marks else node


def adf(*blocks) -> dict:
    """A document; a string block is a paragraph holding that text."""
    content = [
        {"type": "paragraph", "content": [text(b)]} if isinstance(b, str) else b for b in blocks
    ]
    return {"type": "doc", "version": 1, "content": content}


def fields(project="TEST", kind="Task", summary="From the tests", **more) -> dict:
    """A create body."""
    base = {"project": {"key": project}, "issuetype": {"name": kind}, "summary": summary}
    return {"fields": base | more}


def create(api, project="TEST", summary="From the tests", **more) -> dict:
    r = api.post("/issue", json=fields(project, more.pop("type", "Task"), summary, **more))
    assert r.status_code == 201, r.text
    return r.json()


def search(api, jql: str, **extra) -> list[dict]:
    r = api.post("/search/jql", json={"jql": jql, **extra})
    assert r.status_code == 200, r.text
    return r.json()["issues"]


def errors(r) -> dict:
    """The field errors of a 400 envelope."""
    assert r.status_code == 400, r.text
    return r.json()["errors"]


# -- identity, projects, metadata ----------------------------------------------------------
def test_myself_and_the_401_that_is_not_the_envelope(cloud, dc, api):
    me = api.get("/myself").json()
    assert me["accountId"] and me["timeZone"] == "America/Los_Angeles" and "name" not in me
    bad = requests.get(f"{cloud.api}/myself", auth=(BOT[0], "wrong"), timeout=5)
    assert bad.status_code == 401 and bad.headers["X-Seraph-LoginReason"]
    assert "errorMessages" not in bad.json()
    dc_me = dc.session().get("/myself").json()
    assert dc_me["name"] == "sync-bot" and dc_me["key"].startswith("JIRAUSER")
    assert "accountId" not in dc_me
    assert requests.get(f"{dc.api}/myself", auth=BOT, timeout=5).status_code == 401  # PAT only
    assert dc.session().get(f"{dc.url}/rest/api/3/myself").status_code == 404  # no v3 on DC


def test_projects_issue_types_and_create_metadata(cloud, dc, api):
    page = api.get("/project/search", params={"maxResults": 2}).json()
    assert page["total"] == 3 and not page["isLast"]
    assert [p["key"] for p in page["values"]] == ["OPS", "SUP"]
    lee = cloud.session(LEE).get("/project/search", params={"action": "create"})
    assert lee.json()["values"] == []

    def types(key):
        found = api.get(f"/issue/createmeta/{key}/issuetypes").json()["issueTypes"]
        return {t["name"]: t for t in found}

    test, ops, sup = types("TEST"), types("OPS"), types("SUP")
    assert "Incident" not in test and "Incident" in ops and "Task" not in sup and "Request" in sup
    assert test["Task"]["id"] != ops["Task"]["id"]  # same name, another id per project
    meta = api.get(f"/issue/createmeta/TEST/issuetypes/{test['Task']['id']}").json()
    assert {f["fieldId"]: f["required"] for f in meta["fields"]}["summary"] is True
    too_many = api.get("/issue/createmeta/TEST/issuetypes", params={"maxResults": 201})
    assert too_many.status_code == 400
    assert [p["key"] for p in dc.session().get("/project").json()] == ["OPS", "SUP", "TEST"]
    assert api.get("/serverInfo").json()["deploymentType"] == "Cloud"
    assert api.get(f"{cloud.url}/rest/api/2/serverInfo").json()["deploymentType"] == "Cloud"
    assert requests.get(f"{dc.api}/serverInfo", timeout=5).json()["deploymentType"] == "Server"


# -- issues -----------------------------------------------------------------------------------
def test_create_answers_201_with_a_numeric_string_id_and_a_project_key(api):
    first, second = create(api), create(api, project="OPS", type="Incident")
    assert first["id"].isdigit() and first["self"].endswith(first["id"])
    assert first["key"].startswith("TEST-") and second["key"].startswith("OPS-")
    issue = api.get(f"/issue/{first['key'].lower()}", params={"fields": "summary,issuetype"})
    assert issue.json()["id"] == first["id"]
    assert set(issue.json()["fields"]) == {"summary", "issuetype"}


@pytest.mark.parametrize(
    ("more", "field", "message"),
    [
        ({"summary": "two\nlines"}, "summary", "The summary is invalid because it contains newline characters."),
        ({"summary": "x" * 256}, "summary", "Summary must be less than 255 characters."),
        ({"summary": ""}, "summary", "You must specify a summary of the issue."),
        ({"description": "plain"}, "description", "Operation value must be an Atlassian Document"),
        ({"description": {"content": []}}, "description",
         "The field value is not valid Atlassian Document Format (ADF) content."),
        ({"description": adf("y" * 33000)}, "description",
         "The entered text is too long. It exceeds the allowed limit of 32,767 characters."),
        ({"customfield_10031": "x"}, "customfield_10031",
         "Field 'customfield_10031' cannot be set. It is not on the appropriate screen, or unknown."),
    ],
)  # fmt: skip
def test_create_refuses_bad_fields_by_name(api, more, field, message):
    r = api.post("/issue", json=fields(**{"summary": "ok", **more}))
    assert r.status_code == 400 and r.json() == {"errorMessages": [], "errors": {field: message}}


@pytest.mark.parametrize(
    "description",
    [
        adf({"type": "paragraph", "content": [text("")]}),  # empty text
        adf({"type": "paragraph", "content": [text("x", "code", "strong")]}),  # code with strong
        adf({"type": "bulletList", "content": [{"type": "listItem", "content": [{"type": "bulletList"}]}]}),
        adf({"type": "heading", "attrs": {"level": 7}, "content": [text("h")]}),
        adf({"type": "mystery"}),
        {"type": "doc", "content": []},  # no version
    ],
)  # fmt: skip
def test_malformed_adf_is_the_bare_invalid_input(api, description):
    r = api.post("/issue", json=fields(description=description))
    assert r.status_code == 400 and r.json() == {"errorMessages": ["INVALID_INPUT"], "errors": {}}


def test_type_ids_and_rights_are_per_project(cloud, api):
    ops_types = api.get("/issue/createmeta/OPS/issuetypes").json()["issueTypes"]
    ops_task = next(t for t in ops_types if t["name"] == "Task")
    body = fields() | {"fields": fields()["fields"] | {"issuetype": {"id": ops_task["id"]}}}
    assert errors(api.post("/issue", json=body)) == {
        "issuetype": "The issue type selected is invalid."
    }
    by_name = errors(api.post("/issue", json=fields(kind="Incident")))
    assert by_name == {"issuetype": "valid issue type is required"}
    lee = cloud.session(LEE)
    assert errors(lee.post("/issue", json=fields())) == {"project": "valid project is required"}
    hidden = lee.get("/issue/OPS-1")
    assert hidden.status_code == 404
    assert hidden.json()["errorMessages"] == [
        "Issue does not exist or you do not have permission to see it."
    ]


def test_edit_is_204_and_rendered_fields_are_html(api):
    made = create(api, description=adf("before"))
    bold = adf({"type": "paragraph", "content": [text("after", "strong")]})
    r = api.put(f"/issue/{made['id']}", json={"fields": {"description": bold}})
    assert r.status_code == 204 and r.content == b""
    rename = {"update": {"summary": [{"set": "Renamed"}]}}
    r = api.put(f"/issue/{made['id']}?returnIssue=true", json=rename)
    assert r.status_code == 200 and r.json()["fields"]["summary"] == "Renamed"
    issue = api.get(f"/issue/{made['id']}", params={"expand": "renderedFields,changelog"}).json()
    assert issue["renderedFields"]["description"] == "<p><b>after</b></p>"
    assert issue["renderedFields"]["updated"] == "Just now"
    assert issue["fields"]["updated"][-5] in "+-" and "." in issue["fields"]["updated"]
    changed = {i["field"] for h in issue["changelog"]["histories"] for i in h["items"]}
    assert changed == {"description", "summary"}


def test_data_center_takes_wiki_strings_and_renders_them(dc):
    s = dc.session()
    refused = errors(s.post("/issue", json=fields(description=adf("adf"))))
    assert refused == {"description": "Operation value must be a string"}
    wiki = "*bold* and [a link|https://example.com]"
    made = s.post("/issue", json=fields(description=wiki)).json()
    issue = s.get(f"/issue/{made['key']}", params={"expand": "renderedFields"}).json()
    assert issue["fields"]["description"] == wiki
    html = issue["renderedFields"]["description"]
    assert html.startswith('<p><b>bold</b> and <a href="https://example.com"')
    bad = s.post(f"/issue/{made['id']}/comment", json={"body": adf("x")})
    assert bad.status_code == 400 and "START_OBJECT" in bad.json()["errorMessages"][0]
    params = {"jql": "project = TEST", "startAt": 1, "maxResults": 1}
    page = s.get("/search", params=params).json()
    assert page["startAt"] == 1 and page["total"] >= 3 and len(page["issues"]) == 1


def test_entity_properties_and_the_jql_that_finds_them(cloud, api):
    made = create(api)
    url = f"/issue/{made['id']}/properties/snow.sync"
    assert api.put(url, json={"sysId": "abc123", "hash": "h1"}).status_code == 201
    assert api.put(url, json={"sysId": "abc123", "hash": "h2"}).status_code == 200
    value = {"sysId": "abc123", "hash": "h2"}
    assert api.get(url).json() == {"key": "snow.sync", "value": value}
    assert api.get(url + "x").status_code == 404
    jql = 'project = TEST AND issue.property[snow.sync].sysId = "abc123"'
    assert search(api, jql) == []  # not indexed yet
    time.sleep(1.1)
    assert search(api, jql) == [{"id": made["id"]}]
    found = search(api, jql, fields=["summary"], properties=["snow.sync"])[0]
    assert found["properties"] == {"snow.sync": value} and "summary" in found["fields"]
    cloud.control("settings", {"indexed_properties": []})  # no app declares the property
    try:
        assert search(api, jql) == []
    finally:
        cloud.control("settings", {"indexed_properties": ["*"]})


def test_a_move_changes_the_key_and_the_old_key_still_resolves(cloud, api):
    made = create(api, type="Bug")
    moved = cloud.control("move", {"issue": made["id"], "project": "SUP"})
    assert moved["key"].startswith("SUP-") and moved["old_keys"] == [made["key"]]
    r = api.get(f"/issue/{made['key']}", params={"expand": "changelog"}, allow_redirects=False)
    issue = r.json()
    assert r.status_code == 200 and issue["id"] == made["id"] and issue["key"] == moved["key"]
    assert issue["fields"]["issuetype"]["name"] == "Request"  # SUP has no Bug: its first type
    item = issue["changelog"]["histories"][0]["items"][0]
    assert (item["field"], item["fromString"], item["toString"]) == (
        "Key",
        made["key"],
        moved["key"],
    )


def test_the_site_survives_a_restart(tmp_path):
    sb = LiveJiraSandbox(tmp_path, flavour="dc").start()
    try:
        made = sb.session().post("/issue", json=fields("SUP", "Question", "kept")).json()
    finally:
        sb.stop()
    sb.start()
    try:
        assert sb.session().get(f"/issue/{made['id']}").json()["fields"]["summary"] == "kept"
        page = sb.session().get("/search", params={"jql": "project = TEST"}).json()
        assert len(page["issues"]) == 2
    finally:
        sb.stop()


# -- comments ---------------------------------------------------------------------------------
def test_comments_are_paged_and_the_embedded_list_is_truncated(api):
    embedded = api.get("/issue/TEST-2", params={"fields": "comment"}).json()["fields"]["comment"]
    assert embedded["total"] == 25 and len(embedded["comments"]) == 20
    page = api.get("/issue/TEST-2/comment", params={"startAt": 20, "maxResults": 10}).json()
    assert (page["startAt"], page["total"], len(page["comments"])) == (20, 25, 5)
    params = {"orderBy": "-created", "maxResults": 1}
    newest = api.get("/issue/TEST-2/comment", params=params).json()["comments"][0]
    assert newest["body"] == adf("Review note 25 of 25.")
    assert api.get("/issue/TEST-2/comment", params={"orderBy": "updated"}).status_code == 400


def test_comment_bodies_are_checked_like_a_site_does(api):
    url = f"/issue/{create(api)['id']}/comment"
    r = api.post(url, json={"body": "plain"})
    assert r.json() == {"errorMessages": [], "errors": {"comment": "Comment body is not valid!"}}
    r = api.post(url, json={"body": adf({"type": "nope"})})
    assert r.json() == {"errorMessages": ["INVALID_INPUT"], "errors": {}}
    long = errors(api.post(url, json={"body": adf("z" * 32800)}))
    assert long["comment"].startswith("The entered text is too long")
    internal = [{"key": "sd.public.comment", "value": {"internal": True}}]
    r = api.post(url + "?expand=renderedBody", json={"body": adf("hi"), "properties": internal})
    assert r.status_code == 201 and r.json()["author"]["accountId"] and r.json()["id"].isdigit()
    assert r.json()["jsdPublic"] is False and r.json()["renderedBody"] == "<p>hi</p>"
    prop = api.get(f"/comment/{r.json()['id']}/properties/sd.public.comment").json()
    assert prop["value"] == {"internal": True}


def test_only_the_author_may_edit_or_delete_a_comment(cloud, api):
    url = "/issue/TEST-1/comment"
    mine = api.post(url, json={"body": adf("mine")}).json()
    edited = api.put(f"{url}/{mine['id']}", json={"body": adf("edited")})
    assert edited.status_code == 200 and edited.json()["body"] == adf("edited")
    lee = cloud.session(LEE)
    refused = lee.delete(f"{url}/{mine['id']}")
    assert refused.status_code == 400
    assert refused.json()["errorMessages"] == [
        "You do not have the permission to delete this comment."
    ]
    assert lee.put(f"{url}/{mine['id']}", json={"body": adf("x")}).status_code == 400
    assert api.delete(f"{url}/{mine['id']}").status_code == 204
    assert api.get(f"{url}/{mine['id']}").status_code == 404


def test_a_restricted_comment_is_silently_left_out(cloud, api):
    bot = api.get("/issue/TEST-1/comment").json()
    dana = cloud.session(DANA).get("/issue/TEST-1/comment").json()
    assert dana["total"] == bot["total"] + 1
    restricted = [c["visibility"] for c in dana["comments"] if c.get("visibility")]
    assert restricted[0]["value"] == "Developers"


def test_service_management_comments_are_strings_and_set_jsd_public(cloud, api):
    url = f"{cloud.url}/rest/servicedeskapi/request/OPS-1/comment"
    note = api.post(url, json={"body": "Internal only\nsecond line", "public": False})
    assert note.status_code == 201 and note.json()["public"] is False
    assert note.json()["body"].endswith("second line")
    reply = api.post(url, json={"body": "Hello customer"}).json()
    platform = {c["id"]: c for c in api.get("/issue/OPS-1/comment").json()["comments"]}
    assert platform[note.json()["id"]]["jsdPublic"] is False
    assert platform[reply["id"]]["jsdPublic"] is True
    public = api.get(url, params={"internal": "false"}).json()
    assert [v["id"] for v in public["values"]] == [reply["id"]] and public["isLastPage"] is True
    not_a_request = api.post(url.replace("OPS-1", "TEST-1"), json={"body": "x"})
    assert not_a_request.status_code == 404


# -- attachments --------------------------------------------------------------------------------
def test_attachment_upload_needs_the_xsrf_header_and_answers_an_array(cloud, api):
    url = f"/issue/{create(api)['id']}/attachments"
    data = b"0123456789" * 10
    files = {"file": ("Übersicht.txt", data, "text/plain")}
    blocked = api.post(url, files=files)
    assert blocked.status_code == 403 and blocked.text == "XSRF check failed"
    r = api.post(url, files=files, headers=XSRF)
    assert r.status_code == 200 and isinstance(r.json(), list)
    att = r.json()[0]
    assert att["filename"] == "Übersicht.txt" and isinstance(att["id"], str)
    meta = api.get(f"/attachment/{att['id']}").json()
    assert isinstance(meta["id"], int) and meta["size"] == 100
    redirect = api.get(att["content"], allow_redirects=False)
    location = redirect.headers["Location"]
    assert redirect.status_code == 303 and location.startswith(f"http://localhost:{cloud.port}/")
    assert requests.get(location, timeout=5).content == data  # the media URL needs no credentials
    part = api.get(att["content"] + "?redirect=false", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == b"0123456789"
    beyond = api.get(att["content"] + "?redirect=false", headers={"Range": "bytes=500-"})
    assert beyond.status_code == 416
    assert api.get("/attachment/meta").json() == {"enabled": True, "uploadLimit": 1024**3}
    assert api.post(url, files={"file": ("", b"x")}, headers=XSRF).status_code in (400, 500)
    cloud.control("settings", {"attachments_enabled": False})
    try:
        assert api.post(url, files=files, headers=XSRF).status_code == 403
        assert api.get(f"/attachment/{att['id']}").status_code == 404
    finally:
        cloud.control("settings", {"attachments_enabled": True})


def test_the_size_limit_is_413_on_cloud_and_404_on_data_center(cloud, dc, api):
    big = {"file": ("big.bin", b"x" * 4096)}
    cloud.control("settings", {"upload_limit": 1000})
    try:
        r = api.post(f"/issue/{create(api)['id']}/attachments", files=big, headers=XSRF)
        assert r.status_code == 413 and r.json()["errorMessages"]
    finally:
        cloud.control("settings", {"upload_limit": 1024**3})
    s = dc.session()  # started with --upload-limit 2048
    assert s.post("/issue/TEST-1/attachments", files=big, headers=XSRF).status_code == 404
    att = s.get("/issue/TEST-1").json()["fields"]["attachment"][0]
    assert "/secure/attachment/" in att["content"]
    assert s.get(att["content"]).content.startswith(b"2026-03-02")


# -- search -----------------------------------------------------------------------------------
def test_search_jql_pages_by_token_without_total_and_returns_only_ids(cloud, api):
    assert api.post("/search/jql", json={"jql": ""}).status_code == 400
    assert api.post("/search/jql", json={"jql": "order by key"}).status_code == 400  # unbounded
    assert api.get("/search", params={"jql": "project = TEST"}).status_code == 410
    old_v2 = api.get(f"{cloud.url}/rest/api/2/search", params={"jql": "project = TEST"})
    assert old_v2.status_code == 410
    jql, seen, token = "project = TEST ORDER BY key ASC", [], None
    while True:
        page = api.post("/search/jql", json={"jql": jql, "maxResults": 2, "nextPageToken": token})
        page = page.json()
        assert "total" not in page and all(set(i) == {"id"} for i in page["issues"])
        seen += [i["id"] for i in page["issues"]]
        if page["isLast"]:
            break
        token = page["nextPageToken"]
    everything = search(api, jql, fields=["key"], maxResults=5000)
    assert seen == [i["id"] for i in everything] and len(seen) >= 3
    bogus = api.post("/search/jql", json={"jql": "project = TEST", "nextPageToken": "bogus"})
    assert bogus.status_code == 400
    nope = api.post("/search/jql", json={"jql": "project = NOPE"}).json()
    assert nope["errorMessages"] == ["The value 'NOPE' does not exist for the field 'project'."]


def test_without_order_by_the_order_is_arbitrary(api):
    jql = "project in (TEST, OPS, SUP)"
    orders = {tuple(i["id"] for i in search(api, jql)) for _ in range(6)}
    assert len(orders) > 1


def test_a_write_shows_in_search_only_after_the_index_lag(api):
    made = create(api, project="OPS", type="Incident", summary="Fresh one")
    jql = f"id = {made['id']}"
    assert search(api, jql) == []
    assert search(api, jql, reconcileIssues=[int(made["id"])]) == [{"id": made["id"]}]
    time.sleep(1.1)
    assert search(api, jql) == [{"id": made["id"]}]


def test_jql_dates_are_minute_granular_in_the_account_time_zone(api):
    made = create(api, summary="Dated")
    time.sleep(1.1)
    now = datetime.now(UTC) - timedelta(minutes=1)
    local = now.astimezone(ZoneInfo("America/Los_Angeles")).strftime("%Y/%m/%d %H:%M")
    as_utc = now.strftime("%Y/%m/%d %H:%M")  # a UTC literal read as Los Angeles time: in the future

    def found(clause):
        return made["id"] in [i["id"] for i in search(api, f"project = TEST AND {clause}")]

    assert found(f'updated >= "{local}"')
    assert not found(f'updated >= "{as_utc}"')
    assert found(f"updated >= {int(time.time() * 1000) - 30_000}")  # epoch ms
    assert found("updated >= -5m")
    bad = api.post("/search/jql", json={"jql": 'updated >= "yesterday"'})
    assert bad.status_code == 400 and "is invalid" in bad.json()["errorMessages"][0]


# -- faults, limits, statistics ----------------------------------------------------------------
def test_429_with_retry_after_and_the_per_issue_write_limit(cloud, api):
    fault = {"status": 429, "retry_after": 3, "count": 1, "paths": "/rest/api/3/myself"}
    cloud.control("faults", fault)
    r = api.get("/myself")
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    assert r.headers["RateLimit-Reason"] == "jira-burst-based"
    assert api.get("/myself").status_code == 200
    url = f"/issue/{create(api)['id']}/properties"
    codes = [api.put(f"{url}/p{n}", json=n).status_code for n in range(21)]
    assert codes[:20] == [201] * 20 and codes[20] == 429
    limited = api.put(f"{url}/px", json=1)
    assert limited.headers["RateLimit-Reason"] == "jira-per-issue-on-write"
    assert int(limited.headers["Retry-After"]) >= 1


def test_stats_count_requests_by_method_and_route(cloud, api):
    requests.delete(f"{cloud.url}/sandbox/stats", timeout=5)
    api.get("/issue/TEST-1")
    api.get("/issue/10001/comment")
    stats = requests.get(f"{cloud.url}/sandbox/stats", timeout=5).json()
    expected = {"GET /rest/api/3/issue/{key}": 1, "GET /rest/api/3/issue/{id}/comment": 1}
    assert stats == expected | {"total": 2}


# -- webhooks -----------------------------------------------------------------------------------
class _Catcher(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        self.received.append(
            (dict(self.headers), self.rfile.read(int(self.headers["Content-Length"])))
        )
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_admin_webhooks_are_signed_and_carry_the_actor(cloud, api):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Catcher)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert (
            cloud.session(LEE).post(f"{cloud.url}/rest/webhooks/1.0/webhook", json={}).status_code
            == 403
        )
        assert api.post("/webhook", json={}).status_code == 403  # dynamic webhooks: apps only
        hook = api.post(f"{cloud.url}/rest/webhooks/1.0/webhook", json={
            "name": "tests", "url": f"http://127.0.0.1:{server.server_port}/hook", "secret": "s3cret",
            "events": ["jira:issue_created", "jira:issue_updated", "comment_created"],
            "filters": {"issue-related-events-section": "project = OPS"}})  # fmt: skip
        assert hook.status_code == 201 and "secret" not in hook.json()
        create(api, project="TEST")  # filtered out
        made = create(api, project="OPS", type="Incident")
        cloud.session(DANA).post(f"/issue/{made['id']}/comment", json={"body": adf("hi")})
        wait_for(lambda: len(_Catcher.received) >= 3, timeout=10, what="three webhook deliveries")
        events = []
        for headers, body in _Catcher.received:
            expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
            assert (
                headers["X-Hub-Signature"] == f"sha256={expected}"
                and headers["X-Atlassian-Webhook-Identifier"]
            )
            payload = json.loads(body)
            assert payload["issue"]["id"] == made["id"]
            events.append(
                (
                    payload["webhookEvent"],
                    payload.get("issue_event_type_name"),
                    payload["user"]["displayName"],
                )
            )
        assert sorted(events) == [("comment_created", None, "Dana Ops"), ("jira:issue_created", "issue_created", "Sync Bot"),
                                  ("jira:issue_updated", "issue_commented", "Dana Ops")]  # fmt: skip
    finally:
        server.shutdown()


class _Flaky(_Catcher):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        self.received.append(
            (dict(self.headers), self.rfile.read(int(self.headers["Content-Length"])))
        )
        self.send_response(503 if len(self.received) == 1 else 200)
        self.end_headers()


def test_a_failed_delivery_is_retried_with_the_same_identifier(cloud, api):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cloud.control("settings", {"webhook_retry_delays": [0.2]})
    try:
        cloud.control("webhooks", {"url": f"http://127.0.0.1:{server.server_port}/", "events": ["attachment_created"],
                                   "filters": {"issue-related-events-section": "project = SUP"}})  # fmt: skip
        made = create(api, project="SUP", type="Question")
        api.post(f"/issue/{made['id']}/attachments", files={"file": ("a.txt", b"a")}, headers=XSRF)
        wait_for(lambda: len(_Flaky.received) >= 2, timeout=10, what="a retried delivery")
        (first, body1), (second, body2) = _Flaky.received[:2]
        assert first["X-Atlassian-Webhook-Identifier"] == second["X-Atlassian-Webhook-Identifier"]
        assert (first["X-Atlassian-Webhook-Retry"], second["X-Atlassian-Webhook-Retry"]) == (
            "0",
            "1",
        )
        assert body1 == body2 and json.loads(body1)["attachment"]["filename"] == "a.txt"
        assert "X-Hub-Signature" not in first  # no secret, no signature
        assert [d["status"] for d in requests.get(f"{cloud.url}/sandbox/webhooks/deliveries", timeout=5).json()
                if d["event"] == "attachment_created"][-2:] == [503, 200]  # fmt: skip
    finally:
        cloud.control("settings", {"webhook_retry_delays": [1, 2, 4]})
        server.shutdown()
