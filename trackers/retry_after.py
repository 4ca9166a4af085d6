"""The one ``Retry-After`` parser of the project (tracker clients and node-to-node transport).

RFC 9110 §10.2.3: ``Retry-After`` is either delay-seconds (a non-negative integer) or an
HTTP-date. ServiceNow answers 429 with delay-seconds and ``X-RateLimit-Reset`` (epoch
seconds); Jira Cloud answers 429 with delay-seconds; a peer node answers 503 with delay-seconds.
"""

from __future__ import annotations

import email.utils
import time


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait (>= 0.0) from a ``Retry-After`` value, or None when absent or unreadable.

    Accepts delay-seconds (``"120"``, and ``"1.5"`` as some servers send) and HTTP-dates
    (``"Wed, 21 Oct 2026 07:28:00 GMT"``; a date in the past gives 0.0). ``now`` is the
    current epoch time in seconds (default ``time.time()``), for tests.
    """
    if value is None:
        return None
    value = str(value).strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def rate_limit_reset_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds until an ``X-RateLimit-Reset`` epoch time (ServiceNow's rate-limit rules), or None."""
    if not value:
        return None
    try:
        reset = float(str(value).strip())
    except ValueError:
        return None
    return max(0.0, reset - (time.time() if now is None else now))
