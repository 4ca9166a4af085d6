"""JQL search: Cloud's ``/rest/api/3/search/jql`` and Data Center's ``/rest/api/2/search`` (reference note §2).

Search reads an **index** that lags behind writes: each write records a snapshot of
the issue that becomes searchable ``index_lag_seconds`` later (default 1 s on Cloud,
0 on DC, where search is strongly consistent), so a just-created or just-changed issue
is missing or matched on its old values until then; ``reconcileIssues`` (≤ 50 ids)
reads those issues fresh. The result fields are always the current ones.

``/search/jql``: ``nextPageToken`` cursor (expires after 7 days), ``isLast``, no
``total``, ``startAt`` ignored, ``fields`` default ``id`` only, ``maxResults`` default 50
and at most 5000 for id/key-only requests, else 100; empty or unbounded JQL 400; ≤ 7
ORDER BY fields. **Without ORDER BY the order is arbitrary** (fixed within one cursor).
The old ``/rest/api/{2,3}/search`` answers 410 on Cloud with the CHANGE-2046 message.
DC ``/rest/api/2/search``: ``startAt``/``maxResults`` (≤ 1000)/``total``, navigable
fields by default.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import threading
import time
from typing import TYPE_CHECKING

from .jql import check_values, matches, parse_jql, sort_key
from .site import can, issue_json, visible_projects, wanted_fields
from .wire import M_SEARCH_GONE, HttpError, JiraRequest, json_response

if TYPE_CHECKING:
    from .app import SandboxApp

M_UNBOUNDED = (
    "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
)
M_TOKEN = "The provided next page token is invalid or expired."
TOKEN_SECONDS = 7 * 86400


def snapshot(app: SandboxApp, issue: dict) -> dict:
    """What the index knows of an issue: the values JQL clauses compare."""
    project = app.store.get("project", issue["project_id"])
    itype = next(
        (t for t in project["issuetypes"] if t["id"] == issue["issuetype_id"]),
        {"name": "", "id": ""},
    )
    return {"id": issue["id"], "key": issue["key"], "keys": [issue["key"], *issue.get("old_keys", [])],
            "project_key": project["key"], "project_id": project["id"], "project_name": project["name"],
            "issuetype": itype["name"], "issuetype_id": itype["id"], "status": "To Do",
            "summary": issue["summary"], "created": issue["created"], "updated": issue["updated"],
            "properties": json.loads(json.dumps(issue.get("properties", {})))}  # fmt: skip


class Index:
    """Per-issue snapshots that become visible after a lag (thread-safe)."""

    def __init__(self, app: SandboxApp):
        self.app = app
        self.lock = threading.Lock()
        self.entries: dict[str, list[tuple[float, dict | None]]] = {}
        for issue in app.store.rows("issue"):
            self.entries[issue["id"]] = [(0.0, snapshot(app, issue))]

    def record(self, issue_id: str, issue: dict | None) -> None:
        """Index the issue's new state (None: deleted) after the current lag."""
        snap = snapshot(self.app, issue) if issue is not None else None
        visible_at = time.monotonic() + self.app.settings["index_lag_seconds"]
        with self.lock:
            self.entries.setdefault(issue_id, []).append((visible_at, snap))

    def view(self) -> dict[str, dict]:
        """The searchable snapshots now, by issue id."""
        now, out = time.monotonic(), {}
        with self.lock:
            for issue_id, entries in self.entries.items():
                newest = max((n for n, e in enumerate(entries) if e[0] <= now), default=None)
                if newest is not None:
                    del entries[:newest]  # older states are never searched again
                    if entries[0][1] is not None:
                        out[issue_id] = entries[0][1]
        return out


def _params(req: JiraRequest) -> dict:
    if req.method == "POST":
        body = req.payload()
        if not isinstance(body, dict):
            raise HttpError(400, ["The request body must be a JSON object."])
        fields = body.get("fields") or []
        return {"jql": body.get("jql") or "", "token": body.get("nextPageToken"),
                "max": body.get("maxResults"), "fields": fields if isinstance(fields, list) else [fields],
                "expand": ",".join(body["expand"]) if isinstance(body.get("expand"), list) else body.get("expand") or "", "reconcile": body.get("reconcileIssues") or [],
                "properties": body.get("properties") or [], "startAt": body.get("startAt", 0)}  # fmt: skip
    return {"jql": req.args.get("jql", ""), "token": req.args.get("nextPageToken"),
            "max": req.args.get("maxResults"), "fields": req.csv_arg("fields"),
            "expand": req.args.get("expand", ""), "reconcile": req.csv_arg("reconcileIssues"),
            "properties": req.csv_arg("properties"), "startAt": req.args.get("startAt", 0)}  # fmt: skip


def _run(
    app: SandboxApp, req: JiraRequest, jql: str, reconcile: list[str]
) -> tuple[list[dict], list]:
    query = parse_jql(jql)
    projects = visible_projects(app, req)
    names = (
        {p["key"] for p in projects}
        | {p["id"] for p in projects}
        | {p["name"].upper() for p in projects}
    )
    visible_ids = {p["id"] for p in projects}
    known = {
        k
        for i in app.store.rows("issue")
        if i["project_id"] in visible_ids
        for k in [i["key"], *i.get("old_keys", [])]
    }
    check_values(query, project_keys=names, known_keys=known)
    snaps = app.index.view()
    for issue_id in reconcile:
        issue = app.store.get("issue", str(issue_id))
        if issue is None:
            snaps.pop(str(issue_id), None)
        else:
            snaps[issue["id"]] = snapshot(app, issue)
    tz, now = req.user["time_zone"], app.store.now_ms()
    indexed = app.settings["indexed_properties"]
    if "*" not in indexed:  # only properties an installed app declares are searchable
        snaps = {i: s | {"properties": {k: v for k, v in s["properties"].items() if k in indexed}}
                 for i, s in snaps.items()}  # fmt: skip
    hits = [s for s in snaps.values() if s["project_id"] in visible_ids and app.store.get("issue", s["id"]) is not None
            and matches(query.where, s, tz=tz, now_ms=now)]  # fmt: skip
    return hits, query


