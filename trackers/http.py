"""HTTP plumbing both tracker clients share: the retry policy, and how a request failed.

The ServiceNow and Jira clients retry transient errors the same way (exponential backoff
with jitter, honouring ``Retry-After``, bounded in attempts and seconds) and describe a
request that got no answer in the same words. Adapters import this; it imports no app.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import requests


@dataclass(frozen=True)
class RetryPolicy:
    """How transient errors are retried: at most ``max_attempts`` tries within ``max_total_seconds``.

    Waits ``Retry-After`` / ``X-RateLimit-Reset`` when the instance gives one (plus up to
    10 % jitter), else a random delay in [d/2, d] with d = ``base_delay`` × 2^(attempt-1),
    capped at ``max_delay``. Seconds throughout.
    """

    max_attempts: int = 4
    max_total_seconds: float = 60.0
    base_delay: float = 0.5
    max_delay: float = 20.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before try ``attempt + 1``."""
        if retry_after is not None:
            return retry_after + random.uniform(0, 0.1 * max(retry_after, 0.1))
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


NO_RETRY = RetryPolicy(max_attempts=1)


def not_sent(exc: requests.RequestException) -> bool:
    """True when the request surely never reached the instance (refused or timed-out connect)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    text = repr(exc)
    return isinstance(exc, requests.ConnectionError) and (
        "NewConnectionError" in text
        or "Connection refused" in text
        or "NameResolutionError" in text
    )


def failure_reason(exc: requests.RequestException) -> str:
    """A few words for why a request failed without an answer (for admin messages)."""
    if isinstance(exc, requests.ConnectTimeout):
        return "the connection timed out"
    if isinstance(exc, requests.Timeout):
        return "no answer within the timeout"
    text = repr(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "NameResolutionError" in text or "Name or service not known" in text:
        return "the host name does not resolve"
    if "SSLError" in text or isinstance(exc, requests.exceptions.SSLError):
        return "the TLS handshake failed"
    return exc.__class__.__name__
