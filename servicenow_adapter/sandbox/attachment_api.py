"""The Attachment API: ``/api/now[/v1]/attachment``.

List (``sysparm_query`` on sys_attachment), ``/{sys_id}`` metadata and DELETE,
``/{sys_id}/file`` streamed download with ``Content-Disposition`` and
``X-Attachment-Metadata``, ``POST /file`` raw upload (query parameters, ``Content-Type``
mandatory, chunked bodies accepted) and ``POST /upload`` multipart form.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import quote

from .auth import table_rights, visible
from .render import page_headers, render, select
from .roles import may_write
from .schema import TABLES
from .store import CHUNK, new_sys_id, next_sequence
from .wire import (
    E_NO_RESOURCE,
    E_NOT_FOUND,
    E_RIGHTS_READ,
    E_RIGHTS_WRITE,
    SYS_ID,
    HttpError,
    SandboxRequest,
    SandboxResponse,
    common_headers,
    empty_response,
    json_response,
    respond,
)

if TYPE_CHECKING:
    from .app import SandboxApp


def attachment_request(
    app: SandboxApp, req: SandboxRequest, user: dict, first: str | None, second: str | None
) -> SandboxResponse:
    """Answer one Attachment API request by ``user``.

    ``first`` is None (the list), ``file`` / ``upload`` (uploads) or a sys_id; ``second``
    is ``file`` for the download. Raises ``HttpError`` (400, 403, 404, 405).
    """
    rights = table_rights(user, "sys_attachment")
    if first is None:
        if req.method not in ("GET", "HEAD"):
            raise HttpError(405, ("Method not Supported", None))
        if rights == "deny":
            raise HttpError(403, E_RIGHTS_READ)
        if rights == "empty":
            return json_response(200, {"result": []}, page_headers(req, 0, 0, 0))
        page, total, offset, limit = select(app, req, "sys_attachment", 1000)
        page = [] if rights == "hide" else visible(app, user, "sys_attachment", page)
        body = {"result": [render(app, req, "sys_attachment", r, "") for r in page]}
        return json_response(200, body, page_headers(req, total, offset, limit))
    if first in ("file", "upload"):
        if req.method != "POST":
            raise HttpError(405, ("Method not Supported", None))
        if rights != "allow":
            raise HttpError(403, E_RIGHTS_WRITE)
        return attachment_upload(app, req, user, multipart=first == "upload")
    if not SYS_ID.match(first):
        raise HttpError(400, E_NO_RESOURCE)
    row = app.store.get("sys_attachment", first)
    if rights == "deny":
        raise HttpError(403, E_RIGHTS_READ)
    if row is None or rights in ("hide", "empty"):
        raise HttpError(404, E_NOT_FOUND)
    if second == "file":
        if req.method not in ("GET", "HEAD"):
            raise HttpError(405, ("Method not Supported", None))
        meta = render(app, req, "sys_attachment", row, "", "")
        name = row["file_name"]
        ascii_name = name.encode("ascii", "replace").decode().replace('"', "")
        headers = [
            ("Content-Type", row.get("content_type") or "application/octet-stream"),
            ("Content-Length", row.get("size_bytes") or "0"),
            (
                "Content-Disposition",
                f"attachment;filename=\"{ascii_name}\";filename*=UTF-8''{quote(name)}",
            ),
            ("X-Attachment-Metadata", json.dumps(meta, ensure_ascii=True)),
        ] + common_headers()
        return respond(200, headers, app.store.read_blob(first))
    if req.method in ("GET", "HEAD"):
        return json_response(200, {"result": render(app, req, "sys_attachment", row, "")})
    if req.method == "DELETE":
        if rights != "allow":
            raise HttpError(403, E_RIGHTS_WRITE)
        app.store.delete("sys_attachment", first)
        return empty_response(204)
    raise HttpError(405, ("Method not Supported", None))


def attachment_upload(
    app: SandboxApp, req: SandboxRequest, user: dict, *, multipart: bool
) -> SandboxResponse:
    """``POST /api/now/attachment/file`` (raw body) or ``/upload`` (multipart form)."""
    if multipart:
        ctype = req.headers.get("Content-Type", "")
        if not ctype.startswith("multipart/form-data"):
            raise HttpError(
                400, ("Failed to create the attachment", "Expected multipart/form-data")
            )
        # Werkzeug parses the form (file parts spool to a temporary file); the last part
        # with a file name is the file, the other parts' text the form fields.
        form = {name: value.strip() for name, value in req.form.items(multi=True)}
        file_part = None
        for _, storage in req.files.items(multi=True):
            if storage.filename:
                file_part = storage
        if file_part is None:
            raise HttpError(400, ("Failed to create the attachment", "No file part in the form"))
        table_name, table_sys_id = form.get("table_name", ""), form.get("table_sys_id", "")
        file_name, content_type = file_part.filename, file_part.mimetype or "text/plain"
        stream = file_part.stream
        chunks: Iterable[bytes] = iter(lambda: stream.read(CHUNK), b"")
    else:
        table_name = req.params.get("table_name", "")
        table_sys_id = req.params.get("table_sys_id", "")
        file_name = req.params.get("file_name", "")
        content_type = req.headers.get("Content-Type", "")
        chunks = req.chunks()
        missing = [n for n, v in (("table_name", table_name), ("table_sys_id", table_sys_id),
                                  ("file_name", file_name)) if not v]  # fmt: skip
        if missing:
            raise HttpError(
                400,
                ("Failed to create the attachment", f"Missing parameter: {', '.join(missing)}"),
            )
        if not content_type:
            raise HttpError(
                400, ("Failed to create the attachment", "Content-Type header is required")
            )
    target = app.store.get(table_name, table_sys_id) if table_name in TABLES else None
    if target is None or not visible(app, user, table_name, [target]):
        raise HttpError(
            404, ("Invalid table or record", f"{table_name} {table_sys_id} does not exist")
        )
    if not may_write(app, user, table_name):  # attaching needs write on the record
        raise HttpError(403, E_RIGHTS_WRITE)
    sys_id = new_sys_id()
    limit = app.max_attachment_bytes
    counted = _Counted(chunks, limit)
    size, digest = app.store.put_blob(sys_id, counted)
    if counted.over:
        app.store.delete("sys_attachment", sys_id)  # drops the partial bytes too
        raise HttpError(400, attachment_too_large(limit or 0))
    now, who = app.store.now_text(), user["user_name"]
    row = {
        "sys_id": sys_id, "table_name": table_name, "table_sys_id": table_sys_id,
        "file_name": file_name, "content_type": content_type, "size_bytes": str(size),
        "size_compressed": str(size), "compressed": "true", "hash": digest,
        "chunk_size_bytes": "700000", "state": "pending", "download_link": "",
        "image_width": "", "image_height": "", "average_image_color": "",
        "sys_created_on": now, "sys_created_by": who, "sys_updated_on": now,
        "sys_updated_by": who, "sys_mod_count": "0", "sys_tags": "",
        "_uploaded_at": time.time(), "_seq": next_sequence(),
    }  # fmt: skip
    app.store.put("sys_attachment", row)
    location = f"{req.instance_url}/api/now/attachment/{sys_id}/file"
    return json_response(
        201,
        {"result": render(app, req, "sys_attachment", row, "", "")},
        [("Location", location)],
    )


def attachment_too_large(limit: int) -> tuple[str, str]:
    """The error envelope (message, detail) of an upload over ``com.glide.attachment.max_size``.

    The Attachment API "respects any system limitations on uploaded files, such as
    maximum file size" (ServiceNow docs, Attachment API; ``com.glide.attachment.max_size``,
    1024 MB by default). The docs give no body for the refusal; this one follows the
    API's other upload refusals (400, message "Failed to create the attachment") and
    names the property and the limit in ``detail`` (an inference, see servicenow-api.md §3).
    """
    return (
        "Failed to create the attachment",
        f"The attachment exceeds the maximum size of {limit} bytes (com.glide.attachment.max_size)",
    )


class _Counted:
    """The upload's chunks, counted; past ``limit`` bytes the rest is read and dropped.

    The instance reads the whole body before it refuses it (so the connection stays
    usable), but keeps none of an oversized file.
    """

    def __init__(self, chunks: Iterable[bytes], limit: int | None):
        self.chunks, self.limit, self.size, self.over = chunks, limit, 0, False

    def __iter__(self):
        for chunk in self.chunks:
            self.size += len(chunk)
            if self.limit is not None and self.size > self.limit:
                self.over = True
            if not self.over:
                yield chunk
