"""Users, projects and the ``demo`` seed of the Jira sandbox, written for this project.

``ensure_site`` runs at every start: the integration user (``--email`` / ``--token``,
"Sync Bot", a Jira admin, time zone ``--time-zone``, default America/Los_Angeles, so a
UTC date literal in JQL lies in the future), these people, and three projects:

================== ============ ============== =====================================
email              token        time zone      rights
================== ============ ============== =====================================
dana.ops@…         dana-token   Europe/Berlin  admin; in group "Developers"
lee.viewer@…       lee-token    UTC            browse TEST only; no create, no attach
================== ============ ============== =====================================

(all ``@example.com``; on Data Center the token is the personal access token.)

==== ============== ========================================= =====================
key  name           issue types                               note
==== ============== ========================================= =====================
TEST Test project   Task, Bug, Story, Epic, Sub-task          no Incident
OPS  Operations     Incident, Task, Problem, Sub-task         has Incident
SUP  Support desk   Request, Question, Sub-task               no Task: default Request
==== ============== ========================================= =====================

``seed_demo`` adds TEST-1 (rich description; comments with bold, links, lists, code,
a mention, one restricted to "Developers"; a text and a PNG attachment), TEST-2 (25
comments: more than the 20 an issue embeds), OPS-1 and SUP-1. Bodies are ADF on Cloud
and wiki markup on Data Center. Seeding is idempotent.
"""

from __future__ import annotations

import struct
import uuid
import zlib

from .adf import adf_to_wiki, text_doc
from .control import project_upsert, user_upsert

PEOPLE = [
    {"email": "dana.ops@example.com", "token": "dana-token", "display_name": "Dana Ops",
     "time_zone": "Europe/Berlin", "admin": True, "groups": ["jira-software-users", "Developers"]},
    {"email": "lee.viewer@example.com", "token": "lee-token", "display_name": "Lee Viewer",
     "time_zone": "UTC", "browse": ["TEST"], "create": [], "attach": False},
]  # fmt: skip
PROJECTS = [
    {"key": "TEST", "name": "Test project", "type": "software",
     "issuetypes": ["Task", "Bug", "Story", "Epic", "Sub-task!subtask"]},
    {"key": "OPS", "name": "Operations", "type": "service_desk",
     "issuetypes": ["Incident", "Task", "Problem", "Sub-task!subtask"]},
    {"key": "SUP", "name": "Support desk", "type": "business",
     "issuetypes": ["Request", "Question", "Sub-task!subtask"]},
]  # fmt: skip


