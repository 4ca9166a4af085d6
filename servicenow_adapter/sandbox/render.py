"""How records are read out: field values in the three display modes, query, order, paging.

Shared by the Table and Attachment APIs. ``sysparm_display_value`` false / true / all,
``sysparm_exclude_reference_link``, ``sysparm_fields`` (one level of dot-walking), the
journal fields' history text, display times in the instance's time zone, and the
``X-Total-Count`` / ``Link`` headers of a list (``prev`` even at offset 0, as recorded).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from . import query as eq
from .rules import settle
from .schema import DISPLAY_FIELD, JOURNAL_LABEL, TABLES, kind_of, known_field
from .wire import HttpError, SandboxRequest

if TYPE_CHECKING:
    from .app import SandboxApp


def local_time(app: SandboxApp, value: str) -> str:
    """``YYYY-MM-DD HH:MM:SS`` UTC shown in the instance's display time zone ('' stays '')."""
    if not value:
        return ""
    moment = datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return moment.astimezone(app.display_tz).strftime("%Y-%m-%d %H:%M:%S")


def display_of(app: SandboxApp, table: str, sys_id: str) -> str:
    """The display value of a referenced record (its name, number...; '' when it is gone)."""
    if table == "sys_user_group" and sys_id == "global":
        return "global"
    row = app.store.get(table, sys_id)
    return row.get(DISPLAY_FIELD.get(table, "sys_id"), "") if row else ""


def journal_history(app: SandboxApp, sys_id: str, element: str) -> str:
    """A journal field's display text: newest first, ``<local time> - <name> (<label>)\n<text>\n\n``.

    ``comments_and_work_notes`` joins both journals, as the instance's activity stream does.
    Entries are in the order they were written (the private ``_seq``), which the instance
    knows even within one second; ``sys_created_on`` and the random ``sys_id`` do not tell it.
    """
    elements = ("comments", "work_notes") if element == "comments_and_work_notes" else (element,)
    rows = [r for r in app.store.rows("sys_journal_field")
            if r.get("element_id") == sys_id and r.get("element") in elements]  # fmt: skip
    rows.sort(key=lambda r: (r["sys_created_on"], r.get("_seq", 0), r["sys_id"]), reverse=True)
    parts = []
    for r in rows:
        user = app.store.user(r.get("sys_created_by", ""))
        who = user.get("name") if user else r.get("sys_created_by", "")
        label = JOURNAL_LABEL.get(r["element"], r["element"])
        parts.append(f"{local_time(app, r['sys_created_on'])} - {who} ({label})\n{r['value']}\n\n")
    return "".join(parts)


def render_value(app: SandboxApp, table, row, name, mode, exclude_links, base, version):
    """One field of ``row`` as the API shows it in display ``mode`` (false / true / all).

    ``name`` may dot-walk one reference (``caller_id.name``); references carry a ``link``
    under ``base`` unless ``exclude_links``; journal fields are empty unless displayed.
    """
    head, _, tail = name.partition(".")
    kind = kind_of(table, head)
    raw = row.get(head, "")
    if tail:
        target = kind.split(":", 1)[1]
        ref = app.store.get(target, raw) if raw else None
        return (
            render_value(app, target, ref, tail, mode, exclude_links, base, version) if ref else ""
        )
    if table == "sys_attachment" and name == "download_link":
        raw = f"{base}/api/now/attachment/{row['sys_id']}/file"
    if kind == "journal":
        shown = journal_history(app, row["sys_id"], name) if mode != "false" else ""
        return {"display_value": shown, "value": ""} if mode == "all" else shown
    if isinstance(kind, str) and kind.startswith("reference:"):
        target = kind.split(":", 1)[1]
        if not raw:
            return {"display_value": "", "value": ""} if mode == "all" else ""
        link = f"{base}/api/now{'/' + version if version else ''}/table/{target}/{raw}"
        shown = display_of(app, target, raw)
        if mode == "false":
            return raw if exclude_links else {"link": link, "value": raw}
        if mode == "true":
            return shown if exclude_links else {"display_value": shown, "link": link}
        out = {"display_value": shown, "value": raw}
        if not exclude_links:
            out["link"] = link
        return out
    if mode == "false":
        return raw
    if isinstance(kind, tuple):
        shown = kind[1].get(raw, raw)
    elif kind == "datetime":
        shown = local_time(app, raw)
    elif kind == "integer" and raw.lstrip("-").isdigit():
        shown = f"{int(raw):,}"
    else:
        shown = raw
    return {"display_value": shown, "value": raw} if mode == "all" else shown


