"""The Jira sandbox's WSGI application: settings, authentication, routing, and the write events.

:class:`SandboxApp` holds one site (store, settings, faults, statistics, search index,
webhooks). ``/sandbox/…`` goes to :mod:`.control` (never counted, faulted or
authenticated); every other request is counted by ``METHOD /path`` (ids as ``{id}``,
keys as ``{key}``), delayed by the configured latency, answered by an injected fault if
one applies, authenticated (Cloud: Basic ``email:api-token``; Data Center: ``Bearer``
personal access token; 401 otherwise, not the envelope) and routed through Werkzeug.
An unknown path is Jira's 404 ``null for uri``; an unexpected error a 500 envelope.
"""

from __future__ import annotations

import base64
import logging
import re
import secrets
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule

from . import attachments_api as att
from . import comments_api as com
from . import issues_api as iss
from . import search_api as srch
from . import servicedesk_api as jsm
from .control import control
from .faults import Faults, WriteLimiter, fault_error
from .site import issue_get
from .store import Store, token_hash
from .webhooks import Webhooks, admin_webhooks, dynamic_webhooks
from .wire import HttpError, JiraRequest, error_response, unauthorized

log = logging.getLogger("jira_adapter.sandbox")


@dataclass
class SandboxConfig:
    """Start-up settings of one sandbox (see the command's options); seconds and bytes."""

    flavour: str = "cloud"
    latency_ms: float = 0.0
    index_lag_seconds: float | None = None  # None: 1 s on Cloud, 0 on DC
    upload_limit: int | None = None  # None: 1 GiB on Cloud, 10 MiB on DC
    per_issue_writes: bool = True


def _api_rules(api: str, flavour: str) -> list[Rule]:
    r = Rule
    rules = [
        r(f"{api}/myself", endpoint=iss.myself),
        r(f"{api}/serverInfo", endpoint=iss.server_info),
        r(f"{api}/project", endpoint=iss.project_list),
        r(f"{api}/project/<pid>", endpoint=iss.project_one),
        r(f"{api}/issue/createmeta/<pid>/issuetypes", endpoint=iss.createmeta_types),
        r(f"{api}/issue/createmeta/<pid>/issuetypes/<tid>", endpoint=iss.createmeta_fields),
        r(f"{api}/issue", endpoint=iss.issue_create, methods=["POST"]),
        r(f"{api}/issue/<ik>", endpoint=iss.issue_read, methods=["GET"]),
        r(f"{api}/issue/<ik>", endpoint=iss.issue_edit, methods=["PUT"]),
        r(f"{api}/issue/<ik>", endpoint=iss.issue_delete, methods=["DELETE"]),
        r(f"{api}/issue/<ik>/changelog", endpoint=iss.changelog),
        r(f"{api}/issue/<ik>/properties", endpoint=iss.property_keys),
        r(
            f"{api}/issue/<ik>/properties/<key>",
            endpoint=iss.property_one,
            methods=["GET", "PUT", "DELETE"],
        ),
        r(f"{api}/issue/<ik>/comment", endpoint=com.comments, methods=["GET", "POST"]),
        r(
            f"{api}/issue/<ik>/comment/<cid>",
            endpoint=com.comment_one,
            methods=["GET", "PUT", "DELETE"],
        ),
        r(f"{api}/comment/<cid>/properties/<key>", endpoint=com.comment_property),
        r(f"{api}/issue/<ik>/attachments", endpoint=att.upload, methods=["POST"]),
        r(f"{api}/attachment/meta", endpoint=att.settings),
        r(f"{api}/attachment/<att_id>", endpoint=att.metadata, methods=["GET", "DELETE"]),
        r("/rest/api/2/search", endpoint=srch.search_v2, methods=["GET", "POST"]),
        r(
            "/rest/servicedeskapi/request/<ik>/comment",
            endpoint=jsm.request_comments,
            methods=["GET", "POST"],
        ),
        r("/rest/webhooks/1.0/webhook", endpoint=admin_webhooks, methods=["GET", "POST"]),
        r(
            "/rest/webhooks/1.0/webhook/<hook_id>",
            endpoint=admin_webhooks,
            methods=["GET", "DELETE"],
        ),
    ]
    if flavour == "cloud":
        rules += [
            r(f"{api}/project/search", endpoint=iss.project_search),
            r(f"{api}/attachment/content/<att_id>", endpoint=att.content),
            r(f"{api}/search/jql", endpoint=srch.search_jql, methods=["GET", "POST"]),
            r(f"{api}/search", endpoint=srch.search_gone, methods=["GET", "POST"]),
            r(f"{api}/webhook", endpoint=dynamic_webhooks, methods=["GET", "POST", "DELETE"]),
            r("/media/file/<media_id>/binary", endpoint=att.media),
            r("/rest/api/2/serverInfo", endpoint=iss.server_info),
        ]
    else:
        rules.append(r("/secure/attachment/<att_id>/<filename>", endpoint=att.secure_download))
    return rules


