"""Turning ServiceNow answers into the tracker error types of ``trackers.errors``.

Transient (retry later): timeouts and connection errors, 429, 5xx, a GET answered 202
(requests queued on one session), a non-JSON page (a hibernating developer instance,
an SSO login page) and "Transaction cancelled: maximum execution time exceeded".
Permanent (raise at once): 401 (after any token refresh), 403, 404, 400 and other 4xx,
and a 2xx whose JSON lacks the ``result`` envelope. Every error carries the instance's
own ``message`` and ``detail`` when it sent them (ServiceNow docs, "REST API HTTP
response codes"; error envelope ``{"error": {"message", "detail"}, "status": "failure"}``).
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import requests

from trackers.errors import (
    AttachmentRefused,
    NotATrackerInstance,
    TrackerAuthenticationError,
    TrackerBadRequest,
    TrackerError,
    TrackerNotFound,
    TrackerPermissionError,
    TrackerUnavailable,
    TransientTrackerError,
)
from trackers.http import failure_reason, not_sent  # noqa: F401  (used as errors.*)
from trackers.retry_after import parse_retry_after, rate_limit_reset_seconds

QUOTA_TEXT = "maximum execution time exceeded"


class TransactionCancelled(TransientTrackerError):
    """The instance cancelled the transaction after its quota (60 s for the Table API); ask for less."""


class NonJSONAnswer(TransientTrackerError):
    """The instance answered an HTML or other non-JSON page (hibernating, login page, proxy error).

    ``hibernating`` is True when the page says the instance is hibernating.
    """

    def __init__(self, message: str, *, hibernating: bool = False, **kw):
        super().__init__(message, **kw)
        self.hibernating = hibernating


class InstanceHibernating(NonJSONAnswer, TrackerUnavailable):
    """A developer instance answered with its "Your instance is hibernating" page: nothing
    works until someone wakes it from the developer portal (servicenow-api.md §1.7)."""


def retry_after_seconds(response: requests.Response) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP date) or ``X-RateLimit-Reset`` (epoch).

    Both parsed by the project's one parser, ``trackers.retry_after``.
    """
    seconds = parse_retry_after(response.headers.get("Retry-After"))
    if seconds is not None:
        return seconds
    return rate_limit_reset_seconds(response.headers.get("X-RateLimit-Reset"))


def envelope_error(payload) -> tuple[str, str]:
    """(message, detail) of ServiceNow's error envelope, or ('', '')."""
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        err = payload["error"]
        return str(err.get("message") or ""), str(err.get("detail") or "")
    return "", ""


def parse_json(response: requests.Response):
    """The JSON body, or raises NonJSONAnswer when the body is not JSON."""
    try:
        return json.loads(response.content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        text = response.content[:2000].decode("utf-8", "replace").lower()
        hibernating = "hibernat" in text
        kind = (
            response.headers.get("Content-Type", "unknown content").split(";")[0] or "an empty body"
        )
        if hibernating:
            parts = urlsplit(response.url or "")
            where = (
                f"{parts.scheme}://{parts.netloc}" if parts.netloc else "the ServiceNow instance"
            )
            raise InstanceHibernating(
                f"The instance {where} is hibernating: wake it up from the ServiceNow developer "
                "portal; syncing resumes by itself when it answers again.",
                status=response.status_code,
                hibernating=True,
            ) from None
        message = f"The instance answered {response.status_code} with {kind}, not JSON."
        raise NonJSONAnswer(message, status=response.status_code, hibernating=False) from None


def error_for(response: requests.Response, payload, what: str) -> TrackerError:
    """The error for a non-2xx answer. ``what`` names the call, e.g. ``GET /api/now/table/incident``."""
    status = response.status_code
    message, detail = envelope_error(payload)
    said = message or response.reason or f"HTTP {status}"
    if QUOTA_TEXT in (message + detail).lower():
        return TransactionCancelled(
            f"ServiceNow cancelled {what}: maximum execution time exceeded",
            status=status,
            detail=detail,
        )
    if status == 401:
        return TrackerAuthenticationError(
            f"ServiceNow refused the credentials ({said}) on {what}", status=status, detail=detail
        )
    if status == 403:
        return TrackerPermissionError(
            f"ServiceNow refused access ({said}) on {what}", status=status, detail=detail
        )
    if status == 404:
        return TrackerNotFound(
            f"ServiceNow found nothing ({said}) on {what}", status=status, detail=detail
        )
    if status == 429:
        return TransientTrackerError(
            f"ServiceNow is rate limiting requests ({said}) on {what}",
            status=status,
            detail=detail,
            retry_after=retry_after_seconds(response),
        )
    if status >= 500:
        return TransientTrackerError(
            f"ServiceNow had a server error {status} ({said}) on {what}",
            status=status,
            detail=detail,
            retry_after=retry_after_seconds(response),
        )
    return TrackerBadRequest(
        f"ServiceNow refused the request ({said}) on {what}", status=status, detail=detail
    )


def result_of(payload, response: requests.Response, what: str):
    """The ``result`` of a 2xx JSON answer; raises when the envelope is missing."""
    if isinstance(payload, dict) and "result" in payload:
        return payload["result"]
    message, detail = envelope_error(payload)
    if QUOTA_TEXT in (message + detail).lower():
        raise TransactionCancelled(
            f"ServiceNow cancelled {what}: maximum execution time exceeded",
            status=response.status_code,
            detail=detail,
        )
    raise NotATrackerInstance(
        f"The answer to {what} is JSON but not a ServiceNow result (no 'result' envelope).",
        status=response.status_code,
        detail=message,
    )


_SIZE_WORDS = re.compile(r"max_size|maximum (?:attachment |file )?size|too large|exceeds", re.I)


def attachment_refused(
    exc: TrackerBadRequest, file_name: str, instance_url: str
) -> AttachmentRefused:
    """An upload's 400/413 as AttachmentRefused; ``too_large`` when it names the size limit.

    ServiceNow refuses files over ``com.glide.attachment.max_size`` (1024 MB by default;
    docs, Attachment API); the refusal is a client error on the upload only, so the rest
    of the incident can go on.
    """
    said = " ".join(p for p in (exc.detail, exc.message) if p)
    too_large = exc.status == 413 or bool(_SIZE_WORDS.search(said))
    reason = (
        f"over the instance's maximum attachment size (com.glide.attachment.max_size): {exc.detail}"
        if too_large and exc.detail
        else exc.detail or exc.message
    )
    return AttachmentRefused(
        f"{instance_url} refused the attachment {file_name!r}: {reason}",
        reason=reason,
        too_large=too_large,
        status=exc.status,
        detail=exc.detail,
    )
