"""``sys_dictionary`` in the sandbox: one row per field of every table it knows (issue 13).

Read-only, generated from :data:`.schema.TABLES`: ``name`` (the table), ``element`` (the
field), ``internal_type`` (``string``, ``integer``, ``boolean``, ``glide_date_time``,
``choice``, ``reference``, ``journal_input``), ``reference`` (the referenced table's name,
'' otherwise) and ``column_label``. Queries, paging and ``X-Total-Count`` work as on any
table; like an instance, a term on an unknown field is dropped. The user's ACL on
``sys_dictionary`` applies (``deny``: 403; ``empty``: 200 with no rows), which is how a
test shows a node falling back to a sample record's fields.
"""

from __future__ import annotations

import hashlib
import random

from . import query as eq
from .auth import table_rights
from .render import page_headers
from .schema import TABLES
from .wire import E_RIGHTS_READ, HttpError, SandboxRequest, SandboxResponse, json_response

FIELDS = ("sys_id", "name", "element", "internal_type", "reference", "column_label")


def _internal_type(kind) -> tuple[str, str]:
    if isinstance(kind, tuple):
        return "choice", ""
    if kind.startswith("reference:"):
        return "reference", kind.split(":", 1)[1]
    return {"datetime": "glide_date_time", "journal": "journal_input"}.get(kind, kind), ""


def rows() -> list[dict]:
    """Every dictionary row (the same sys_ids on every call: a hash of table and field)."""
    out = []
    for table, fields in TABLES.items():
        for element, kind in fields.items():
            internal, ref = _internal_type(kind)
            out.append(
                {
                    "sys_id": hashlib.md5(f"{table}.{element}".encode()).hexdigest(),  # noqa: S324
                    "name": table,
                    "element": element,
                    "internal_type": internal,
                    "reference": ref,
                    "column_label": element.replace("_", " ").capitalize(),
                }
            )
    return out


def dictionary_request(req: SandboxRequest, user: dict) -> SandboxResponse:
    """``GET /api/now/table/sys_dictionary``: the generated rows, queried and paged."""
    if req.method not in ("GET", "HEAD"):
        raise HttpError(403, E_RIGHTS_READ)
    rights = table_rights(user, "sys_dictionary")
    if rights == "deny":
        raise HttpError(403, E_RIGHTS_READ)
    if rights in ("empty", "hide"):
        return json_response(200, {"result": []}, page_headers(req, 0, 0, 0))
    parsed = eq.parse(req.params.get("sysparm_query") or "", lambda n: n in FIELDS)
    found = [r for r in rows() if eq.evaluate(parsed, r.get)]
    random.shuffle(found)
    for name, desc in reversed(parsed.order):
        found.sort(key=lambda r, n=name: r.get(n, ""), reverse=desc)
    try:
        limit = int(req.params.get("sysparm_limit") or 10000)
        offset = int(req.params.get("sysparm_offset") or 0)
    except ValueError:
        raise HttpError(400, ("Invalid parameter", "sysparm_limit must be a number")) from None
    wanted = [f for f in (req.params.get("sysparm_fields") or "").split(",") if f in FIELDS]
    page = [{f: r[f] for f in (wanted or FIELDS)} for r in found[offset : offset + limit]]
    return json_response(200, {"result": page}, page_headers(req, len(found), offset, limit))
