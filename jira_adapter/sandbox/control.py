"""The control endpoints tests and the demo use: ``/sandbox/…`` (no authentication, never counted or faulted).

See the package docstring for the JSON each takes: ``faults``, ``stats``, ``clock``,
``settings``, ``users``, ``projects``, ``move``, ``webhooks`` and ``webhooks/deliveries``.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from .store import token_hash
from .wire import HttpError, JiraRequest, json_response

if TYPE_CHECKING:
    from .app import SandboxApp

USER_KEYS = {"email", "token", "display_name", "time_zone", "active", "admin", "browse", "create",
             "attach", "groups", "expired"}  # fmt: skip


def control(app: SandboxApp, req: JiraRequest):
    """Answer one ``/sandbox/…`` request."""
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
        if path == "/sandbox/clock":
            if method == "POST":
                app.store.clock_offset = float(req.payload().get("offset_seconds", 0))
            return json_response(
                200, {"now_ms": app.store.now_ms(), "offset_seconds": app.store.clock_offset}
            )
        if path == "/sandbox/settings":
            if method == "POST":
                app.update_settings(req.payload())
            return json_response(200, app.settings)
        if path == "/sandbox/users":
            if method == "POST":
                return json_response(200, public_user(user_upsert(app, req.payload())))
            return json_response(200, [public_user(u) for u in app.store.rows("user")])
        if path == "/sandbox/projects" and method == "POST":
            return json_response(200, project_upsert(app, req.payload()))
        if path == "/sandbox/move" and method == "POST":
            return json_response(200, app.move(req, req.payload()))
        if path == "/sandbox/webhooks":
            if method == "POST":
                return json_response(
                    201, app.webhooks.public(req, app.webhooks.register(req, req.payload()))
                )
            return json_response(
                200, [app.webhooks.public(req, h) for h in app.store.rows("webhook")]
            )
        if path == "/sandbox/webhooks/deliveries":
            with app.webhooks.lock:
                return json_response(200, list(app.webhooks.deliveries))
    except HttpError:
        raise
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise HttpError(400, [f"Invalid sandbox control request: {exc}"]) from None
    raise HttpError(404, [f"Unknown sandbox control endpoint {method} {path}"])


def public_user(user: dict) -> dict:
    """A user as the control endpoints show it (no token hash)."""
    return {k: v for k, v in user.items() if not k.startswith("_")}


def user_upsert(app: SandboxApp, data: dict) -> dict:
    """Create or change a user by ``email``: ``token``, ``display_name``, ``time_zone``, ``active``,
    ``admin``, ``browse``/``create`` (project keys or ``["*"]``), ``attach``, ``groups``, ``expired``.
    """
    from zoneinfo import ZoneInfo

    if not isinstance(data, dict) or not data.get("email") or set(data) - USER_KEYS:
        raise ValueError(f"email is required; keys are {', '.join(sorted(USER_KEYS))}")
    email = str(data["email"]).lower()
    with app.store.lock:
        user = next((u for u in app.store.rows("user") if u["email"] == email), None)
        if user is None:
            local = email.split("@")[0]
            digest = hashlib.sha1(email.encode()).hexdigest()
            number = 10000 + int(digest[:6], 16) % 90000
            account_id = "5f1a" + digest[:20]
            user = {"id": account_id if app.flavour == "cloud" else f"JIRAUSER{number}",
                    "account_id": account_id, "name": local, "key": f"JIRAUSER{number}", "email": email,
                    "display_name": local.replace(".", " ").title(), "time_zone": "UTC", "active": True,
                    "admin": False, "browse": ["*"], "create": ["*"], "attach": True, "groups": ["jira-software-users"],
                    "expired": False, "_token": ""}  # fmt: skip
        else:
            user = dict(user)
        for key in ("display_name", "time_zone"):
            if key in data:
                user[key] = str(data[key])
        ZoneInfo(user["time_zone"])
        for key in ("active", "admin", "attach", "expired"):
            if key in data:
                user[key] = bool(data[key])
        for key in ("browse", "create", "groups"):
            if key in data:
                if not isinstance(data[key], list):
                    raise ValueError(f"{key} must be a list")
                user[key] = [str(v) for v in data[key]]
        if "token" in data:
            user["_token"] = token_hash(str(data["token"]))
        app.store.put("user", user)
    return user


def project_upsert(app: SandboxApp, data: dict) -> dict:
    """Create or change a project: ``{"key", "name", "type", "issuetypes": ["Task", "Bug", …]}``.

    Types keep their ids when they stay; a type left out is removed (issues of it keep
    it, as a site keeps issues of a type taken out of a scheme). A name ending in
    ``!subtask`` is a sub-task type.
    """
    if not isinstance(data, dict) or not str(data.get("key", "")).isupper():
        raise ValueError("key (upper case) is required")
    with app.store.lock:
        project = next((p for p in app.store.rows("project") if p["key"] == data["key"]), None)
        if project is None:
            pid = str(10000 + len(app.store.rows("project")) * 10 + 10)
            project = {"id": pid, "key": data["key"], "name": data.get("name") or data["key"],
                       "type": data.get("type") or "software", "issuetypes": []}  # fmt: skip
        else:
            project = dict(project)
        for key in ("name", "type"):
            if key in data:
                project[key] = str(data[key])
        if "issuetypes" in data:
            old = {t["name"]: t for t in project["issuetypes"]}
            types, next_id = [], int(project["id"]) * 10
            used = {t["id"] for p in app.store.rows("project") for t in p["issuetypes"]}
            for raw in data["issuetypes"]:
                name, _, flag = str(raw).partition("!")
                if name in old:
                    types.append(old[name])
                    continue
                while str(next_id) in used:
                    next_id += 1
                used.add(str(next_id))
                types.append({"id": str(next_id), "name": name, "subtask": flag == "subtask",
                              "description": f"A {name.lower()} in {project['name']}."})  # fmt: skip
            if not any(not t["subtask"] for t in types):
                raise ValueError("a project needs at least one standard (non-subtask) issue type")
            kept = {t["id"] for t in types}
            retired = [t for t in old.values() if t["id"] not in kept]
            project["retired_types"] = project.get("retired_types", []) + retired
            project["issuetypes"] = types
        app.store.put("project", project)
    return project