def render(
    app: SandboxApp,
    req: SandboxRequest,
    table: str,
    row: dict,
    version: str,
    fields_param: str | None = None,
) -> dict:
    """``row`` as a result object: the ``sysparm_fields`` (or ``fields_param``) that exist, else all."""
    mode = (req.params.get("sysparm_display_value") or "false").lower()
    mode = mode if mode in ("true", "false", "all") else "false"
    exclude = (req.params.get("sysparm_exclude_reference_link") or "").lower() == "true"
    raw_fields = req.params.get("sysparm_fields") if fields_param is None else fields_param
    names = [f.strip() for f in (raw_fields or "").split(",") if f.strip()]
    names = [n for n in names if known_field(table, n)] if names else list(TABLES[table])
    row = settle(app, table, row)
    return {
        n: render_value(app, table, row, n, mode, exclude, req.instance_url, version) for n in names
    }


def field_getter(app: SandboxApp, table: str, row: dict):
    """A ``name -> raw value`` function over ``row`` for queries and ordering (one dot-walk level)."""

    def get(name: str) -> str | None:
        head, _, tail = name.partition(".")
        value = row.get(head)
        if table == "sys_attachment" and head == "state":
            value = settle(app, table, row).get("state")
        if not tail:
            return value
        target = str(kind_of(table, head)).split(":", 1)[1]
        ref = app.store.get(target, value) if value else None
        return ref.get(tail) if ref else None

    return get


def select(
    app: SandboxApp, req: SandboxRequest, table: str, default_limit: int
) -> tuple[list[dict], int, int, int]:
    """Rows of one page: (page, total, offset, limit). Applies query, order and paging."""
    text = req.params.get("sysparm_query")
    if text is not None:
        parsed = eq.parse(text, lambda n: known_field(table, n))
    else:
        # The documented name/value filter form: ?active=true&number=INC0010001
        conds = [[eq.Condition(k, "=", v)] for k, v in req.params.items()
                 if not k.startswith("sysparm_") and known_field(table, k)]  # fmt: skip
        parsed = eq.Query(groups=[conds] if conds else [])
    try:
        limit = int(req.params.get("sysparm_limit") or default_limit)
        offset = int(req.params.get("sysparm_offset") or 0)
    except ValueError:
        raise HttpError(
            400, ("Invalid parameter", "sysparm_limit and sysparm_offset must be whole numbers")
        ) from None
    if offset < 0 or limit < 0:
        raise HttpError(400, ("Invalid parameter", "sysparm_offset must not be negative"))
    rows = [r for r in app.store.rows(table) if eq.evaluate(parsed, field_getter(app, table, r))]
    # An instance promises no order: none without ORDERBY, and none among rows that tie on
    # every ORDERBY field (the sorts below are stable, so shuffling first randomises ties).
    random.shuffle(rows)
    if parsed.order:
        for name, desc in reversed(parsed.order):
            rows.sort(
                key=lambda r, n=name: eq.compare_key(field_getter(app, table, r)(n) or ""),
                reverse=desc,
            )
    return rows[offset : offset + limit], len(rows), offset, limit


def page_headers(req: SandboxRequest, total: int, offset: int, limit: int) -> list[tuple[str, str]]:
    """``X-Total-Count`` and ``Link`` (first, prev even at offset 0 as recorded, next, last) of a list."""
    headers = []
    if (req.params.get("sysparm_no_count") or "").lower() != "true":
        headers.append(("X-Total-Count", str(total)))
    if (req.params.get("sysparm_suppress_pagination_header") or "").lower() != "true" and limit > 0:

        def link(off: int, rel: str) -> str:
            params = dict(req.params, sysparm_limit=str(limit), sysparm_offset=str(off))
            return (
                f'<{req.instance_url}{req.path}?{urlencode(params, quote_via=quote)}>;rel="{rel}"'
            )

        last = max(0, ((total - 1) // limit) * limit) if total else 0
        links = [
            link(0, "first"),
            link(offset - limit, "prev"),
        ]  # prev even at offset 0: as recorded
        if offset + limit < total:
            links.append(link(offset + limit, "next"))
        links.append(link(last, "last"))
        headers.append(("Link", ",".join(links)))
    return headers
