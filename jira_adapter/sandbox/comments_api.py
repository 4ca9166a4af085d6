"""Comments: ``/issue/{idOrKey}/comment[/{id}]`` and ``/comment/{id}/properties/{key}`` (reference note §3).

The list pages with ``startAt``/``maxResults`` (default and maximum 100) and ``total``;
``orderBy`` is ``created``, ``+created`` or ``-created`` (anything else 400); comments
restricted to a group or role the caller lacks are silently left out. A v3 body must
be ADF ("Comment body is not valid!" for a string, ``INVALID_INPUT`` for a broken
document), a v2 body a string; 32,767 characters at most; ``jsdPublic`` is read-only
and false only with the ``sd.public.comment`` ``{"internal": true}`` property. Adding a
comment bumps the issue's ``updated`` and raises ``comment_created`` plus
``jira:issue_updated`` (``issue_commented``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .adf import check_adf, check_length
from .site import comment_json, issue_get, visible_comments
from .wire import HttpError, JiraRequest, empty_response, field_error, json_response

if TYPE_CHECKING:
    from .app import SandboxApp

M_DC_OBJECT = "Can not deserialize instance of java.lang.String out of START_OBJECT token"


def _check_body(app: SandboxApp, body) -> None:
    if body is None or body == "" or body == {}:
        raise field_error("comment", "Comment body can not be empty!")
    if app.flavour == "dc":
        if not isinstance(body, str):
            raise HttpError(400, [M_DC_OBJECT])
        check_length(body, "comment")
    else:
        check_adf(body, "comment")


def _check_visibility(visibility) -> None:
    if visibility is None:
        return
    if (
        not isinstance(visibility, dict)
        or visibility.get("type") not in ("group", "role")
        or not (visibility.get("value") or visibility.get("identifier"))
    ):
        raise field_error(
            "visibility", "Visibility must have a type of 'group' or 'role' and a value."
        )


def comments(app: SandboxApp, req: JiraRequest, ik: str):
    """``GET`` (paged list) or ``POST`` (add, 201) on an issue's comments."""
    issue = issue_get(app, req, ik)
    if req.method == "POST":
        return _add(app, req, issue)
    order = req.args.get("orderBy", "created")
    if order not in ("created", "+created", "-created"):
        raise HttpError(
            400,
            [
                f"Invalid orderBy parameter value '{order}'. Valid values are: created, -created, +created."
            ],
        )
    start = max(0, req.int_arg("startAt", 0))
    size = min(100, max(0, req.int_arg("maxResults", 100)))
    rows = visible_comments(app, req, issue["id"])
    if order == "-created":
        rows.reverse()
    rendered = "renderedBody" in req.csv_arg("expand")
    page = [comment_json(app, req, c, rendered=rendered) for c in rows[start : start + size]]
    return json_response(
        200, {"startAt": start, "maxResults": size, "total": len(rows), "comments": page}
    )


def _add(app: SandboxApp, req: JiraRequest, issue: dict):
    data = req.payload()
    if not isinstance(data, dict):
        raise HttpError(400, ["Can not deserialize the comment: it must be an object."])
    _check_body(app, data.get("body"))
    _check_visibility(data.get("visibility"))
    props = data.get("properties") or []
    if not isinstance(props, list) or not all(
        isinstance(p, dict) and isinstance(p.get("key"), str) for p in props
    ):
        raise HttpError(400, ["The properties must be a list of {key, value} objects."])
    if len(app.store.find("comment", issue_id=issue["id"])) >= app.settings["comment_limit"]:
        raise HttpError(
            413,
            [f"The comment limit of {app.settings['comment_limit']} per issue has been reached."],
        )
    app.limiter.hit(issue["id"])
    now = app.store.now_ms()
    comment = {"id": app.store.new_id("comment"), "issue_id": issue["id"], "author": req.user["id"],
               "update_author": req.user["id"], "body": data["body"], "created": now, "updated": now,
               "visibility": data.get("visibility"), "properties": {p["key"]: p.get("value") for p in props}}  # fmt: skip
    app.store.put("comment", comment)
    issue = app.touch(issue["id"], now)
    app.webhooks.emit(req, "comment_created", issue, comment=comment)
    app.webhooks.emit(
        req, "jira:issue_updated", issue, comment=comment, issue_event_type_name="issue_commented"
    )
    return json_response(
        201, comment_json(app, req, comment, rendered="renderedBody" in req.csv_arg("expand"))
    )


def _find(app: SandboxApp, req: JiraRequest, issue: dict, cid: str) -> dict:
    for comment in visible_comments(app, req, issue["id"]):
        if comment["id"] == cid:
            return comment
    raise HttpError(404, [f"Can not find a comment for the id: {cid}."])


def comment_one(app: SandboxApp, req: JiraRequest, ik: str, cid: str):
    """``GET`` (200), ``PUT`` (200, the comment) and ``DELETE`` (204) of one comment.

    Only the author may change or delete a comment (the integration account has no
    *Edit all comments*); others get the 400 a site answers (§3.4).
    """
    issue = issue_get(app, req, ik)
    comment = _find(app, req, issue, cid)
    if req.method == "GET":
        return json_response(
            200, comment_json(app, req, comment, rendered="renderedBody" in req.csv_arg("expand"))
        )
    if comment["author"] != req.user["id"] and not req.user.get("admin"):
        verb = "delete" if req.method == "DELETE" else "edit"
        raise HttpError(400, [f"You do not have the permission to {verb} this comment."])
    app.limiter.hit(issue["id"])
    now = app.store.now_ms()
    if req.method == "DELETE":
        app.store.delete("comment", cid)
        issue = app.touch(issue["id"], now)
        app.webhooks.emit(req, "comment_deleted", issue, comment=comment)
        return empty_response(204)
    data = req.payload()
    if not isinstance(data, dict):
        raise HttpError(400, ["Can not deserialize the comment: it must be an object."])
    _check_body(app, data.get("body"))
    if "visibility" in data:
        _check_visibility(data["visibility"])
        comment["visibility"] = data["visibility"]
    comment.update(body=data["body"], updated=now, update_author=req.user["id"])
    app.store.put("comment", comment)
    issue = app.touch(issue["id"], now)
    app.webhooks.emit(req, "comment_updated", issue, comment=comment)
    app.webhooks.emit(
        req,
        "jira:issue_updated",
        issue,
        comment=comment,
        issue_event_type_name="issue_comment_edited",
    )
    return json_response(200, comment_json(app, req, comment))


def comment_property(app: SandboxApp, req: JiraRequest, cid: str, key: str):
    """``GET /comment/{id}/properties/{key}``: a property stamped when the comment was added."""
    comment = app.store.get("comment", cid)
    if comment is not None:
        issue_get(app, req, comment["issue_id"])  # 404 when the caller cannot see the issue
        _find(app, req, app.store.get("issue", comment["issue_id"]), cid)
    if comment is None or key not in comment.get("properties", {}):
        raise HttpError(404, [f"The property with key '{key}' does not exist."])
    return json_response(200, {"key": key, "value": comment["properties"][key]})
