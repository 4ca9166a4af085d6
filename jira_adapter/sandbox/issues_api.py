"""``/myself``, ``/serverInfo``, projects, create metadata, issues and their entity properties.

Reference note §1 and §0: create answers 201 ``{id, key, self}``; edit 204 (200 with
``returnIssue=true``); validation errors collect in ``errors`` by field with Jira's
wording (§9.3); malformed ADF is the bare ``INVALID_INPUT`` (§5.3). Every write bumps
``updated``, is counted by the per-issue write limit, reaches search only after the
index lag, and raises the webhooks (``jira:issue_created`` / ``updated`` / ``deleted``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .adf import check_adf, check_length
from .site import (
    can,
    history_json,
    issue_get,
    issue_json,
    issuetype_json,
    project_get,
    project_json,
    user_json,
    visible_projects,
    wanted_fields,
)
from .wire import M_NOT_STRING, HttpError, JiraRequest, empty_response, json_response

if TYPE_CHECKING:
    from .app import SandboxApp

SETTABLE = {"summary", "description", "project", "issuetype", "labels", "environment"}
M_NOT_ON_SCREEN = "Field '{}' cannot be set. It is not on the appropriate screen, or unknown."


def myself(app: SandboxApp, req: JiraRequest):
    """``GET /myself``: the caller, with ``timeZone`` (the zone JQL dates are read in)."""
    out = user_json(app, req, req.user) | {"locale": "en_US"}
    out["groups"] = {
        "size": len(req.user.get("groups", [])),
        "items": [{"name": g} for g in req.user.get("groups", [])],
    }
    return json_response(200, out)


def server_info(app: SandboxApp, req: JiraRequest):
    """``GET /serverInfo`` (also without credentials, as on a site)."""
    cloud = app.flavour == "cloud"
    return json_response(200, {
        "baseUrl": req.site_url, "version": "1001.0.0-SNAPSHOT" if cloud else "9.12.15",
        "versionNumbers": [1001, 0, 0] if cloud else [9, 12, 15],
        "deploymentType": "Cloud" if cloud else "Server", "buildNumber": 100288 if cloud else 9120015,
        "serverTitle": "Jira", "defaultLocale": {"locale": "en_US"}, "serverTimeZone": "Etc/UTC",
    })  # fmt: skip


def project_search(app: SandboxApp, req: JiraRequest):
    """``GET /project/search``: paged (max 100), ``query``, ``keys``, ``action=create``, ``expand=issueTypes``."""
    start, size = max(0, req.int_arg("startAt", 0)), min(100, max(1, req.int_arg("maxResults", 50)))
    projects = visible_projects(app, req)
    if req.args.get("action") == "create":
        projects = [p for p in projects if can(req.user, "create", p["key"])]
    if query := (req.args.get("query") or "").lower():
        projects = [p for p in projects if query in p["key"].lower() or query in p["name"].lower()]
    if keys := req.csv_arg("keys"):
        projects = [p for p in projects if p["key"] in keys or p["id"] in keys]
    types = "issueTypes" in req.csv_arg("expand")
    page = projects[start : start + size]
    body = {"self": req.url, "maxResults": size, "startAt": start, "total": len(projects),
            "isLast": start + size >= len(projects),
            "values": [project_json(app, req, p, types=types) for p in page]}  # fmt: skip
    if not body["isLast"]:
        body["nextPage"] = (
            f"{req.site_url}{app.api}/project/search?startAt={start + size}&maxResults={size}"
        )
    return json_response(200, body)


def project_list(app: SandboxApp, req: JiraRequest):
    """``GET /project``: the non-paged list (DC's way; deprecated on Cloud)."""
    types = "issueTypes" in req.csv_arg("expand")
    return json_response(
        200, [project_json(app, req, p, types=types) for p in visible_projects(app, req)]
    )


def project_one(app: SandboxApp, req: JiraRequest, pid: str):
    """``GET /project/{idOrKey}`` with its issue types."""
    return json_response(200, project_json(app, req, project_get(app, req, pid), types=True))


def _page(req: JiraRequest, items: list, key: str) -> dict:
    start, size = max(0, req.int_arg("startAt", 0)), req.int_arg("maxResults", 50)
    if size > 200:
        raise HttpError(400, ["Parameter 'maxResults' must not exceed the limit '200'."])
    page = items[start : start + max(size, 0)]
    return {"maxResults": size, "startAt": start, "total": len(items), key: page}


def createmeta_types(app: SandboxApp, req: JiraRequest, pid: str):
    """``GET /issue/createmeta/{project}/issuetypes``: empty without *Create issues* (§1.5)."""
    project = project_get(app, req, pid)
    types = project["issuetypes"] if can(req.user, "create", project["key"]) else []
    return json_response(
        200, _page(req, [issuetype_json(app, req, t, project) for t in types], "issueTypes")
    )


def createmeta_fields(app: SandboxApp, req: JiraRequest, pid: str, tid: str):
    """``GET /issue/createmeta/{project}/issuetypes/{id}``: the create screen's fields."""
    project = project_get(app, req, pid)
    if not can(req.user, "create", project["key"]) or tid not in [
        t["id"] for t in project["issuetypes"]
    ]:
        raise HttpError(
            400, [f"Issue type with id '{tid}' does not exist or is not valid for this project."]
        )
    rich = (
        {"type": "string", "system": "description"}
        if app.flavour == "cloud"
        else {"type": "string"}
    )
    specs = [("summary", "Summary", True, {"type": "string", "system": "summary"}),
             ("description", "Description", False, rich),
             ("issuetype", "Issue Type", True, {"type": "issuetype", "system": "issuetype"}),
             ("project", "Project", True, {"type": "project", "system": "project"}),
             ("labels", "Labels", False, {"type": "array", "items": "string", "system": "labels"}),
             ("environment", "Environment", False, {"type": "string", "system": "environment"})]  # fmt: skip
    fields = [{"fieldId": f, "key": f, "name": n, "required": r, "hasDefaultValue": False,
               "operations": ["set"] if f != "labels" else ["add", "set", "remove"], "schema": s}
              for f, n, r, s in specs]  # fmt: skip
    return json_response(200, _page(req, fields, "fields"))


def _merge_update(fields: dict, update) -> dict:
    if not isinstance(update, dict):
        raise HttpError(400, ["Can not deserialize the 'update' value: it must be an object."])
    for name, ops in update.items():
        for op in ops if isinstance(ops, list) else []:
            for verb, value in op.items() if isinstance(op, dict) else []:
                if verb == "set":
                    fields[name] = value
                elif name == "labels" and verb in ("add", "remove"):
                    labels = fields.setdefault("labels", list(fields.get("_labels", [])))
                    if verb == "add":
                        labels.append(value)
                    elif value in labels:
                        labels.remove(value)
                else:
                    raise HttpError(
                        400, [], {name: f"Field '{name}' does not support operation '{verb}'."}
                    )
    return fields


def _check_text(app: SandboxApp, name: str, value, errors: dict) -> None:
    if value is None:
        return
    try:
        if app.flavour == "dc":
            if not isinstance(value, str):
                raise HttpError(400, [], {name: M_NOT_STRING})
            check_length(value, name)
        else:
            check_adf(value, name)
    except HttpError as exc:
        if exc.messages:  # INVALID_INPUT: the whole request is refused at once
            raise
        errors.update(exc.errors)


def validate_fields(app: SandboxApp, req: JiraRequest, fields: dict, *, issue: dict | None) -> dict:
    """Check create/edit ``fields``; returns the resolved values or raises the 400 envelope."""
    errors: dict[str, str] = {}
    for name in fields:
        if name not in SETTABLE or (issue is not None and name == "project"):
            errors[name] = M_NOT_ON_SCREEN.format(name)
    project = app.store.get("project", issue["project_id"]) if issue else None
    if issue is None:
        ref = fields.get("project")
        ref = ref if isinstance(ref, dict) else {"key": ref} if isinstance(ref, str) else {}
        for p in app.store.rows("project"):
            if str(ref.get("id")) == p["id"] or str(ref.get("key", "")).upper() == p["key"]:
                project = p
        if (
            project is None
            or not can(req.user, "browse", project["key"])
            or not can(req.user, "create", project["key"])
        ):
            errors["project"] = "valid project is required"
            project = None
    itype = None
    if project is not None and (issue is None or "issuetype" in fields):
        ref = fields.get("issuetype") if isinstance(fields.get("issuetype"), dict) else {}
        if "id" in ref:
            itype = next((t for t in project["issuetypes"] if t["id"] == str(ref["id"])), None)
            if itype is None:
                errors["issuetype"] = "The issue type selected is invalid."
        else:
            itype = next((t for t in project["issuetypes"] if t["name"] == ref.get("name")), None)
            if itype is None:
                errors["issuetype"] = "valid issue type is required"
    if issue is None or "summary" in fields:
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors["summary"] = "You must specify a summary of the issue."
        elif "\n" in summary or "\r" in summary:
            errors["summary"] = "The summary is invalid because it contains newline characters."
        elif len(summary) > 255:
            errors["summary"] = "Summary must be less than 255 characters."
    for name in ("description", "environment"):
        if name in fields:
            _check_text(app, name, fields[name], errors)
    labels = fields.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        errors["labels"] = "The labels must be a list of strings."
    elif bad := [x for x in labels if " " in x]:
        errors["labels"] = f"The label '{bad[0]}' contains spaces which is invalid."
    if errors:
        raise HttpError(400, [], errors)
    return {"project": project, "issuetype": itype}


def issue_create(app: SandboxApp, req: JiraRequest):
    """``POST /issue``: 201 ``{id, key, self}``; ``properties`` stamped at once (§1.1, §8.5)."""
    body = req.payload()
    if not isinstance(body, dict) or not isinstance(body.get("fields", {}), dict):
        raise HttpError(400, ["Can not deserialize the request: 'fields' must be an object."])
    fields = _merge_update(dict(body.get("fields", {})), body.get("update", {}))
    props = body.get("properties", [])
    if not isinstance(props, list) or not all(
        isinstance(p, dict) and isinstance(p.get("key"), str) for p in props
    ):
        raise HttpError(400, ["The properties must be a list of {key, value} objects."])
    resolved = validate_fields(app, req, fields, issue=None)
    project, itype = resolved["project"], resolved["issuetype"]
    now = app.store.now_ms()
    with app.store.lock:
        number = app.store.next_key_number(project["key"])
        issue = {"id": app.store.new_id("issue"), "key": f"{project['key']}-{number}",
                 "project_id": project["id"], "issuetype_id": itype["id"], "summary": fields["summary"],
                 "description": fields.get("description"), "environment": fields.get("environment"),
                 "labels": fields.get("labels", []), "created": now, "updated": now,
                 "reporter": req.user["id"], "old_keys": [], "history": [],
                 "properties": {p["key"]: p.get("value") for p in props}}  # fmt: skip
        app.store.put("issue", issue)
    app.issue_changed(req, issue, "jira:issue_created", "issue_created")
    self_url = f"{req.site_url}{app.api}/issue/{issue['id']}"
    return json_response(201, {"id": issue["id"], "key": issue["key"], "self": self_url})


def issue_read(app: SandboxApp, req: JiraRequest, ik: str):
    """``GET /issue/{idOrKey}``: ``fields`` (default ``*all``), ``expand``, ``properties``."""
    issue = issue_get(app, req, ik)
    fields = wanted_fields(req.csv_arg("fields"), ["*all"])
    return json_response(200, issue_json(app, req, issue, fields=fields, expand=req.csv_arg("expand"),
                                         properties=req.csv_arg("properties")))  # fmt: skip


def issue_edit(app: SandboxApp, req: JiraRequest, ik: str):
    """``PUT /issue/{idOrKey}``: whole-field edits; 204, or 200 and the issue with ``returnIssue=true``."""
    issue = issue_get(app, req, ik)
    body = req.payload()
    if not isinstance(body, dict) or not (body.get("fields") or body.get("update")):
        raise HttpError(400, ["No fields or update operations were provided."])
    start = dict(body.get("fields") or {})
    start["_labels"] = issue.get("labels", [])
    fields = _merge_update(start, body.get("update") or {})
    fields.pop("_labels")
    resolved = validate_fields(app, req, fields, issue=issue)
    app.limiter.hit(issue["id"])
    items = []
    with app.store.lock:
        issue = app.store.get("issue", issue["id"])
        if resolved["issuetype"] is not None:
            fields["issuetype"] = resolved["issuetype"]["id"]
        for name, value in fields.items():
            stored = "issuetype_id" if name == "issuetype" else name
            if issue.get(stored) != value:
                old = issue.get(stored)
                items.append({"field": name, "fieldtype": "jira", "fieldId": name,
                              "from": None, "fromString": old if isinstance(old, str) else json.dumps(old),
                              "to": None, "toString": value if isinstance(value, str) else json.dumps(value)})  # fmt: skip
                issue[stored] = value
        if items:
            app.add_history(req, issue, items)
            app.store.put("issue", issue)
    if items:
        app.issue_changed(
            req, issue, "jira:issue_updated", "issue_updated", changelog=issue["history"][-1]
        )
    if req.args.get("returnIssue") == "true":
        return json_response(200, issue_json(app, req, issue, fields=wanted_fields([], ["*all"])))
    return empty_response(204)


def issue_delete(app: SandboxApp, req: JiraRequest, ik: str):
    """``DELETE /issue/{idOrKey}``: 204; its comments and attachments go with it."""
    issue = issue_get(app, req, ik)
    for kind in ("comment", "attachment"):
        for row in app.store.find(kind, issue_id=issue["id"]):
            app.store.delete(kind, row["id"])
    app.store.delete("issue", issue["id"])
    app.index.record(issue["id"], None)
    app.webhooks.emit(req, "jira:issue_deleted", issue, issue_event_type_name="issue_deleted")
    return empty_response(204)


def changelog(app: SandboxApp, req: JiraRequest, ik: str):
    """``GET /issue/{idOrKey}/changelog``: paged, oldest first."""
    issue = issue_get(app, req, ik)
    start, size = (
        max(0, req.int_arg("startAt", 0)),
        min(100, max(1, req.int_arg("maxResults", 100))),
    )
    histories = issue.get("history", [])
    page = histories[start : start + size]
    return json_response(200, {"self": req.url, "maxResults": size, "startAt": start, "total": len(histories),
                               "isLast": start + size >= len(histories),
                               "values": [history_json(app, req, h) for h in page]})  # fmt: skip


def property_keys(app: SandboxApp, req: JiraRequest, ik: str):
    """``GET /issue/{idOrKey}/properties``: ``{"keys": [{self, key}]}``."""
    issue = issue_get(app, req, ik)
    base = f"{req.site_url}{app.api}/issue/{issue['id']}/properties/"
    return json_response(
        200, {"keys": [{"self": base + k, "key": k} for k in issue.get("properties", {})]}
    )


def property_one(app: SandboxApp, req: JiraRequest, ik: str, key: str):
    """``GET/PUT/DELETE /issue/{idOrKey}/properties/{key}`` (PUT: 201 new, 200 replaced; no body)."""
    issue = issue_get(app, req, ik)
    props = issue.get("properties", {})
    if req.method == "GET":
        if key not in props:
            raise HttpError(404, [f"The property with key '{key}' does not exist."])
        return json_response(200, {"key": key, "value": props[key]})
    if len(key) > 255:
        raise HttpError(400, ["The property key cannot be longer than 255 characters."])
    app.limiter.hit(issue["id"])
    with app.store.lock:
        issue = app.store.get("issue", issue["id"])
        existed = key in issue["properties"]
        if req.method == "DELETE":
            if not existed:
                raise HttpError(404, [f"The property with key '{key}' does not exist."])
            del issue["properties"][key]
        else:
            raw = req.get_data()
            if len(raw) > 32768:
                raise HttpError(
                    400, ["The property value is too long. The maximum length is 32768 bytes."]
                )
            issue["properties"][key] = req.payload()
        app.store.put("issue", issue)
    app.index.record(issue["id"], issue)
    if req.method == "DELETE":
        return empty_response(204)
    return empty_response(200 if existed else 201)
