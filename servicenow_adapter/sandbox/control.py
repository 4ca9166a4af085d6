"""The control endpoints tests use: ``/sandbox/faults``, ``stats``, ``users``, ``tokens/expire``,
``clock``, ``limits``.

No authentication (the sandbox listens on 127.0.0.1 by default); not counted in the
statistics and never faulted. See the package docstring for the JSON each one takes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .roles import roles_set
from .schema import TABLES
from .store import hash_password, new_sys_id
from .wire import HttpError, SandboxRequest, SandboxResponse, json_response

if TYPE_CHECKING:
    from .app import SandboxApp


def control(app: SandboxApp, req: SandboxRequest) -> SandboxResponse:
    """Answer a ``/sandbox/…`` control request; bad input is a 400, an unknown path a 404."""
    path, method = req.path.rstrip("/"), req.method
    try:
        if path == "/sandbox/faults":
            if method == "POST":
                app.faults.set(req.payload())
            elif method == "DELETE":
                app.faults.clear()
            return json_response(200, app.faults.state())
        if path == "/sandbox/stats":
            with app.stats_lock:
                snapshot = dict(app.stats)
                if method == "DELETE":
                    app.stats.clear()
            return json_response(200, snapshot)
        if path == "/sandbox/users":
            if method == "POST":
                return json_response(200, user_upsert(app, req.payload()))
            return json_response(200, [user_shown(u) for u in app.store.rows("sys_user")])
        if path == "/sandbox/tokens/expire" and method == "POST":
            data = req.payload() or {}
            return json_response(
                200, {"expired": app.store.tokens_expire(data.get("kind", "access"))}
            )
        if path == "/sandbox/clock":
            if method == "POST":
                clock_set(app, req.payload() or {})
            return json_response(200, {
                "now": app.store.now_text(), "offset_seconds": app.store.clock_offset,
                "frozen": app.store.frozen_at is not None,
            })  # fmt: skip
        if path == "/sandbox/limits":
            if method == "POST":
                data = req.payload() or {}
                if "max_attachment_bytes" in data:
                    value = data["max_attachment_bytes"]
                    if value is not None and (int(value) < 0 or isinstance(value, bool)):
                        raise ValueError("max_attachment_bytes must be a whole number >= 0 or null")
                    app.max_attachment_bytes = None if value is None else int(value)
            elif method == "DELETE":
                app.max_attachment_bytes = app.config.max_attachment_bytes
            return json_response(200, {"max_attachment_bytes": app.max_attachment_bytes})
    except (ValueError, TypeError, AttributeError) as exc:
        raise HttpError(400, ("Invalid sandbox control request", str(exc))) from None
    raise HttpError(404, ("Unknown sandbox control endpoint", path))


def clock_set(app: SandboxApp, data: dict) -> None:
    """``{"offset_seconds": N}`` shifts the clock; ``{"frozen": true}`` stops it on the current
    second (every write then has the same ``sys_created_on``/``sys_updated_on``), ``false``
    lets it run again. Both keys may come together (the offset applies first)."""
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    if "offset_seconds" in data:
        app.store.clock_offset = float(data["offset_seconds"])
    if "frozen" in data:
        app.store.frozen_at = None
        if data["frozen"] in (True, "true"):
            app.store.frozen_at = app.store.now()


def user_upsert(app: SandboxApp, data: dict) -> dict:
    """Create or change a sys_user: ``user_name`` plus any of ``password``, ``name``, ``active``,
    ``acl``, ``roles`` (role names; a new user without it gets ``["itil"]``)."""
    if not isinstance(data, dict) or not data.get("user_name"):
        raise ValueError("user_name is required")
    with app.store.lock:
        row = app.store.user(data["user_name"])
        if row is None:
            now = app.store.now_text()
            row = {name: "" for name in TABLES["sys_user"]}
            row.update(sys_id=new_sys_id(), user_name=data["user_name"], active="true",
                       sys_created_on=now, sys_created_by="admin", sys_updated_on=now,
                       sys_updated_by="admin", sys_mod_count="0")  # fmt: skip
        if "name" in data:
            row["name"] = str(data["name"])
        if "active" in data:
            row["active"] = "true" if data["active"] in (True, "true") else "false"
        if "password" in data:
            row["_password"] = hash_password(str(data["password"]))
        if "acl" in data:
            acl = data["acl"] or {}
            bad = {
                v
                for v in acl.values()
                if v not in ("allow", "deny", "hide", "empty") and not str(v).startswith("hide:")
            }
            if bad:
                raise ValueError(
                    "acl values must be allow, deny, hide, empty or hide:<encoded query>"
                )
            row["_acl"] = dict(acl)
        app.store.put("sys_user", row)
        if "roles" in data or row.get("_roles") is None:  # a new user works incidents (itil)
            row = roles_set(app.store, row, data.get("roles", ["itil"]))
    return user_shown(row)


def user_shown(row: dict) -> dict:
    """A sys_user as ``/sandbox/users`` shows it: its fields plus ``acl`` and ``roles``."""
    return {k: v for k, v in row.items() if not k.startswith("_")} | {
        "acl": row.get("_acl") or {},
        "roles": row.get("_roles") or [],
    }
