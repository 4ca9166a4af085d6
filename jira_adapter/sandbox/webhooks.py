"""Admin webhooks: registration (``/rest/webhooks/1.0/webhook``, or ``/sandbox/webhooks``) and delivery.

Reference note §8. A webhook has ``url``, ``events``, an optional JQL filter
(``filters["issue-related-events-section"]``) and an optional ``secret``. Deliveries
are POSTed by a background thread with ``X-Atlassian-Webhook-Identifier`` (the same on
retries and duplicates), ``X-Atlassian-Webhook-Flow``, ``X-Atlassian-Webhook-Retry`` and,
with a secret, ``X-Hub-Signature: sha256=<hex HMAC-SHA256 of the raw body>``. Failed
deliveries (408, 409, 425, 429, 5xx, no answer) are retried after
``webhook_retry_delays``; ``webhook_delay_seconds`` holds every delivery back and
``webhook_duplicates`` sends each twice, as a site may. Payloads are the v2 form
(comment bodies and descriptions as wiki text, even on Cloud): treat them as hints and
re-read through the API. ``/rest/api/3/webhook`` (dynamic webhooks) answers 403 to a
caller that is not an app.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import queue
import threading
import time
from typing import TYPE_CHECKING

import requests

from .adf import adf_to_wiki
from .jql import matches, parse_jql
from .site import user_json
from .wire import HttpError, JiraRequest, empty_response, jira_time, json_response

if TYPE_CHECKING:
    from .app import SandboxApp

log = logging.getLogger("jira_adapter.sandbox.webhooks")
EVENTS = {"jira:issue_created", "jira:issue_updated", "jira:issue_deleted", "comment_created",
          "comment_updated", "comment_deleted", "attachment_created", "attachment_deleted"}  # fmt: skip
RETRY_STATUSES = {408, 409, 425, 429} | set(range(500, 600))
_identifiers = itertools.count(int(time.time() * 1000))


class Webhooks:
    """Registered webhooks (stored) and a delivery thread with a log of recent attempts."""

    def __init__(self, app: SandboxApp):
        self.app = app
        self.queue: queue.Queue = queue.Queue()
        self.deliveries: list[dict] = []
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    # -- registration ----------------------------------------------------------------------
    def register(self, req: JiraRequest, data: dict) -> dict:
        """Store a webhook from ``{name, url, events, filters, excludeBody, secret}``; raises a 400."""
        if not isinstance(data, dict):
            raise HttpError(400, ["The webhook must be a JSON object."])
        url = str(data.get("url") or "")
        if not url.startswith(("http://", "https://")):
            raise HttpError(400, [], {"url": "The URL must be an absolute http or https URL."})
        events = data.get("events") or []
        if not isinstance(events, list) or not events or set(events) - EVENTS:
            raise HttpError(
                400,
                [],
                {"events": f"Events must be a non-empty list of: {', '.join(sorted(EVENTS))}."},
            )
        jql = ((data.get("filters") or {}).get("issue-related-events-section") or "").strip()
        if jql:
            parse_jql(jql)
        row = {"id": self.app.store.new_id("webhook"), "name": str(data.get("name") or url), "url": url,
               "events": events, "filters": {"issue-related-events-section": jql},
               "excludeBody": bool(data.get("excludeBody")), "enabled": data.get("enabled", True) is not False,
               "_secret": str(data.get("secret") or ""), "lastUpdatedUser": req.user["id"] if req.user else "",
               "lastUpdated": self.app.store.now_ms()}  # fmt: skip
        self.app.store.put("webhook", row)
        return row

    def public(self, req: JiraRequest, row: dict) -> dict:
        """A webhook as the API shows it (never its secret)."""
        out = {k: v for k, v in row.items() if not k.startswith("_") and k != "id"}
        return {"self": f"{req.site_url}/rest/webhooks/1.0/webhook/{row['id']}", **out}

    # -- delivery ----------------------------------------------------------------------------
    def emit(self, req: JiraRequest, event: str, issue: dict, *, comment: dict | None = None,
             attachment: dict | None = None, changelog: dict | None = None,
             issue_event_type_name: str | None = None) -> None:  # fmt: skip
        """Queue ``event`` about ``issue`` to every webhook that wants it (filter read on the current state)."""
        hooks = [
            h for h in self.app.store.rows("webhook") if h.get("enabled") and event in h["events"]
        ]
        if not hooks:
            return
        from .search_api import snapshot  # the filter reads the issue as search would, fresh

        snap = (
            snapshot(self.app, issue)
            if self.app.store.get("project", issue["project_id"])
            else None
        )
        payload = self._payload(
            req, event, issue, comment, attachment, changelog, issue_event_type_name
        )
        for hook in hooks:
            jql = hook["filters"].get("issue-related-events-section")
            if (
                jql
                and snap is not None
                and not matches(
                    parse_jql(jql).where, snap, tz="UTC", now_ms=self.app.store.now_ms()
                )
            ):
                continue
            body = dict(payload, matchedWebhookIds=[int(hook["id"])])
            if hook.get("excludeBody"):
                body = {}
            due = time.monotonic() + self.app.settings["webhook_delay_seconds"]
            copies = 2 if self.app.settings["webhook_duplicates"] else 1
            identifier = str(next(_identifiers))
            for _ in range(copies):
                self.queue.put((due, 0, hook["id"], identifier, event, json.dumps(body).encode()))
        self._start()

    def _payload(self, req, event, issue, comment, attachment, changelog, type_name) -> dict:
        app, tz = self.app, "UTC"
        project = app.store.get("project", issue["project_id"]) or {"id": "", "key": "", "name": ""}
        itype = next(
            (t for t in project.get("issuetypes", []) if t["id"] == issue["issuetype_id"]), {}
        )
        fields = {"summary": issue["summary"], "created": jira_time(issue["created"], tz),
                  "updated": jira_time(issue["updated"], tz), "description": adf_to_wiki(issue.get("description")),
                  "project": {"id": project["id"], "key": project["key"], "name": project["name"]},
                  "issuetype": {"id": itype.get("id"), "name": itype.get("name")}, "status": {"name": "To Do"}}  # fmt: skip
        body = {"timestamp": app.store.now_ms(), "webhookEvent": event, "user": user_json(app, req, req.user),
                "issue": {"id": issue["id"], "key": issue["key"], "self": f"{req.site_url}/rest/api/2/issue/{issue['id']}",
                          "fields": fields}}  # fmt: skip
        if type_name:
            body["issue_event_type_name"] = type_name
        if changelog:
            body["changelog"] = {"id": changelog["id"], "items": changelog["items"]}
        if comment:
            author = user_json(app, req, app.store.get("user", comment["author"]))
            body["comment"] = {"self": f"{req.site_url}/rest/api/2/issue/{issue['id']}/comment/{comment['id']}",
                               "id": comment["id"], "author": author, "body": adf_to_wiki(comment["body"]),
                               "updateAuthor": user_json(app, req, app.store.get("user", comment["update_author"])),
                               "created": jira_time(comment["created"], tz), "updated": jira_time(comment["updated"], tz),
                               "jsdPublic": True}  # fmt: skip
        if attachment:
            body["attachment"] = attachment
        return body

    def _start(self) -> None:
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self._run, name="jira-sandbox-webhooks", daemon=True
                )
                self.thread.start()

    def _run(self) -> None:
        while True:
            due, attempt, hook_id, identifier, event, data = self.queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                self.queue.put((due, attempt, hook_id, identifier, event, data))
                time.sleep(min(wait, 0.05))
                continue
            hook = self.app.store.get("webhook", hook_id)
            if hook is None:
                continue
            headers = {"Content-Type": "application/json; charset=utf-8",
                       "User-Agent": "Atlassian Webhook HTTP Client",
                       "X-Atlassian-Webhook-Identifier": identifier,
                       "X-Atlassian-Webhook-Flow": "Primary" if attempt == 0 else "Secondary",
                       "X-Atlassian-Webhook-Retry": str(attempt)}  # fmt: skip
            if hook.get("_secret"):
                digest = hmac.new(hook["_secret"].encode(), data, hashlib.sha256).hexdigest()
                headers["X-Hub-Signature"] = f"sha256={digest}"
            try:
                status = requests.post(
                    hook["url"], data=data, headers=headers, timeout=10
                ).status_code
            except requests.RequestException as exc:
                status = None
                log.info("webhook %s to %s failed: %s", event, hook["url"], exc)
            with self.lock:
                self.deliveries.append({"webhook": hook_id, "event": event, "identifier": identifier,
                                        "attempt": attempt, "status": status, "at": self.app.store.now_ms()})  # fmt: skip
                del self.deliveries[:-200]
            delays = self.app.settings["webhook_retry_delays"]
            if (status is None or status in RETRY_STATUSES) and attempt < len(delays):
                self.queue.put(
                    (
                        time.monotonic() + delays[attempt],
                        attempt + 1,
                        hook_id,
                        identifier,
                        event,
                        data,
                    )
                )


def admin_webhooks(app: SandboxApp, req: JiraRequest, hook_id: str | None = None):
    """``/rest/webhooks/1.0/webhook[/{id}]``: GET list/one, POST (201), DELETE (204); Jira admins only."""
    if not req.user.get("admin"):
        raise HttpError(
            403,
            ["You are not authorized to perform this action. Administrator rights are required."],
        )
    if hook_id is None:
        if req.method == "POST":
            return json_response(
                201, app.webhooks.public(req, app.webhooks.register(req, req.payload()))
            )
        return json_response(200, [app.webhooks.public(req, h) for h in app.store.rows("webhook")])
    row = app.store.get("webhook", hook_id)
    if row is None:
        raise HttpError(404, [f"No webhook with id {hook_id}."])
    if req.method == "DELETE":
        app.store.delete("webhook", hook_id)
        return empty_response(204)
    return json_response(200, app.webhooks.public(req, row))


def dynamic_webhooks(app: SandboxApp, req: JiraRequest):
    """``/rest/api/3/webhook``: only Connect and OAuth 2.0 apps may use it (§8.1)."""
    raise HttpError(403, ["Only Connect and OAuth 2.0 apps can use this operation."])
