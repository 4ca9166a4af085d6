"""The instance's HTML pages (no login): the incident list, the record page and its comment form.

``/`` lists the newest incidents; ``/nav_to.do?uri=incident.do%3Fsys_id%3D<sys_id>`` and
``/incident.do?sys_id=…`` show one record (number, descriptions, state, public comments,
attachment names) with a form that posts a comment as one of the sandbox's agents.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from .rules import record_write
from .schema import TABLES
from .wire import SYS_ID, SandboxRequest, SandboxResponse, empty_response, html_response

if TYPE_CHECKING:
    from .app import SandboxApp

PAGE_CSS = (
    "body{font:15px system-ui,sans-serif;margin:2rem;color:#1d2733} pre{white-space:pre-wrap;font:inherit}"
    " .meta{color:#5f6b7a;font-size:.9em} dt{font-weight:600} table{border-collapse:collapse}"
    " td,th{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #d9dee5}"
)


def incident_list_page(app: SandboxApp, req: SandboxRequest) -> SandboxResponse:
    """``/``: the newest incidents (by ``sys_updated_on``) with links to their record pages."""
    e = html.escape
    rows = sorted(
        app.store.find("incident"),
        key=lambda r: (r.get("sys_updated_on", ""), r["sys_id"]),
        reverse=True,
    )[:200]
    items = "".join(
        f'<tr><td><a href="/incident.do?sys_id={e(r["sys_id"])}">{e(r["number"])}</a></td>'
        f"<td>{e(r.get('short_description', ''))}</td><td>{e(r.get('sys_updated_on', ''))}</td>"
        f"<td>{e(r.get('sys_updated_by', ''))}</td></tr>"
        for r in rows
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Incidents | ServiceNow sandbox</title>
<style>{PAGE_CSS}</style></head>
<body><h1>Incidents</h1><p class="meta">ServiceNow sandbox on {e(req.instance_url)}: the REST API is under
<code>/api/now/</code> (basic authentication). Newest first.</p>
<table><tr><th>Number</th><th>Short description</th><th>Updated (UTC)</th><th>Updated by</th></tr>{items}</table>
</body></html>"""
    return html_response(200, page)


def record_comment(app: SandboxApp, req: SandboxRequest, sys_id: str) -> SandboxResponse:
    """``POST /incident.do?sys_id=…`` (form ``comment``, ``user_name``): add a public comment
    as one of the sandbox's agents, the way a person would in the instance's form."""
    row = app.store.get("incident", sys_id) if SYS_ID.match(sys_id) else None
    form = req.form_fields()
    user = app.store.user(form.get("user_name", ""))
    text = form.get("comment", "").strip()
    if row is None or user is None or not text:
        return html_response(
            400,
            "<!DOCTYPE html><title>Bad request</title><p>Pick an agent and write a comment.</p>",
        )
    record_write(app, "incident", row, {"comments": text}, user)
    return empty_response(303, [("Location", f"/incident.do?sys_id={sys_id}")])


def record_page(app: SandboxApp, req: SandboxRequest) -> SandboxResponse:
    """``/nav_to.do?uri=incident.do?sys_id=…`` and ``/incident.do?sys_id=…``: a plain HTML form view."""
    sys_id = req.params.get("sys_id", "")
    if req.method == "POST" and req.path == "/incident.do":
        return record_comment(app, req, sys_id)
    if req.path == "/nav_to.do":
        target = req.params.get("uri", "")
        page, _, qs = target.partition("?")
        if page.lstrip("/") != "incident.do":
            return html_response(404, "<!DOCTYPE html><title>Not found</title><p>Unknown page.</p>")
        sys_id = dict(parse_qsl(qs)).get("sys_id", "")
    row = app.store.get("incident", sys_id) if SYS_ID.match(sys_id) else None
    if row is None:
        return html_response(
            404, "<!DOCTYPE html><title>Record not found</title><h1>Record not found</h1>"
        )
    e = html.escape
    comments = sorted(app.store.find("sys_journal_field", element_id=sys_id, element="comments"),
                      key=lambda r: (r["sys_created_on"], r["sys_id"]))  # fmt: skip
    files = sorted(
        app.store.find("sys_attachment", table_sys_id=sys_id),
        key=lambda r: r["sys_created_on"],
    )

    def author(user_name: str) -> str:
        user = app.store.user(user_name)
        return (user or {}).get("name") or user_name

    items = "".join(
        f'<li class="comment" id="c-{r["sys_id"]}"><span class="meta">{e(r["sys_created_on"])} – '
        f"{e(author(r['sys_created_by']))}</span><pre>{e(r['value'])}</pre></li>"
        for r in comments
    )
    attachments = "".join(f'<li class="attachment">{e(r["file_name"])}</li>' for r in files)
    agents = "".join(
        f'<option value="{e(u["user_name"])}">{e(u.get("name") or u["user_name"])}</option>'
        for u in sorted(app.store.find("sys_user"), key=lambda u: u["user_name"] != "beth.anglin")
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(row["number"])} | Incident | ServiceNow sandbox</title>
<style>{PAGE_CSS}</style></head>
<body><p><a href="/">All incidents</a></p><h1 id="number">{e(row["number"])}</h1>
<dl><dt>Short description</dt><dd id="short_description">{e(row.get("short_description", ""))}</dd>
<dt>Description</dt><dd><pre id="description">{e(row.get("description", ""))}</pre></dd>
<dt>State</dt><dd id="state">{e(TABLES["incident"]["state"][1].get(row.get("state", ""), ""))}</dd></dl>
<h2>Additional comments</h2><ul id="comments">{items}</ul>
<form method="post" action="/incident.do?sys_id={e(sys_id)}"><label>Add a comment as
<select name="user_name">{agents}</select></label><br><textarea name="comment" rows="3" cols="70"></textarea><br>
<button type="submit">Post comment</button></form>
<h2>Attachments</h2><ul id="attachments">{attachments}</ul>
<p class="meta">sys_id {e(sys_id)}</p></body></html>"""
    return html_response(200, page)
