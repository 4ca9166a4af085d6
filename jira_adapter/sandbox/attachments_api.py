"""Attachments: upload, metadata, settings, download, delete (reference note §4).

Upload is ``multipart/form-data`` with parts named ``file`` and the header
``X-Atlassian-Token: no-check`` (403 "XSRF check failed" without it); 200 with an
array. Over the site's ``upload_limit`` a Cloud site answers 413 and a Data Center one
404 (§4.1); more than 60 files or the per-issue limit 413; a part without a file name
500. Download on Cloud: ``/attachment/content/{id}`` answers 303 to a media URL on
another host name (``localhost`` ↔ ``127.0.0.1``, so a client must not forward its
credentials; the URL carries its own short-lived token), or the bytes themselves with
``redirect=false`` (206 for a ``Range``, 416 when unsatisfiable). On Data Center the
``content`` link is ``/secure/attachment/{id}/{filename}`` with the same credentials.
When attachments are disabled, upload is 403 and metadata and content are 404.
"""

from __future__ import annotations

import hashlib
import hmac
import mimetypes
import time
import uuid
from typing import TYPE_CHECKING
from urllib.parse import quote

from .site import attachment_json, can, issue_get
from .wire import HttpError, JiraRequest, empty_response, json_response, respond

if TYPE_CHECKING:
    from .app import SandboxApp

MAX_FILES = 60
MEDIA_TOKEN_SECONDS = 60


def upload(app: SandboxApp, req: JiraRequest, ik: str):
    """``POST /issue/{idOrKey}/attachments``."""
    if req.headers.get("X-Atlassian-Token", "").lower() not in ("no-check", "nocheck"):
        raise HttpError(403, body=b"XSRF check failed", content_type="text/plain;charset=UTF-8")
    issue = issue_get(app, req, ik)
    project = app.store.get("project", issue["project_id"])
    if (
        not app.settings["attachments_enabled"]
        or not req.user.get("attach", True)
        or not can(req.user, "browse", project["key"])
    ):
        raise HttpError(
            403,
            [
                "You do not have permission to create attachments for this issue, or attachments are disabled."
            ],
        )
    files = req.files.getlist("file")
    if not files:
        raise HttpError(
            400,
            ["No file was found in the request: send multipart/form-data with parts named 'file'."],
        )
    if len(files) > MAX_FILES:
        raise HttpError(413, [f"You can attach at most {MAX_FILES} files in one request."])
    existing = len(app.store.find("attachment", issue_id=issue["id"]))
    if existing + len(files) > app.settings["attachment_limit"]:
        raise HttpError(
            413,
            [
                f"The attachment limit of {app.settings['attachment_limit']} per issue has been reached."
            ],
        )
    limit = app.settings["upload_limit"]
    for part in files:
        disposition = part.headers.get("Content-Disposition", "")
        if not part.filename or (app.settings["rfc2231_fails"] and "filename*" in disposition):
            raise HttpError(
                500, ["Internal server error"]
            )  # the log says "Cannot create attachment without a filename"
    app.limiter.hit(issue["id"])
    created = []
    now = app.store.now_ms()
    for part in files:
        att_id = app.store.new_id("attachment")
        size = app.store.put_blob(
            att_id, iter(lambda p=part: p.stream.read(64 * 1024), b""), limit=limit
        )
        if size is None:
            for row in created:
                app.store.delete("attachment", row["id"])
            message = (
                f"The file '{part.filename}' is too large to attach: the limit is {limit} bytes."
            )
            raise HttpError(404 if app.flavour == "dc" else 413, [message])
        mime = part.mimetype or ""
        if not mime or mime == "application/octet-stream":
            mime = mimetypes.guess_type(part.filename)[0] or "application/octet-stream"
        row = {"id": att_id, "issue_id": issue["id"], "filename": part.filename, "author": req.user["id"],
               "created": now, "size": size, "mimeType": mime, "media_id": str(uuid.uuid4())}  # fmt: skip
        app.store.put("attachment", row)
        created.append(row)
    items = [{"field": "Attachment", "fieldtype": "jira", "fieldId": "attachment", "from": None,
              "fromString": None, "to": row["id"], "toString": row["filename"]} for row in created]  # fmt: skip
    with app.store.lock:
        issue = app.store.get("issue", issue["id"])
        app.add_history(req, issue, items)
        app.store.put("issue", issue)
    for row in created:
        app.webhooks.emit(
            req, "attachment_created", issue, attachment=attachment_json(app, req, row)
        )
    app.issue_changed(
        req, issue, "jira:issue_updated", "issue_updated", changelog=issue["history"][-1]
    )
    return json_response(200, [attachment_json(app, req, row) for row in created])


