"""How hard this node may call one tracker instance: in-flight limit, pace, and "busy until".

Per instance URL, shared by every process of the node (web and Celery workers):

* a **concurrency limit**: at most ``TRACKER_MAX_CONCURRENCY`` requests in flight (4). Each
  request holds a *lease* (an id with an expiry) from before it is sent until its answer
  is read (for a streamed attachment, until the stream is closed; a long stream renews its
  lease). A worker killed with SIGKILL never releases its lease: it lapses ``ttl`` seconds
  after it was taken or renewed (the client's request timeout + 5 s).
* a **token bucket**: ``TRACKER_RATE_PER_SECOND`` requests a second (100) with bursts of
  ``TRACKER_RATE_BURST`` (100). A caller that finds no token *reserves* the next one (the
  bucket goes below zero) and sleeps until its turn, so waiting callers keep their order
  and the rate holds exactly, whatever the number of processes.
* **busy until**: a ``429`` with ``Retry-After`` (or ServiceNow's ``X-RateLimit-Reset``)
  holds *every* request of the node to that instance until then, not only the one refused:
  ServiceNow's limits count per user and per hour (docs, "Inbound REST API rate limiting"),
  so the instance's own answer says when calls work again, and the rate is left alone.
  Capped at ``MAX_BUSY_SECONDS`` (a bogus header must not stop a node for days).
* **AIMD** on a ``429`` that says nothing of when: the rate halves (at most once a second,
  so one burst of 429s answered to four requests in flight counts once; never below 1 a
  second) and grows back every second by a twentieth of the configured rate (so from half
  to full in 10 s). An earlier version cut on every 429 and grew back by 1 a second every
  10 s: under the soak's 429s with ``Retry-After: 1`` a node fell to 1.5 requests a second
  and stayed there (issue 11's undrained N = 1,000 run).

Waiting is bounded: :meth:`Throttle.acquire` takes the caller's remaining retry budget and
raises :class:`InstanceBusy` (a ``TransientTrackerError`` with ``retry_after``) when the
wait would exceed it, so the engine's queue retries later instead of a worker blocking.
Limits are per instance URL and a waiting caller holds nothing while it sleeps (each
storage transaction takes one instance's lock for microseconds), so a busy instance never
holds up requests to another.

Storage (``TRACKER_THROTTLE_URL``, :mod:`trackers.throttle_stores`): ``redis://`` when the
node's broker or cache is Redis (the default then), through redis-py: one JSON value per
instance, a request's acquire and release each one Lua script call that mirrors
:func:`acquire_step` / :func:`release_step` (a test runs both on the same cases), the rare
operations a compare-and-set of the Python result. Otherwise ``file://<VAR_DIR>/throttle``:
one small JSON file per instance under an ``fcntl`` lock. A file lock and not a database
table, because ``trackers`` has no models and may import no app, every process of one node
shares its VAR_DIR, a lock is released by the kernel when its process dies, and it costs
no query per request. ``memory://`` is one process only (tests, scripts). The Python
functions below are the reference maths, driven by the unit tests with an injected clock.
When the store fails (Redis down, a disk error) the throttle goes on in this process's
memory and logs it once a minute.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import TransientTrackerError
from .throttle_stores import MemoryStore, store_for

log = logging.getLogger(__name__)

#: Longest "busy until" honoured (seconds).
MAX_BUSY_SECONDS = 3600.0
#: AIMD: the rate grows by RECOVER_SHARE of the configured rate (at least 1 request a
#: second) every RECOVER_EVERY seconds.
RECOVER_SHARE = 0.05
RECOVER_EVERY = 1.0
#: A second 429 within this many seconds of a cut does not cut again.
CUT_GAP = 1.0
#: The rate never falls below this (requests a second).
MIN_RATE = 1.0
#: How often a caller looks again for a free slot (seconds).
POLL = 0.02


@dataclass(frozen=True)
class Limits:
    """``max_concurrency`` requests in flight (0: no limit); ``rate_per_second`` with ``burst``
    tokens (rate 0: no limit)."""

    max_concurrency: int = 4
    rate_per_second: float = 20.0
    burst: int = 20


@dataclass(frozen=True)
class Decision:
    """What :func:`acquire_step` decided: ``outcome`` is ``granted``, ``wait`` (a token is
    reserved, sleep ``seconds``), ``full`` (no free slot, look again in ``seconds``),
    ``busy`` (Retry-After, ``seconds`` left) or ``too_long`` (the next token is ``seconds``
    away, beyond the budget; nothing reserved). ``reserved``: the caller holds a token."""

    outcome: str
    seconds: float = 0.0
    reserved: bool = False
    rate: float = 0.0
    in_flight: int = 0


class InstanceBusy(TransientTrackerError):
    """The node may not call the instance within the caller's retry budget: it asked to wait
    (429 ``Retry-After``, ``status`` 429), or this node's own limits would make it wait too
    long. ``retry_after`` is the estimated wait in seconds."""


# -- the maths: pure functions of a JSON-able state dict and a time (epoch seconds) -----------


def recover_step(limits: Limits) -> float:
    """Requests a second the rate grows back by every RECOVER_EVERY seconds after a cut."""
    return max(1.0, RECOVER_SHARE * float(limits.rate_per_second))


def current_rate(state: dict, limits: Limits, now: float) -> float:
    """Requests a second allowed now: the configured rate, or the rate after the last cut
    plus :func:`recover_step` for every RECOVER_EVERY seconds since (additive increase)."""
    if limits.rate_per_second <= 0:
        return math.inf
    cut_at = state.get("cut_at")
    if cut_at is None:
        return limits.rate_per_second
    steps = math.floor(max(0.0, now - cut_at) / RECOVER_EVERY)
    return min(
        limits.rate_per_second,
        state.get("rate_after_cut", MIN_RATE) + recover_step(limits) * steps,
    )


def refill(state: dict, limits: Limits, now: float) -> float:
    """Add the tokens earned since the last refill (at most ``burst``); returns the tokens."""
    rate = current_rate(state, limits, now)
    if "tokens" not in state:
        tokens = float(limits.burst)
    else:
        elapsed = max(0.0, now - state.get("refilled_at", now))
        tokens = min(float(limits.burst), state["tokens"] + rate * elapsed)
    state["tokens"], state["refilled_at"] = tokens, max(now, state.get("refilled_at", now))
    return tokens


def live_leases(state: dict, now: float) -> dict[str, float]:
    """The leases not yet lapsed ({lease id: expiry}); lapsed ones are dropped from ``state``."""
    leases = {k: v for k, v in (state.get("leases") or {}).items() if v > now}
    state["leases"] = leases
    return leases


def acquire_step(
    state: dict,
    limits: Limits,
    now: float,
    *,
    lease_id: str,
    ttl: float,
    reserved: bool,
    budget: float,
) -> Decision:
    """One look at the instance's state (mutated in place): busy, then a token, then a slot.

    ``reserved``: the caller already holds a token from an earlier ``wait``. ``budget``:
    seconds the caller may still wait for a token. ``ttl``: the lease's life in seconds.
    """
    busy = state.get("busy_until", 0.0) - now
    if busy > 0:
        return Decision("busy", busy, reserved)
    rate = current_rate(state, limits, now)
    if not reserved:
        if limits.rate_per_second > 0:
            tokens = refill(state, limits, now)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / rate
            if wait > budget:
                return Decision("too_long", wait, False, rate)
            state["tokens"] = tokens - 1
            if wait > 0:
                return Decision("wait", wait, True, rate)
        reserved = True
    leases = live_leases(state, now)
    if 0 < limits.max_concurrency <= len(leases):
        soonest = min(leases.values()) - now
        return Decision("full", min(POLL, soonest), True, rate, len(leases))
    leases[lease_id] = now + ttl
    return Decision("granted", 0.0, True, rate, len(leases))


def release_step(state: dict, lease_id: str) -> None:
    """Give the slot back (nothing happens for a lease already lapsed or released)."""
    (state.get("leases") or {}).pop(lease_id, None)


def renew_step(state: dict, lease_id: str, until: float) -> bool:
    """Move a held lease's expiry to ``until``; False when it had already lapsed."""
    leases = state.get("leases") or {}
    if lease_id not in leases:
        return False
    leases[lease_id] = until
    return True