NO_AUTH = {iss.server_info, att.media}


class SandboxApp:
    """A WSGI callable serving one Jira site (Cloud v3 or Data Center v2) from ``store``."""

    def __init__(self, store: Store, config: SandboxConfig | None = None):
        self.store = store
        self.config = config or SandboxConfig()
        self.flavour = self.config.flavour
        self.api = "/rest/api/3" if self.flavour == "cloud" else "/rest/api/2"
        cloud = self.flavour == "cloud"
        lag, limit = self.config.index_lag_seconds, self.config.upload_limit
        self.settings = {
            "index_lag_seconds": (1.0 if cloud else 0.0) if lag is None else lag,
            "upload_limit": (1024**3 if cloud else 10 * 1024**2) if limit is None else limit,
            "attachments_enabled": True, "embedded_comments": 20, "comment_limit": 5000,
            "attachment_limit": 2000, "per_issue_writes": self.config.per_issue_writes,
            "rfc2231_fails": False, "webhook_delay_seconds": 0.0, "webhook_duplicates": False,
            "webhook_retry_delays": [1.0, 2.0, 4.0], "indexed_properties": ["*"],
        }  # fmt: skip
        self.faults = Faults(self.config.latency_ms)
        self.limiter = WriteLimiter()
        self.limiter.enabled = self.settings["per_issue_writes"]
        self.stats: Counter[str] = Counter()
        self.stats_lock = threading.Lock()
        self.secret = secrets.token_bytes(32)
        self.urls = Map(
            _api_rules(self.api, self.flavour), strict_slashes=False, merge_slashes=False
        )
        self.index = srch.Index(self)
        self.webhooks = Webhooks(self)

    def update_settings(self, data: dict) -> None:
        """Change run-time settings (``/sandbox/settings``); raises ValueError for an unknown one."""
        if not isinstance(data, dict) or set(data) - set(self.settings):
            raise ValueError(f"settings are {', '.join(sorted(self.settings))}")
        for key, value in data.items():
            current = self.settings[key]
            if isinstance(current, bool):
                value = bool(value)
            elif isinstance(current, (int, float)):
                value = type(current)(value)
                if value < 0:
                    raise ValueError(f"{key} must be >= 0")
            elif key == "indexed_properties":
                value = [str(v) for v in value]
            elif isinstance(current, list):
                value = [float(v) for v in value]
            self.settings[key] = value
        self.limiter.enabled = self.settings["per_issue_writes"]

    # -- WSGI -------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        req = JiraRequest(environ)
        try:
            response = self.handle(req)
        except HttpError as exc:
            response = error_response(exc)
        except Exception:  # noqa: BLE001 - a site answers 500; the log keeps the trace
            log.error("sandbox error on %s %s:\n%s", req.method, req.path, traceback.format_exc())
            response = error_response(HttpError(500, ["Internal server error"]))
        return response(environ, start_response)

    def handle(self, req: JiraRequest):
        """Route one request (see the module docstring); raises ``HttpError`` for error answers."""
        if req.path.startswith("/sandbox/"):
            return control(self, req)
        self._count(req)
        fault = self.faults.take(req.method, req.path)
        if self.faults.latency_ms > 0:
            time.sleep(self.faults.latency_ms / 1000.0)
        if fault is not None:
            raise fault_error(fault, self.flavour)
        try:
            handler, values = self.urls.bind("sandbox").match(req.path, method=req.method)
        except NotFound:
            raise HttpError(404, [f"null for uri: {req.url}"]) from None
        except MethodNotAllowed:
            raise HttpError(405, ["Method Not Allowed"]) from None
        if handler not in NO_AUTH:
            req.user = self.authenticate(req)
        elif self.store.rows("user"):
            req.user = self.store.rows("user")[0] | {"time_zone": "UTC"}
        return handler(self, req, **values)

    def authenticate(self, req: JiraRequest) -> dict:
        """The caller: Cloud Basic ``email:api-token``, DC ``Bearer <PAT>``; raises the 401."""
        header = req.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        user = None
        if self.flavour == "cloud" and scheme.lower() == "basic":
            try:
                email, _, token = base64.b64decode(credential).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                email, token = "", ""
            found = [u for u in self.store.rows("user") if u["email"] == email.lower()]
            if found and token and secrets.compare_digest(found[0]["_token"], token_hash(token)):
                user = found[0]
        elif self.flavour == "dc" and scheme.lower() == "bearer" and credential:
            digest = token_hash(credential.strip())
            user = next((u for u in self.store.rows("user") if u["_token"] == digest), None)
        if user is None or not user.get("active", True) or user.get("expired"):
            raise unauthorized(self.flavour)
        return dict(user)

    def _count(self, req: JiraRequest) -> None:
        route = re.sub(r"(?<!/api)/\d+(?=/|$)", "/{id}", req.path)
        route = re.sub(r"/[A-Za-z][A-Za-z0-9_]*-\d+(?=/|$)", "/{key}", route)
        with self.stats_lock:
            self.stats[f"{req.method} {route}"] += 1
            self.stats["total"] += 1

    # -- write events -----------------------------------------------------------------------
    def touch(self, issue_id: str, now_ms: int) -> dict:
        """Bump an issue's ``updated`` (comment, attachment) and re-index it; returns the issue."""
        with self.store.lock:
            issue = self.store.get("issue", issue_id)
            issue["updated"] = max(now_ms, issue["updated"] + 1)
            self.store.put("issue", issue)
        self.index.record(issue_id, issue)
        return issue

    def add_history(self, req: JiraRequest, issue: dict, items: list[dict]) -> None:
        """Append a changelog entry to ``issue`` (not saved) and bump its ``updated``."""
        now = self.store.now_ms()
        issue["updated"] = max(now, issue["updated"] + 1)
        issue.setdefault("history", []).append(
            {
                "id": self.store.new_id("history"),
                "author": req.user["id"],
                "created": now,
                "items": items,
            }
        )

    def issue_changed(
        self, req: JiraRequest, issue: dict, event: str, type_name: str, changelog=None
    ) -> None:
        """Re-index an issue after a write and raise its webhook."""
        self.index.record(issue["id"], issue)
        self.webhooks.emit(req, event, issue, changelog=changelog, issue_event_type_name=type_name)

    def move(self, req: JiraRequest, data: dict) -> dict:
        """``/sandbox/move {"issue": idOrKey, "project": "KEY", "by": email}``: a new key; the old one still resolves.

        The issue keeps its type when the target project has one of that name, else it
        gets the target's first standard type. Raises ``jira:issue_updated`` with ``Key``
        and ``project`` changelog items (reference note §1.4).
        """
        by = str(data.get("by") or "")
        actor = next((u for u in self.store.rows("user") if u["email"] == by.lower()), None)
        bot = self.store.meta_get("integration_email")
        admins = [u for u in self.store.rows("user") if u.get("admin")]
        req.user = dict(actor or next((u for u in admins if u["email"] != bot), admins[0]))
        issue = issue_get(self, req, str(data["issue"]))
        target = next(
            (p for p in self.store.rows("project") if p["key"] == str(data["project"]).upper()),
            None,
        )
        if target is None or target["id"] == issue["project_id"]:
            raise ValueError("project must be another existing project's key")
        with self.store.lock:
            issue = self.store.get("issue", issue["id"])
            source = self.store.get("project", issue["project_id"])
            old_type = next(
                t
                for t in source["issuetypes"] + source.get("retired_types", [])
                if t["id"] == issue["issuetype_id"]
            )
            new_type = next(
                (t for t in target["issuetypes"] if t["name"] == old_type["name"]), None
            ) or next(t for t in target["issuetypes"] if not t["subtask"])
            old_key = issue["key"]
            issue["key"] = f"{target['key']}-{self.store.next_key_number(target['key'])}"
            issue["old_keys"] = issue.get("old_keys", []) + [old_key]
            issue["project_id"], issue["issuetype_id"] = target["id"], new_type["id"]
            items = [{"field": "Key", "fieldtype": "jira", "fieldId": "issuekey", "from": None,
                      "fromString": old_key, "to": None, "toString": issue["key"]},
                     {"field": "project", "fieldtype": "jira", "fieldId": "project", "from": source["id"],
                      "fromString": source["name"], "to": target["id"], "toString": target["name"]}]  # fmt: skip
            if new_type["id"] != old_type["id"]:
                items.append({"field": "issuetype", "fieldtype": "jira", "fieldId": "issuetype", "from": old_type["id"],
                              "fromString": old_type["name"], "to": new_type["id"], "toString": new_type["name"]})  # fmt: skip
            self.add_history(req, issue, items)
            self.store.put("issue", issue)
        self.issue_changed(
            req, issue, "jira:issue_updated", "issue_moved", changelog=issue["history"][-1]
        )
        return {"id": issue["id"], "key": issue["key"], "old_keys": issue["old_keys"]}
