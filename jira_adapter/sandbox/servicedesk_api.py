"""Jira Service Management comments: ``/rest/servicedeskapi/request/{issueIdOrKey}/comment`` (reference note §3.5).

Only issues of a service project (``projectTypeKey`` ``service_desk``: OPS in the demo)
are requests; others answer 404. ``POST {"body": "text", "public": false}`` adds an
internal note (``public`` true: a reply to the customer). The body is a **string**,
stored as the platform API shows it (one ADF paragraph per line on Cloud, the string on
DC) with the ``sd.public.comment`` property, so ``jsdPublic`` agrees. ``GET`` pages with
``start``/``limit`` (50) and filters with ``public``/``internal`` (both true by default):
``{size, start, limit, isLastPage, values}``; the comment ids are the platform's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .adf import check_length
from .site import issue_get, user_json, visible_comments
from .wire import HttpError, JiraRequest, jira_time, json_response

if TYPE_CHECKING:
    from .app import SandboxApp


def _request(app: SandboxApp, req: JiraRequest, ik: str) -> dict:
    try:
        issue = issue_get(app, req, ik)
    except HttpError:
        issue = None
    if issue is None or app.store.get("project", issue["project_id"])["type"] != "service_desk":
        raise HttpError(
            404, [f"The request '{ik}' does not exist or you do not have permission to see it."]
        )
    return issue


def _public(comment: dict) -> bool:
    return (comment.get("properties", {}).get("sd.public.comment") or {}).get(
        "internal"
    ) is not True


def _text(app: SandboxApp, body) -> str:
    if isinstance(body, str):
        return body
    lines = []
    for block in (body or {}).get("content") or []:
        lines.append(
            "".join(n.get("text", "") for n in block.get("content") or [] if isinstance(n, dict))
        )
    return "\n".join(lines)


def _json(app: SandboxApp, req: JiraRequest, comment: dict) -> dict:
    tz, ms = req.user["time_zone"], comment["created"]
    return {"id": comment["id"], "body": _text(app, comment["body"]), "public": _public(comment),
            "author": user_json(app, req, app.store.get("user", comment["author"])),
            "created": {"iso8601": jira_time(ms, tz), "jira": jira_time(ms, tz), "friendly": "Today",
                        "epochMillis": ms}}  # fmt: skip


def request_comments(app: SandboxApp, req: JiraRequest, ik: str):
    """``GET`` (paged, filtered) or ``POST`` (201) on a request's comments."""
    issue = _request(app, req, ik)
    if req.method == "POST":
        data = req.payload()
        body = data.get("body") if isinstance(data, dict) else None
        if not isinstance(body, str) or not body.strip():
            raise HttpError(400, ["The comment body must be a non-empty string."])
        check_length(body, "comment")
        app.limiter.hit(issue["id"])
        now, public = app.store.now_ms(), data.get("public", True) is not False
        stored = body if app.flavour == "dc" else {
            "type": "doc", "version": 1,
            "content": [{"type": "paragraph", "content": [{"type": "text", "text": line}] if line else []}
                        for line in body.split("\n")]}  # fmt: skip
        comment = {"id": app.store.new_id("comment"), "issue_id": issue["id"], "author": req.user["id"],
                   "update_author": req.user["id"], "body": stored, "created": now, "updated": now,
                   "visibility": None, "properties": {"sd.public.comment": {"internal": not public}}}  # fmt: skip
        app.store.put("comment", comment)
        issue = app.touch(issue["id"], now)
        app.webhooks.emit(req, "comment_created", issue, comment=comment)
        app.webhooks.emit(
            req,
            "jira:issue_updated",
            issue,
            comment=comment,
            issue_event_type_name="issue_commented",
        )
        return json_response(201, _json(app, req, comment))
    want_public = req.args.get("public", "true") != "false"
    want_internal = req.args.get("internal", "true") != "false"
    rows = [c for c in visible_comments(app, req, issue["id"])
            if (want_public and _public(c)) or (want_internal and not _public(c))]  # fmt: skip
    start, limit = max(0, req.int_arg("start", 0)), max(1, min(100, req.int_arg("limit", 50)))
    page = rows[start : start + limit]
    return json_response(200, {"size": len(page), "start": start, "limit": limit,
                               "isLastPage": start + limit >= len(rows),
                               "values": [_json(app, req, c) for c in page]})  # fmt: skip
