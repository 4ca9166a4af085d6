"""Jira admin webhooks (``/rest/webhooks/1.0/webhook``, jira-api.md §8): payload → hints, signature.

A webhook is only a hint (the scan re-reads the issue through the REST API): its body may
be late, duplicated or out of order, and its comment text is v2-formatted even on Cloud.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from trackers.interface import WebhookHint


def parse_webhook(body: bytes) -> list[WebhookHint]:
    """The issue an admin webhook announces (``issue.id`` of ``jira:issue_*``, ``comment_*``
    and other issue events); [] for events about no issue (an ``attachment_created``
    without its issue also raises ``jira:issue_updated``). Raises ValueError on a body
    that is not a Jira webhook. Payloads are hints only: the scan re-reads the issue."""
    try:
        data = json.loads(body or b"")
    except ValueError:
        raise ValueError("The body must be the JSON of a Jira webhook.") from None
    if not isinstance(data, dict) or not isinstance(data.get("webhookEvent"), str):
        raise ValueError("This is not a Jira webhook: webhookEvent is missing.")
    issue = data.get("issue")
    issue_id = str(issue.get("id") or "") if isinstance(issue, dict) else ""
    if not issue_id:
        return []
    if not issue_id.isdigit() or len(issue_id) > 18:
        raise ValueError("issue.id must be a Jira issue id (digits).")
    return [WebhookHint(entity_id=issue_id, mod_count=None)]


def verify_signature(body: bytes, signature: str | None, secret: str) -> None:
    """Check ``X-Hub-Signature: sha256=<hex HMAC-SHA256 of the raw body>`` against ``secret``.

    Returns None when it matches, or when ``secret`` is empty (no secret configured).
    Raises ValueError in an admin's words when the header is missing or wrong.
    """
    if not secret:
        return
    algorithm, _, given = (signature or "").strip().partition("=")
    if not given or algorithm.lower() != "sha256":
        raise ValueError(
            "The webhook has no X-Hub-Signature (sha256=…) header: enter the same secret in "
            "Jira's webhook settings."
        )
    expected = hmac.new(secret.encode(), body or b"", hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given.strip().lower()):
        raise ValueError("The webhook's X-Hub-Signature does not match the configured secret.")
