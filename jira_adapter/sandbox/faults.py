"""Injected faults (``/sandbox/faults``) and the per-issue write limit, as a Cloud site answers them.

A fault is ``{"status": 429, "retry_after": 2, "reason": "jira-burst-based", "count": 3,
"paths": "/rest/api/3/issue", "methods": "POST", "latency_ms": 20}``: the next ``count``
matching API requests (all of them when absent) get that status. 429 and 503 carry the
reference note §7.1 headers (``Retry-After`` only when ``retry_after`` is given; ``0`` is
allowed, as a broken gateway sends it), 401 the non-envelope body, others the envelope.

The per-issue write limit (§7.2) is always on unless switched off: more than 20 writes
in 2 s or 100 in 30 s to one issue answer 429 with ``RateLimit-Reason:
jira-per-issue-on-write``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .wire import HttpError, unauthorized

REASONS = {
    "jira-quota-global-based",
    "jira-quota-tenant-based",
    "jira-burst-based",
    "jira-per-issue-on-write",
}
_SETTINGS = {"status", "retry_after", "reason", "count", "paths", "methods", "latency_ms"}


@dataclass
class FaultRule:
    """One injected fault; ``count`` None means until cleared."""

    status: int
    retry_after: float | None = None
    reason: str = "jira-burst-based"
    count: int | None = None
    paths: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)

    def applies(self, method: str, path: str) -> bool:
        """Whether this fault is meant for a request with this method and path."""
        if self.paths and not any(path.startswith(p) for p in self.paths):
            return False
        return not self.methods or method in self.methods


def rate_headers(retry_after: float | None, reason: str) -> list[tuple[str, str]]:
    """The headers of a limited answer: ``Retry-After``, ``X-RateLimit-*``, ``RateLimit-Reason``."""
    reset = datetime.fromtimestamp(time.time() + (retry_after or 1), UTC)
    headers = [
        ("X-RateLimit-Limit", "100"),
        ("X-RateLimit-Remaining", "0"),
        ("X-RateLimit-Reset", reset.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"),
        ("X-RateLimit-NearLimit", "true"),
        ("RateLimit-Reason", reason),
    ]
    if retry_after is not None:
        headers.insert(0, ("Retry-After", f"{retry_after:g}"))
    return headers


class Faults:
    """Fault settings changed at run time (thread-safe)."""

    def __init__(self, base_latency_ms: float = 0.0):
        self.lock = threading.Lock()
        self.base_latency_ms = base_latency_ms
        self.latency_ms = base_latency_ms
        self.rule: FaultRule | None = None

    def set(self, data: dict) -> None:
        """Replace the settings from a control request's JSON (raises ValueError)."""
        if not isinstance(data, dict) or set(data) - _SETTINGS:
            raise ValueError(f"fault settings are {', '.join(sorted(_SETTINGS))}")

        def _list(value) -> list[str]:
            items = value.split(",") if isinstance(value, str) else list(value or [])
            return [str(v).strip() for v in items if str(v).strip()]

        rule = None
        if data.get("status") is not None:
            status = int(data["status"])
            if not 400 <= status <= 599:
                raise ValueError("status must be an HTTP error status (400-599)")
            reason = str(data.get("reason") or "jira-burst-based")
            if reason not in REASONS:
                raise ValueError(f"reason must be one of {', '.join(sorted(REASONS))}")
            rule = FaultRule(
                status=status,
                retry_after=float(data["retry_after"])
                if data.get("retry_after") is not None
                else None,
                reason=reason,
                count=int(data["count"]) if data.get("count") is not None else None,
                paths=_list(data.get("paths")),
                methods=[m.upper() for m in _list(data.get("methods"))],
            )
        with self.lock:
            self.latency_ms = float(data.get("latency_ms", self.base_latency_ms))
            self.rule = rule

    def clear(self) -> None:
        """Back to the start-up latency and no fault."""
        with self.lock:
            self.latency_ms, self.rule = self.base_latency_ms, None

    def take(self, method: str, path: str) -> FaultRule | None:
        """The fault for this request, counting it down; None for a normal answer."""
        with self.lock:
            rule = self.rule
            if rule is None or not rule.applies(method, path):
                return None
            if rule.count is not None:
                if rule.count <= 0:
                    return None
                rule.count -= 1
            return rule

    def state(self) -> dict:
        """What ``GET /sandbox/faults`` answers."""
        with self.lock:
            return {
                "latency_ms": self.latency_ms,
                "fault": None if self.rule is None else dict(self.rule.__dict__),
            }


def fault_error(rule: FaultRule, flavour: str) -> HttpError:
    """The error an injected fault answers with."""
    if rule.status in (429, 503):
        message = "Rate limit exceeded." if rule.status == 429 else "Service Unavailable"
        return HttpError(
            rule.status, [message], headers=rate_headers(rule.retry_after, rule.reason)
        )
    if rule.status == 401:
        return unauthorized(flavour)
    messages = {403: "You do not have permission to perform this operation.",
                404: "The requested resource could not be found.",
                500: "Internal server error"}  # fmt: skip
    return HttpError(rule.status, [messages.get(rule.status, f"Injected fault {rule.status}")])


class WriteLimiter:
    """Jira Cloud's per-issue write limit: ``limits`` of (writes, seconds) per issue."""

    def __init__(self, limits=((20, 2.0), (100, 30.0))):
        self.limits = limits
        self.enabled = True
        self.lock = threading.Lock()
        self.hits: dict[str, deque] = defaultdict(deque)

    def hit(self, issue_id: str) -> None:
        """Count one write to ``issue_id``; raise the 429 when it would pass a limit."""
        if not self.enabled:
            return
        now = time.monotonic()
        longest = max(seconds for _, seconds in self.limits)
        with self.lock:
            hits = self.hits[issue_id]
            while hits and hits[0] <= now - longest:
                hits.popleft()
            for count, seconds in self.limits:
                recent = [t for t in hits if t > now - seconds]
                if len(recent) >= count:
                    wait = max(1, math.ceil(recent[-count] + seconds - now))
                    raise HttpError(
                        429,
                        ["Rate limit exceeded."],
                        headers=rate_headers(wait, "jira-per-issue-on-write"),
                    )
            hits.append(now)