def _result(app: SandboxApp, req: JiraRequest, snap: dict, p: dict) -> dict:
    issue, fields = app.store.get("issue", snap["id"]), [f for f in p["fields"] if f]
    expand = [e for e in str(p["expand"]).split(",") if e]
    props = [str(k) for k in p["properties"]]
    if not fields or fields == ["id"]:
        out = {"id": issue["id"]}
        if props:
            out["properties"] = issue_json(app, req, issue, fields=[], properties=props)[
                "properties"
            ]
        return out
    out = issue_json(
        app, req, issue, fields=wanted_fields(fields, []), expand=expand, properties=props
    )
    if "key" not in fields and "*all" not in fields and "*navigable" not in fields:
        out.pop("key", None)
    return out


def search_jql(app: SandboxApp, req: JiraRequest):
    """``GET/POST /rest/api/3/search/jql`` (Cloud)."""
    p = _params(req)
    if not str(p["jql"]).strip():
        raise HttpError(400, ["JQL query is required: an empty query is not allowed here."])
    reconcile = [str(i) for i in p["reconcile"]]
    if len(reconcile) > 50:
        raise HttpError(400, ["The reconcileIssues parameter can contain at most 50 issue ids."])
    fields = [f for f in p["fields"] if f]
    light = set(fields) <= {"id", "key"}
    cap = 5000 if light else 100
    try:
        size = min(cap, max(1, int(p["max"]))) if p["max"] not in (None, "") else 50
    except (TypeError, ValueError):
        raise HttpError(400, ["Parameter 'maxResults' must be a number."]) from None
    hits, query = _run(app, req, p["jql"], reconcile)
    if query.where is None:
        raise HttpError(400, [M_UNBOUNDED])
    if len(query.order) > 7:
        raise HttpError(400, ["The query can be ordered by at most 7 fields."])
    digest = hashlib.sha256(str(p["jql"]).encode()).hexdigest()[:12]
    offset, seed = 0, random.getrandbits(32)
    if p["token"]:
        try:
            state = json.loads(base64.urlsafe_b64decode(str(p["token"]) + "==="))
            offset, seed = int(state["o"]), int(state["s"])
            if state["q"] != digest or state["t"] < time.time():
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise HttpError(400, [M_TOKEN]) from None
    hits = _order(hits, query.order, seed)
    page = hits[offset : offset + size]
    body = {"issues": [_result(app, req, s, p) for s in page]}
    if offset + size < len(hits):
        state = {"o": offset + size, "s": seed, "q": digest, "t": int(time.time()) + TOKEN_SECONDS}
        body["nextPageToken"] = (
            base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")
        )
        body["isLast"] = False
    else:
        body["isLast"] = True
    return json_response(200, body)


def _order(hits: list[dict], order: list[tuple[str, bool]], seed: int) -> list[dict]:
    if not order:  # arbitrary, but stable for one cursor
        return sorted(hits, key=lambda s: hashlib.sha256(f"{seed}:{s['id']}".encode()).digest())
    for name, desc in reversed(order):
        hits = sorted(hits, key=lambda s, n=name: sort_key(s, n), reverse=desc)
    return hits


def search_v2(app: SandboxApp, req: JiraRequest):
    """``GET/POST /rest/api/2/search`` on DC (startAt paging, ``total``); 410 on Cloud."""
    if app.flavour == "cloud":
        raise HttpError(410, [M_SEARCH_GONE])
    p = _params(req)
    try:
        start = max(0, int(p["startAt"] or 0))
        size = min(1000, max(0, int(p["max"]))) if p["max"] not in (None, "") else 50
    except (TypeError, ValueError):
        raise HttpError(400, ["Parameters 'startAt' and 'maxResults' must be numbers."]) from None
    hits, query = _run(app, req, p["jql"], [])
    hits = _order(hits, query.order or [("created", True)], 0)
    fields = wanted_fields([f for f in p["fields"] if f], ["*navigable"])
    expand = [e for e in str(p["expand"]).split(",") if e]
    props = [str(k) for k in p["properties"]]
    issues = [issue_json(app, req, app.store.get("issue", s["id"]), fields=fields, expand=expand, properties=props)
              for s in hits[start : start + size]]  # fmt: skip
    return json_response(200, {"expand": "schema,names", "startAt": start, "maxResults": size,
                               "total": len(hits), "issues": issues})  # fmt: skip


def search_gone(app: SandboxApp, req: JiraRequest):
    """``/rest/api/3/search`` on Cloud: removed (410)."""
    raise HttpError(410, [M_SEARCH_GONE])


def visible(app: SandboxApp, req: JiraRequest, issue: dict) -> bool:
    """Whether the caller may browse the issue's project (for webhook filters)."""
    return can(req.user, "browse", app.store.get("project", issue["project_id"])["key"])
