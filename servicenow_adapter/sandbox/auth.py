"""Who is calling: Basic and OAuth Bearer authentication, ``/oauth_token.do``, table rights.

A sys_user's ``_acl`` maps a table to ``allow``, ``deny`` (403), ``hide`` (rows silently
left out, still counted), ``empty`` (the table answers 200 with no rows and
``X-Total-Count: 0``, as ``sys_journal_field`` does for a user without its read ACL) or
``hide:<encoded query>`` (only matching rows left out after paging, still counted), as
``/sandbox/users`` or ``--hide`` / ``--hide-journal`` set it. 401 bodies and the token endpoint's answers are as recorded.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from . import query as eq
from .render import field_getter
from .schema import known_field
from .wire import E_AUTH, HttpError, SandboxRequest, SandboxResponse, error_response, json_response

if TYPE_CHECKING:
    from .app import SandboxApp


def authenticate(app: SandboxApp, req: SandboxRequest) -> dict:
    """The calling sys_user from Basic or Bearer authorization; raises 401 otherwise."""
    header = req.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    user = None
    if scheme.lower() == "basic":
        try:
            name, _, password = base64.b64decode(credentials).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            name, password = "", ""
        user = app.store.authenticate(name, password)
    elif scheme.lower() == "bearer":
        found = app.store.token_lookup(credentials.strip(), "access")
        if found:
            user = app.store.user(found[0])
    if user is None:
        raise HttpError(401, E_AUTH, [("WWW-Authenticate", 'Basic realm="Service-now"')])
    return user


def table_rights(user: dict, table: str) -> str:
    """``allow``, ``deny`` (403), ``hide`` (rows silently left out) or ``empty`` (no rows, count 0).

    ``hide:<encoded query>`` hides only the rows matching the query; it counts as ``allow``
    here and is applied by :func:`visible`.
    """
    value = (user.get("_acl") or {}).get(table, "allow")
    return "allow" if value.startswith("hide:") else value


def visible(app: SandboxApp, user: dict, table: str, rows: list[dict]) -> list[dict]:
    """Rows this user may see: a ``hide:<query>`` ACL removes matching rows after paging."""
    value = (user.get("_acl") or {}).get(table, "allow")
    if not value.startswith("hide:"):
        return rows
    hidden = eq.parse(value[5:], lambda n: known_field(table, n))
    return [r for r in rows if not eq.evaluate(hidden, field_getter(app, table, r))]


def oauth_token(app: SandboxApp, req: SandboxRequest) -> SandboxResponse:
    """``POST /oauth_token.do``: password and refresh_token grants (form-encoded)."""
    denied = (401, {"error_description": "access_denied", "error": "server_error"})
    if req.method != "POST":
        return error_response(405, ("Method not Supported", None))
    form = req.form_fields(keep_blank_values=True)
    cfg = app.config
    if (
        form.get("client_id") != cfg.oauth_client_id
        or form.get("client_secret") != cfg.oauth_client_secret
    ):
        return json_response(*denied)
    grant = form.get("grant_type")
    if grant == "password":
        user = app.store.authenticate(form.get("username", ""), form.get("password", ""))
        if user is None:
            return json_response(*denied)
        current = app.store.token_current(user["user_name"], cfg.oauth_client_id)
        if current:
            access, left = current
        else:
            access = app.store.token_issue(
                "access", user["user_name"], cfg.oauth_client_id, cfg.token_lifetime
            )
            left = cfg.token_lifetime
        refresh = app.store.token_issue(
            "refresh", user["user_name"], cfg.oauth_client_id, cfg.refresh_token_lifetime
        )
        body = {"access_token": access, "refresh_token": refresh, "scope": "useraccount",
                "token_type": "Bearer", "expires_in": int(left)}  # fmt: skip
        return json_response(200, body)
    if grant == "refresh_token":
        found = app.store.token_lookup(form.get("refresh_token", ""), "refresh")
        if not found or found[1] != cfg.oauth_client_id:
            return json_response(*denied)
        access = app.store.token_issue("access", found[0], cfg.oauth_client_id, cfg.token_lifetime)
        body = {"access_token": access, "scope": "useraccount", "token_type": "Bearer",
                "expires_in": int(cfg.token_lifetime)}  # fmt: skip
        return json_response(200, body)
    return json_response(
        400, {"error_description": "unsupported_grant_type", "error": "server_error"}
    )