def settings(app: SandboxApp, req: JiraRequest):
    """``GET /attachment/meta``: ``{enabled, uploadLimit}`` (bytes)."""
    return json_response(
        200,
        {
            "enabled": app.settings["attachments_enabled"],
            "uploadLimit": app.settings["upload_limit"],
        },
    )


def _attachment(app: SandboxApp, req: JiraRequest, att_id: str) -> dict:
    att = app.store.get("attachment", att_id) if app.settings["attachments_enabled"] else None
    if att is None:
        raise HttpError(404, [f"The attachment with id '{att_id}' does not exist."])
    try:
        issue_get(app, req, att["issue_id"])
    except HttpError:
        raise HttpError(404, [f"The attachment with id '{att_id}' does not exist."]) from None
    return att


def metadata(app: SandboxApp, req: JiraRequest, att_id: str):
    """``GET /attachment/{id}`` (``id`` an integer here) and ``DELETE`` (204; author or admin)."""
    att = _attachment(app, req, att_id)
    if req.method == "DELETE":
        if att["author"] != req.user["id"] and not req.user.get("admin"):
            raise HttpError(403, ["You do not have permission to delete this attachment."])
        app.limiter.hit(att["issue_id"])
        app.store.delete("attachment", att_id)
        issue = app.touch(att["issue_id"], app.store.now_ms())
        app.webhooks.emit(
            req, "attachment_deleted", issue, attachment=attachment_json(app, req, att)
        )
        return empty_response(204)
    return json_response(200, attachment_json(app, req, att, metadata=True))


def _media_token(app: SandboxApp, media_id: str, expires: int) -> str:
    return hmac.new(app.secret, f"{media_id}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]


def content(app: SandboxApp, req: JiraRequest, att_id: str):
    """``GET /attachment/content/{id}``: 303 to the media URL, or the bytes with ``redirect=false``."""
    att = _attachment(app, req, att_id)
    if req.args.get("redirect", "true") == "false":
        return stream(app, req, att)
    host = req.host
    swapped = (
        host.replace("127.0.0.1", "localhost", 1)
        if host.startswith("127.0.0.1")
        else (host.replace("localhost", "127.0.0.1", 1) if host.startswith("localhost") else host)
    )
    expires = int(time.time()) + MEDIA_TOKEN_SECONDS
    token = _media_token(app, att["media_id"], expires)
    location = (f"{req.scheme}://{swapped}/media/file/{att['media_id']}/binary"
                f"?token={token}&expires={expires}&client=jira-sandbox&name={quote(att['filename'])}")  # fmt: skip
    return respond(303, [("Location", location), ("Content-Length", "0")], [b""])


def media(app: SandboxApp, req: JiraRequest, media_id: str):
    """The fake media service: bytes for a valid, unexpired token; no Jira credentials needed."""
    try:
        expires = int(req.args.get("expires", "0"))
    except ValueError:
        expires = 0
    token = req.args.get("token", "")
    if expires < time.time() or not hmac.compare_digest(
        token, _media_token(app, media_id, expires)
    ):
        raise HttpError(401, body=b'{"error":"Unauthorized: token expired or invalid"}')
    found = [a for a in app.store.rows("attachment") if a.get("media_id") == media_id]
    if not found:
        raise HttpError(404, body=b'{"error":"File not found"}')
    return stream(app, req, found[0])


def secure_download(app: SandboxApp, req: JiraRequest, att_id: str, filename: str):
    """Data Center's ``/secure/attachment/{id}/{filename}`` (with the API credentials)."""
    att = _attachment(app, req, att_id)
    return stream(app, req, att)


def stream(app: SandboxApp, req: JiraRequest, att: dict):
    """The bytes, streamed from SQLite; honours one ``Range`` (206), 400 malformed, 416 unsatisfiable."""
    size = att["size"]
    headers = [("Content-Type", att["mimeType"]), ("Accept-Ranges", "bytes"),
               ("Content-Disposition", f"attachment; filename*=UTF-8''{quote(att['filename'])}")]  # fmt: skip
    raw_range = req.headers.get("Range")
    if raw_range:
        rng = req.range
        if rng is None or len(rng.ranges) != 1:
            raise HttpError(400, ["The Range header is malformed."])
        bounds = rng.range_for_length(size)
        if bounds is None:
            raise HttpError(
                416,
                ["The requested range is not satisfiable."],
                headers=[("Content-Range", f"bytes */{size}")],
            )
        start, stop = bounds
        headers += [
            ("Content-Range", f"bytes {start}-{stop - 1}/{size}"),
            ("Content-Length", str(stop - start)),
        ]
        return respond(206, headers, app.store.read_blob(att["id"], start, stop - 1))
    headers.append(("Content-Length", str(size)))
    return respond(200, headers, app.store.read_blob(att["id"]))