def too_fast_step(state: dict, limits: Limits, now: float, retry_after: float | None) -> None:
    """A 429. When the instance said how long (``retry_after``, seconds), every caller waits
    that long (never shortening an earlier wait) and the rate stays; otherwise the rate
    halves (once per CUT_GAP) and the bucket empties."""
    if retry_after:
        mark_step(state, now, retry_after)
        return
    if limits.rate_per_second > 0 and now - state.get("cut_at", -math.inf) >= CUT_GAP:
        rate = current_rate(state, limits, now)
        refill(state, limits, now)
        state["rate_after_cut"] = max(min(MIN_RATE, limits.rate_per_second), rate / 2)
        state["cut_at"] = now
        state["tokens"] = min(state["tokens"], 0.0)


def mark_step(state: dict, now: float, seconds: float) -> None:
    """Busy until ``now + seconds`` (capped at MAX_BUSY_SECONDS); never shortens."""
    seconds = min(max(0.0, float(seconds)), MAX_BUSY_SECONDS)
    state["busy_until"] = max(state.get("busy_until", 0.0), now + seconds)


def _node_store_url() -> str:
    try:
        from django.conf import settings

        if not settings.configured:
            return "memory://"
        url = getattr(settings, "TRACKER_THROTTLE_URL", "")
        if not url and getattr(settings, "VAR_DIR", None):
            url = f"file://{Path(settings.VAR_DIR) / 'throttle'}"
        return url or "memory://"
    except Exception:  # noqa: BLE001 - outside Django (a script) one process's memory will do
        return "memory://"