def png_bytes(width: int = 32, height: int = 24) -> bytes:
    """A small valid PNG (RGB gradient) built with zlib."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + bytes(v for x in range(width) for v in (x * 8 % 256, y * 10 % 256, 128))
                   for y in range(height))  # fmt: skip
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def ensure_site(app, *, email: str, token: str, time_zone: str) -> None:
    """The integration user (token refreshed at every start), the people and the projects."""
    app.store.meta_set("integration_email", email.lower())
    user_upsert(app, {"email": email, "token": token, "display_name": "Sync Bot", "time_zone": time_zone,
                      "admin": True, "groups": ["jira-software-users", "jira-administrators"]})  # fmt: skip
    for person in PEOPLE:
        if not any(u["email"] == person["email"] for u in app.store.rows("user")):
            user_upsert(app, person)
    for project in PROJECTS:
        if not any(p["key"] == project["key"] for p in app.store.rows("project")):
            project_upsert(app, project)


def _t(text: str, *marks) -> dict:
    node = {"type": "text", "text": text}
    if marks:
        node["marks"] = [m if isinstance(m, dict) else {"type": m} for m in marks]
    return node


def _p(*inline) -> dict:
    return {"type": "paragraph", "content": list(inline)}


def _bullets(*items: str) -> dict:
    return {
        "type": "bulletList",
        "content": [{"type": "listItem", "content": [_p(_t(i))]} for i in items],
    }


DESCRIPTION = {"type": "doc", "version": 1, "content": [
    {"type": "heading", "attrs": {"level": 3}, "content": [_t("Impact")]},
    _p(_t("Duplex jobs on "), _t("PRN-3F-01", "strong"), _t(" jam after two pages."), {"type": "hardBreak"},
       _t("See the "), _t("vendor note", {"type": "link", "attrs": {"href": "https://support.example.com/kb/4711"}}),
       _t(" and "), _t("lpstat -p", "code"), _t(".")),
    _bullets("Floor 3 only", "Since the firmware update on Monday"),
    {"type": "codeBlock", "attrs": {"language": "bash"}, "content": [_t("lpstat -p PRN-3F-01\ncancel -a PRN-3F-01")]},
]}  # fmt: skip
COMMENTS = [
    {"type": "doc", "version": 1, "content": [_p(_t("Reproduced it: ", "strong"), _t("every duplex job of more than two pages."))]},
    {"type": "doc", "version": 1, "content": [
        _p(_t("Steps so far, following "), _t("the runbook", {"type": "link", "attrs": {"href": "https://wiki.example.com/rb/42"}}), _t(":")),
        {"type": "orderedList", "attrs": {"order": 1}, "content": [
            {"type": "listItem", "content": [_p(_t("Power-cycled the printer"))]},
            {"type": "listItem", "content": [_p(_t("Cleared the queue with "), _t("cancel -a", "code"))]}]},
        {"type": "codeBlock", "attrs": {"language": "text"}, "content": [_t("E-204 duplex unit timeout")]}]},
    {"type": "doc", "version": 1, "content": [
        _p({"type": "mention", "attrs": {"id": "", "text": "@Dana Ops"}}, _t(" can you order the spare duplex unit? "),
           _t("Urgent", "em"), _t(" and "), _t("old plan", "strike"))]},
]  # fmt: skip


def _body(app, doc: dict):
    return adf_to_wiki(doc) if app.flavour == "dc" else doc


def _user_id(app, email: str) -> str:
    return next(u["id"] for u in app.store.rows("user") if u["email"] == email)


def _issue(
    app, key: str, type_name: str, summary: str, description, created: int, reporter: str
) -> dict:
    project = next(p for p in app.store.rows("project") if p["key"] == key)
    itype = next(t for t in project["issuetypes"] if t["name"] == type_name)
    number = app.store.next_key_number(key)
    issue = {"id": app.store.new_id("issue"), "key": f"{key}-{number}", "project_id": project["id"],
             "issuetype_id": itype["id"], "summary": summary, "description": _body(app, description),
             "environment": None, "labels": [], "created": created, "updated": created, "reporter": reporter,
             "old_keys": [], "history": [], "properties": {}}  # fmt: skip
    return app.store.put("issue", issue)


def _comment(app, issue: dict, author: str, body, at: int, visibility=None) -> None:
    app.store.put("comment", {"id": app.store.new_id("comment"), "issue_id": issue["id"], "author": author,
                              "update_author": author, "body": _body(app, body), "created": at, "updated": at,
                              "visibility": visibility, "properties": {}})  # fmt: skip
    issue["updated"] = max(issue["updated"], at)
    app.store.put("issue", issue)


def _attach(app, issue: dict, author: str, filename: str, mime: str, data: bytes, at: int) -> None:
    att_id = app.store.new_id("attachment")
    size = app.store.put_blob(att_id, [data])
    app.store.put("attachment", {"id": att_id, "issue_id": issue["id"], "filename": filename, "author": author,
                                 "created": at, "size": size, "mimeType": mime, "media_id": str(uuid.uuid4())})  # fmt: skip


def seed_demo(app) -> None:
    """Add the demo issues once (see the module docstring)."""
    if app.store.meta_get("seeded:demo"):
        return
    now = app.store.now_ms()
    hour = 3_600_000
    dana, lee = _user_id(app, "dana.ops@example.com"), _user_id(app, "lee.viewer@example.com")
    COMMENTS[2]["content"][0]["content"][0]["attrs"]["id"] = next(
        u["account_id"] for u in app.store.rows("user") if u["email"] == "dana.ops@example.com"
    )
    first = _issue(
        app,
        "TEST",
        "Bug",
        "Printer on floor 3 jams on duplex jobs",
        DESCRIPTION,
        now - 30 * hour,
        dana,
    )
    _comment(app, first, dana, COMMENTS[0], now - 29 * hour)
    _comment(app, first, lee, COMMENTS[1], now - 28 * hour)
    _comment(app, first, dana, COMMENTS[2], now - 27 * hour)
    _comment(app, first, dana, text_doc("Internal: the spare unit is on the shelf in room 3.12."), now - 26 * hour,
             visibility={"type": "group", "value": "Developers", "identifier": "Developers"})  # fmt: skip
    log = "".join(
        f"2026-03-02T09:{m:02d}:00Z PRN-3F-01 E-204 duplex unit timeout (job {4000 + m})\n"
        for m in range(60)
    )
    _attach(app, first, dana, "printer-log.txt", "text/plain", log.encode(), now - 29 * hour)
    _attach(app, first, dana, "jam-photo.png", "image/png", png_bytes(), now - 29 * hour)
    second = _issue(app, "TEST", "Task", "Quarterly access review", text_doc("Review who can reach the finance share."),
                    now - 20 * hour, dana)  # fmt: skip
    for n in range(1, 26):
        _comment(
            app,
            second,
            dana if n % 2 else lee,
            text_doc(f"Review note {n} of 25."),
            now - 20 * hour + n * 60_000,
        )
    _issue(app, "OPS", "Incident", "Mail relay rejects outbound messages",
           text_doc("Since 08:00 the relay answers 451 to every outbound message."), now - 6 * hour, dana)  # fmt: skip
    _issue(app, "SUP", "Request", "How do I reset my VPN token?", text_doc("My token app shows an error."),
           now - 3 * hour, lee)  # fmt: skip
    app.store.meta_set("seeded:demo", "1")
