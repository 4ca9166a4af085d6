"""Injected faults: what ``/sandbox/faults`` sets and how a faulted request is answered.

See the package docstring for the settings (status, Retry-After and X-RateLimit-*
headers, count, hang, the hibernating page, the quota error, path and method filters).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from .wire import (
    E_AUTH,
    E_NOT_FOUND,
    E_RIGHTS_READ,
    STATUS_TEXT,
    SandboxResponse,
    empty_response,
    error_response,
    html_response,
    json_response,
)

E_RATE = ("Rate limit exceeded", "Rate limit of 100 requests per hour for Table API exceeded")
E_QUOTA = (
    "Transaction cancelled: maximum execution time exceeded",
    "Transaction cancelled: maximum execution time exceeded Check logs for error trace or enable "
    "glide.rest.debug property to verify REST request processing",
)
HIBERNATING_PAGE = """<!DOCTYPE html>
<html><head><title>Instance Hibernating page</title></head>
<body><h1>Your instance is hibernating</h1>
<p>This developer instance is asleep. Sign in to the developer portal to wake it up.</p>
</body></html>"""


@dataclass
class FaultRule:
    """One injected fault; ``count`` None means until cleared. See the package docstring."""

    status: int | None = None
    retry_after: float | None = None
    rate_limit_reset: float | None = None
    count: int | None = None
    hang: bool = False
    hang_seconds: float | None = None
    html: bool = False
    quota: bool = False
    paths: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)

    def applies(self, method: str, path: str) -> bool:
        """Whether this fault is meant for a request with this method and path."""
        if self.paths and not any(path.startswith(p) for p in self.paths):
            return False
        return not self.methods or method in self.methods


class Faults:
    """Fault settings changed at run time through ``/sandbox/faults`` (thread-safe)."""

    def __init__(self, base_latency_ms: float):
        self.lock = threading.Lock()
        self.base_latency_ms = base_latency_ms
        self.latency_ms = base_latency_ms
        self.rule: FaultRule | None = None
        self.generation = 0

    def set(self, data: dict) -> None:
        """Replace the fault settings from a control request's JSON (raises ValueError)."""

        def _list(value) -> list[str]:
            if not value:
                return []
            items = value.split(",") if isinstance(value, str) else list(value)
            return [str(v).strip() for v in items if str(v).strip()]

        unknown = set(data) - {
            "latency_ms", "status", "retry_after", "rate_limit_reset", "count", "hang",
            "hang_seconds", "html", "quota", "paths", "methods",
        }  # fmt: skip
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        rule = FaultRule(
            status=int(data["status"]) if data.get("status") is not None else None,
            retry_after=float(data["retry_after"]) if data.get("retry_after") is not None else None,
            rate_limit_reset=float(data["rate_limit_reset"])
            if data.get("rate_limit_reset") is not None
            else None,
            count=int(data["count"]) if data.get("count") is not None else None,
            hang=bool(data.get("hang")),
            hang_seconds=float(data["hang_seconds"]) if data.get("hang_seconds") else None,
            html=bool(data.get("html")),
            quota=bool(data.get("quota")),
            paths=_list(data.get("paths")),
            methods=[m.upper() for m in _list(data.get("methods"))],
        )
        if rule.status is not None and not 100 <= rule.status <= 599:
            raise ValueError("status must be an HTTP status between 100 and 599")
        with self.lock:
            self.latency_ms = float(data.get("latency_ms", self.base_latency_ms))
            active = rule.status is not None or rule.hang or rule.html or rule.quota
            self.rule = rule if active else None
            self.generation += 1

    def clear(self) -> None:
        """Back to the start-up latency and no fault."""
        with self.lock:
            self.latency_ms = self.base_latency_ms
            self.rule = None
            self.generation += 1

    def take(self, method: str, path: str) -> FaultRule | None:
        """The fault to apply to this request, counting it down; None for a normal answer."""
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
        """What ``GET /sandbox/faults`` answers: ``{"latency_ms", "fault"}``."""
        with self.lock:
            rule = self.rule
            return {
                "latency_ms": self.latency_ms,
                "fault": None if rule is None else {k: v for k, v in rule.__dict__.items()},
            }


def fault_response(faults: Faults, rule: FaultRule, *, hang_seconds: float) -> SandboxResponse:
    """The answer for an injected fault (after holding the request when ``rule.hang``).

    A hang lasts ``rule.hang_seconds`` (else ``hang_seconds``) or until the faults change.
    """
    if rule.hang:
        generation = faults.generation
        deadline = time.monotonic() + (rule.hang_seconds or hang_seconds)
        while time.monotonic() < deadline and faults.generation == generation:
            time.sleep(0.05)
    if rule.html:
        return html_response(rule.status or 200, HIBERNATING_PAGE)
    if rule.quota:
        return error_response(rule.status or 500, E_QUOTA)
    status = rule.status
    if status is None:
        return error_response(503, ("Service Unavailable", "The sandbox was told to hang"))
    headers: list[tuple[str, str]] = []
    if status == 429:
        if rule.retry_after is not None or rule.rate_limit_reset is not None:
            headers = [
                ("X-RateLimit-Limit", "100"),
                ("X-RateLimit-Rule", "d4ac3fd2c0a8010e0016b3b9d6ee1a07"),
            ]
            if rule.retry_after is not None:
                headers.append(("Retry-After", f"{rule.retry_after:g}"))
            reset = time.time() + (
                rule.rate_limit_reset
                if rule.rate_limit_reset is not None
                else rule.retry_after or 0
            )
            headers.append(("X-RateLimit-Reset", str(int(reset + 0.999))))
        return error_response(429, E_RATE, headers)
    if status == 202:
        return empty_response(202, [("Content-Length", "0")])
    if status == 401:
        return error_response(401, E_AUTH, [("WWW-Authenticate", 'Basic realm="Service-now"')])
    if status == 403:
        return error_response(403, E_RIGHTS_READ)
    if status == 404:
        return error_response(404, E_NOT_FOUND)
    if status < 400:
        return json_response(status, {"result": []})
    return error_response(status, (STATUS_TEXT.get(status, "Error"), f"Injected fault {status}"))