def _node_limits() -> Limits:
    try:
        from django.conf import settings

        if not settings.configured:
            return Limits()
        return Limits(
            max_concurrency=int(getattr(settings, "TRACKER_MAX_CONCURRENCY", 4)),
            rate_per_second=float(getattr(settings, "TRACKER_RATE_PER_SECOND", 100.0)),
            burst=max(1, int(getattr(settings, "TRACKER_RATE_BURST", 100))),
        )
    except Exception:  # noqa: BLE001
        return Limits()


def instance_key(instance_url: str) -> str:
    """The storage key of an instance: a hash of its URL (no trailing slash)."""
    return hashlib.sha256(instance_url.rstrip("/").encode()).hexdigest()[:32]


def _acquire_args(limits, now, lease_id, ttl, reserved, budget) -> list:
    """``acquire_step``'s arguments in the order of the Redis script (throttle_stores._STEP)."""
    return [
        repr(now), lease_id, repr(ttl), int(reserved), repr(budget), limits.max_concurrency,
        repr(float(limits.rate_per_second)), limits.burst, recover_step(limits), RECOVER_EVERY,
        MIN_RATE, POLL,
    ]  # fmt: skip


def _decision(reply: list[str]) -> Decision:
    outcome, seconds, reserved, rate, in_flight = reply
    return Decision(outcome, float(seconds), reserved == "1", float(rate), int(in_flight))


# -- the throttle --------------------------------------------------------------------------


