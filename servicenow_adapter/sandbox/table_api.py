"""The Table API: ``/api/now[/v1|/v2]/table/{table}[/{sys_id}]``.

GET (list or one record; v1 answers 404 for an empty list), POST (201 with
``Location``), PUT/PATCH, DELETE (204), HEAD; ``X-no-response-body``. Reading is
:mod:`.render`, writing :mod:`.rules`, rights :mod:`.auth` (ACLs) and :mod:`.roles`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .auth import table_rights, visible
from .dictionary import dictionary_request
from .render import page_headers, render, select
from .roles import may_write
from .rules import record_delete, record_write
from .schema import TABLES
from .wire import (
    E_NOT_FOUND,
    E_RIGHTS_READ,
    E_RIGHTS_WRITE,
    HttpError,
    SandboxRequest,
    SandboxResponse,
    empty_response,
    json_response,
)

if TYPE_CHECKING:
    from .app import SandboxApp


def table_request(
    app: SandboxApp, req: SandboxRequest, user: dict, version: str, table: str, sys_id: str | None
) -> SandboxResponse:
    """Answer one Table API request by ``user`` on ``table`` (one record when ``sys_id``).

    ``version`` is ``''``, ``v1`` or ``v2``. Raises ``HttpError`` with the instance's envelope
    (400 unknown table or bad input, 403 rights or data policy, 404, 405).
    """
    if table == "sys_dictionary" and sys_id is None:  # issue 13: the fields of every table
        return dictionary_request(req, user)
    if table not in TABLES:
        raise HttpError(400, (f"Invalid table {table}", None))
    rights = table_rights(user, table)
    if req.method in ("GET", "HEAD"):
        if rights == "deny":
            raise HttpError(403, E_RIGHTS_READ)
        if sys_id is None:
            if rights == "empty":  # as if the table had no rows at all
                return json_response(200, {"result": []}, page_headers(req, 0, 0, 0))
            page, total, offset, limit = select(app, req, table, 10000)
            page = [] if rights == "hide" else visible(app, user, table, page)
            if version == "v1" and total == 0:
                raise HttpError(404, E_NOT_FOUND)
            body = {"result": [render(app, req, table, r, version) for r in page]}
            return json_response(200, body, page_headers(req, total, offset, limit))
        row = app.store.get(table, sys_id)
        if row is None or rights in ("hide", "empty") or not visible(app, user, table, [row]):
            raise HttpError(404, E_NOT_FOUND)
        return json_response(200, {"result": render(app, req, table, row, version)})
    if rights != "allow" or not may_write(app, user, table):  # an ACL, or no role that writes
        raise HttpError(403, E_RIGHTS_WRITE)
    if req.method == "POST" and sys_id is None:
        values = req.payload()
        if isinstance(values, list):  # one record only: extra ones are ignored
            values = values[0] if values else {}
        if not isinstance(values, dict):
            raise HttpError(400, ("Exception while reading request", "Expected a JSON object."))
        row = record_write(app, table, None, values, user)
        location = f"{req.instance_url}/api/now/table/{table}/{row['sys_id']}"
        if req.headers.get("X-no-response-body", "").lower() == "true":
            return empty_response(201, [("Location", location), ("Content-Length", "0")])
        return json_response(
            201, {"result": render(app, req, table, row, version)}, [("Location", location)]
        )
    if sys_id is None:
        raise HttpError(405, ("Method not Supported", f"{req.method} needs a sys_id"))
    existing = app.store.get(table, sys_id)
    if existing is None or not visible(app, user, table, [existing]):
        raise HttpError(404, E_NOT_FOUND)  # a row the user may not read cannot be written either
    if req.method in ("PUT", "PATCH"):
        values = req.payload()
        if not isinstance(values, dict):
            raise HttpError(400, ("Exception while reading request", "Expected a JSON object."))
        row = record_write(app, table, existing, values, user)
        if req.headers.get("X-no-response-body", "").lower() == "true":
            return empty_response(200, [("Content-Length", "0")])
        return json_response(200, {"result": render(app, req, table, row, version)})
    if req.method == "DELETE":
        record_delete(app, table, sys_id)
        return empty_response(204)
    raise HttpError(405, ("Method not Supported", None))
