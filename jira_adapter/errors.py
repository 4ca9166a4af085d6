"""Turning Jira answers into the tracker error types of ``trackers.errors``.

Jira's error envelope is ``{"errorMessages": [...], "errors": {"field": "message"}}``,
either part possibly empty, so both are read (jira-api.md §9.1); a 401 usually comes
as ``{"message": ..., "status-code": 401}`` or as a non-JSON page (§6.1).

Transient (retry later): connection errors and timeouts, 429, 5xx, 409 (a conflicting
update). Permanent: 400/413/422 and other 4xx (TrackerBadRequest), 401
(TrackerAuthenticationError), 403 (TrackerPermissionError), 404 (TrackerNotFound: Jira
says "not found" also for "not visible to you"). Messages name the site and the call,
never a token.
"""

from __future__ import annotations

import json

import requests

from trackers.errors import (
    NotATrackerInstance,
    TrackerAuthenticationError,
    TrackerBadRequest,
    TrackerError,
    TrackerNotFound,
    TrackerPermissionError,
    TransientTrackerError,
)
from trackers.http import failure_reason, not_sent  # noqa: F401  (used as errors.*)
from trackers.retry_after import parse_retry_after

MAX_DETAIL = 500


class NonJSONAnswer(NotATrackerInstance):
    """A REST call was answered with an HTML or other non-JSON page (not Jira, a login or proxy page)."""


def retry_after_seconds(response: requests.Response) -> float | None:
    """Seconds from ``Retry-After`` (Jira Cloud sends delay-seconds), by the project's one parser."""
    return parse_retry_after(response.headers.get("Retry-After"))


def envelope_text(payload) -> str:
    """Everything Jira's error answer says: ``errorMessages``, then ``field: message`` pairs,
    then a bare ``message`` (the 401 form); '' when it says nothing."""
    if not isinstance(payload, dict):
        return ""
    parts = [str(m) for m in payload.get("errorMessages") or [] if m]
    errors = payload.get("errors")
    if isinstance(errors, dict):
        parts += [f"{field}: {message}" for field, message in errors.items() if message]
    if not parts and payload.get("message"):
        parts.append(str(payload["message"]))
    return "; ".join(parts)[:MAX_DETAIL]


def parse_json(response: requests.Response):
    """The JSON body; raises NonJSONAnswer (with the content type) when it is not JSON."""
    try:
        return json.loads(response.content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        kind = response.headers.get("Content-Type", "").split(";")[0] or "an empty body"
        raise NonJSONAnswer(
            f"answered {response.status_code} with {kind}, not the JSON of Jira's REST API",
            status=response.status_code,
        ) from None


def error_for(response: requests.Response, payload, what: str, *, site: str) -> TrackerError:
    """The error for a non-2xx answer to ``what`` (``GET /rest/api/3/issue/10001``) from ``site``."""
    status = response.status_code
    said = envelope_text(payload) or response.reason or f"HTTP {status}"
    if status == 401:
        return TrackerAuthenticationError(
            f"Jira at {site} refused the credentials (401) on {what}", status=status, detail=said
        )
    if status == 403:
        return TrackerPermissionError(
            f"Jira at {site} refused access (403) on {what}", status=status, detail=said
        )
    if status == 404:
        return TrackerNotFound(
            f"Jira at {site} found nothing, or nothing this account may see (404), on {what}",
            status=status,
            detail=said,
        )
    if status == 429 or status == 409 or status >= 500:
        reason = response.headers.get("RateLimit-Reason", "")
        kind = "is rate limiting requests" if status == 429 else f"had a server error {status}"
        if status == 409:
            kind = "reported a conflicting update (409)"
        return TransientTrackerError(
            f"Jira at {site} {kind}{f' ({reason})' if reason else ''} on {what}",
            status=status,
            detail=said,
            retry_after=retry_after_seconds(response),
        )
    if status == 413:
        return TrackerBadRequest(
            f"Jira at {site} refused {what} as too large or over a per-issue limit (413)",
            status=status,
            detail=said,
        )
    if status == 410:
        return TrackerBadRequest(
            f"Jira at {site} no longer offers {what} (410 Gone)", status=status, detail=said
        )
    return TrackerBadRequest(
        f"Jira at {site} refused {what} ({status})", status=status, detail=said
    )