class Throttle:
    """The node's limits on every tracker instance it calls (also the old ``BusyGate``).

    ``store``: a store object or ``TRACKER_THROTTLE_URL`` string (None: from settings at each
    call, so a test's settings apply). ``limits``: :class:`Limits` (None: from settings).
    ``clock`` gives epoch seconds and ``sleep`` waits; both injectable for tests.
    """

    def __init__(
        self,
        store: Any = None,
        *,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._store = store_for(store) if isinstance(store, str) else store
        self._limits = limits
        self.clock, self.sleep = clock, sleep
        self._fallback = MemoryStore()
        self._warned_at = -math.inf

    @property
    def limits(self) -> Limits:
        """The limits in force (given, or read from settings)."""
        return self._limits or _node_limits()

    def _run(
        self, instance_url: str, fn: Callable[[dict], Any], native: tuple | None = None
    ) -> Any:
        """``fn(state)`` on the instance's state in the store (or ``native``: the store's own
        version of it, ``(op, args, parse)``, when it has one: Redis runs it in Lua)."""
        key = instance_key(instance_url)
        store = self._store or store_for(_node_store_url())
        try:
            if native is not None and hasattr(store, "native"):
                op, args, parse = native
                return parse(store.native(key, op, args))
            return store.transact(key, fn)
        except OSError as exc:  # Redis down, disk full: go on in this process's memory
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                log.warning(
                    "The shared throttle state is unavailable (%s); this process keeps its own.",
                    exc.__class__.__name__,
                )
            return self._fallback.transact(key, fn)

    def acquire(
        self,
        instance_url: str,
        *,
        budget: float,
        busy_budget: float | None = None,
        ttl: float = 35.0,
        label: str = "The instance",
        what: str = "the request",
    ) -> Lease:
        """Wait for a token and a free slot; returns the :class:`Lease` (release it after).

        ``budget``: seconds this caller may wait for its turn; ``busy_budget``: for a
        Retry-After (default ``budget``; 0 fails at once). ``ttl``: lease life in seconds.
        ``label`` and ``what`` name the tracker and request in the error. Raises
        :class:`InstanceBusy` when the wait would exceed the budget.
        """
        limits = self.limits
        busy_budget = budget if busy_budget is None else busy_budget
        started, reserved, lease_id = self.clock(), False, uuid.uuid4().hex
        while True:
            now = self.clock()
            left = budget - (now - started)
            decision = self._run(
                instance_url,
                lambda s, now=now, reserved=reserved, left=left: acquire_step(
                    s, limits, now, lease_id=lease_id, ttl=ttl, reserved=reserved, budget=left
                ),
                native=(
                    "acquire",
                    _acquire_args(limits, now, lease_id, ttl, reserved, left),
                    _decision,
                ),
            )
            reserved = decision.reserved
            if decision.outcome == "granted":
                return Lease(self, instance_url, lease_id, ttl)
            if decision.outcome == "busy":
                if decision.seconds > busy_budget - (now - started):
                    raise InstanceBusy(
                        f"{label} at {instance_url} asked to wait {decision.seconds:.0f} s more "
                        f"(429 Retry-After) before {what}",
                        status=429,
                        retry_after=decision.seconds,
                    )
            elif decision.outcome == "too_long":
                raise InstanceBusy(
                    f"{label} at {instance_url} is called at this node's pace of "
                    f"{decision.rate:.1f} requests a second (TRACKER_RATE_PER_SECOND, slower after "
                    f"a 429); {what} would wait {decision.seconds:.1f} s, longer than its retry "
                    "budget, and is retried later",
                    retry_after=decision.seconds,
                )
            elif decision.outcome == "full" and left <= 0:
                raise InstanceBusy(
                    f"{label} at {instance_url} already has {decision.in_flight} requests in "
                    f"flight from this node (TRACKER_MAX_CONCURRENCY); {what} waited "
                    f"{now - started:.0f} s for its turn and is retried later",
                    retry_after=max(1.0, min(ttl, 10.0)),
                )
            pause = decision.seconds
            if decision.outcome == "full":
                pause = min(max(pause, 0.001), max(left, 0.001)) * random.uniform(0.5, 1.5)
            self.sleep(max(0.0, pause))

    def too_fast(self, instance_url: str, retry_after: float | None = None) -> None:
        """The instance answered 429: slow down for everyone; with ``retry_after`` (seconds)
        nobody calls it before then."""
        limits, now = self.limits, self.clock()
        self._run(instance_url, lambda s: too_fast_step(s, limits, now, retry_after))

    # -- the BusyGate API (servicenow_adapter.busy, tests) --------------------------------
    def mark(self, instance_url: str, seconds: float) -> None:
        """The instance asked for ``seconds`` of quiet (capped at MAX_BUSY_SECONDS); never shortens."""
        now = self.clock()
        self._run(instance_url, lambda s: mark_step(s, now, seconds))

    def remaining(self, instance_url: str) -> float:
        """Seconds until the instance may be called again (0.0: now)."""
        now = self.clock()
        return max(0.0, self._run(instance_url, lambda s: s.get("busy_until", 0.0)) - now)

    def clear(self, instance_url: str) -> None:
        """Forget the busy time and any slow-down (tests, an admin's explicit retry); leases stay."""

        def forget(state: dict) -> None:
            for name in ("busy_until", "cut_at", "rate_after_cut", "tokens", "refilled_at"):
                state.pop(name, None)

        self._run(instance_url, forget)

    def snapshot(self, instance_url: str) -> dict:
        """The instance's state now: ``rate`` (requests a second), ``in_flight``, ``busy_for``
        (seconds), ``tokens`` (for benchmarks and tests)."""
        limits, now = self.limits, self.clock()

        def look(state: dict) -> dict:
            return {
                "rate": current_rate(state, limits, now),
                "in_flight": len(live_leases(state, now)),
                "busy_for": max(0.0, state.get("busy_until", 0.0) - now),
                "tokens": refill(state, limits, now) if limits.rate_per_second > 0 else math.inf,
            }

        return self._run(instance_url, look)


class Lease:
    """One request's slot on one instance. :meth:`release` gives it back (twice is harmless);
    :meth:`hold` ties it to a streamed response instead."""

    def __init__(self, throttle: Throttle, instance_url: str, lease_id: str, ttl: float):
        self.throttle, self.instance_url, self.lease_id, self.ttl = (
            throttle, instance_url, lease_id, ttl,
        )  # fmt: skip
        self.renewed_at = throttle.clock()
        self.released = False

    def release(self) -> None:
        """Give the slot back."""
        if not self.released:
            self.released = True
            self.throttle._run(
                self.instance_url,
                lambda s: release_step(s, self.lease_id),
                native=("release", [self.lease_id], lambda reply: None),
            )

    def renew(self) -> None:
        """Extend the lease by ``ttl`` from now when half of it has passed (a long stream)."""
        now = self.throttle.clock()
        if not self.released and now - self.renewed_at >= self.ttl / 2:
            self.renewed_at = now
            until = now + self.ttl
            self.throttle._run(self.instance_url, lambda s: renew_step(s, self.lease_id, until))

    def hold(self, response) -> None:
        """Keep the lease while ``response`` (a streamed ``requests.Response``) is read: reading
        its chunks renews it, closing the response releases it."""
        close, iter_content = response.close, response.iter_content

        def closing() -> None:
            try:
                close()
            finally:
                self.release()

        def renewing(*args, **kwargs):
            for chunk in iter_content(*args, **kwargs):
                self.renew()
                yield chunk

        response.close, response.iter_content = closing, renewing

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


#: The node's throttle: store and limits from settings.
NODE = Throttle()


def node_throttle() -> Throttle:
    """The throttle every client built from the node's configuration shares."""
    return NODE
