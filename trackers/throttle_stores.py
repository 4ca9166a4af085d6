"""Where :mod:`trackers.throttle` keeps each instance's state, atomically for the whole node.

A store runs ``fn(state)`` on one instance's JSON-able state dict so that no other process
of the node sees or changes it meanwhile, and keeps what ``fn`` changed. Three of them:
``memory://`` (one process), ``file://<dir>`` (``fcntl`` locks; every process of a node
shares its VAR_DIR) and ``redis://`` (Lua scripts and compare-and-set). Why these: see
the throttle's docstring.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Idle state is forgotten after this long (seconds; Redis key expiry).
STATE_TTL = 2 * 3600


class MemoryStore:
    """This process only (tests, scripts outside a node)."""

    def __init__(self):
        self._states: dict[str, dict] = {}
        self._lock = threading.Lock()

    def transact(self, key: str, fn: Callable[[dict], Any]) -> Any:
        """Run ``fn(state)`` under this process's lock; its changes to ``state`` are kept."""
        with self._lock:
            state = self._states.setdefault(key, {})
            return fn(state)


class FileStore:
    """One JSON file per instance under ``directory``, changed under an exclusive ``flock``.

    Every process of a node shares its VAR_DIR; the kernel drops the lock of a process that
    dies. A file left half-written by a crash reads as an empty state (leases forgotten).
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def transact(self, key: str, fn: Callable[[dict], Any]) -> Any:
        """Lock the instance's file, read the state, run ``fn(state)``, write it back."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / f"{key}.json", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = b""
            while chunk := os.read(fd, 65536):
                raw += chunk
            try:
                state = json.loads(raw) if raw else {}
            except ValueError:
                state = {}
            before = json.dumps(state, sort_keys=True)
            result = fn(state)
            after = json.dumps(state, sort_keys=True)
            if after != before:
                # Overwritten in place, padded with blanks (JSON allows them) to the old
                # length: truncating to zero makes ext4 flush the file at once (auto_da_alloc).
                os.pwrite(fd, after.encode().ljust(len(raw)), 0)
            return result
        finally:
            os.close(fd)


#: Compare-and-set: write ARGV[2] only if the key still holds ARGV[1] (absent = ''), else
#: answer what it holds. One round trip; the maths stays in Python.
_CAS = """
local current = redis.call('GET', KEYS[1]) or ''
if current == ARGV[1] then
  if ARGV[2] ~= ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) end
  return {1, ''}
end
return {0, current}
"""


#: The two operations of every request, run inside Redis in one round trip each. It mirrors
#: ``trackers.throttle.acquire_step`` / ``release_step`` line by line (the Python functions
#: are the reference; tests/test_throttle.py runs both on the same cases). ARGV: op, state
#: expiry, then for ``release`` the lease id; for ``acquire`` now, lease id, lease ttl,
#: reserved (0/1), budget, max concurrency, rate, burst, recover step, recover every, min
#: rate, poll. Answers strings: outcome, seconds, reserved, rate, in flight.
_STEP = """
local state = {}
local raw = redis.call('GET', KEYS[1])
if raw then
  local ok, value = pcall(cjson.decode, raw)
  if ok and type(value) == 'table' then state = value end
end
local function save() redis.call('SET', KEYS[1], cjson.encode(state), 'EX', ARGV[2]) end
local function fmt(x) return string.format('%.17g', x) end
if ARGV[1] == 'release' then
  if type(state.leases) == 'table' and state.leases[ARGV[3]] then
    state.leases[ARGV[3]] = nil
    save()
  end
  return {'released', '0', '0', '0', '0'}
end
local now, lease_id, ttl = tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local reserved, budget = tonumber(ARGV[6]), tonumber(ARGV[7])
local max, limit, burst = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local step, every, min_rate, poll = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14])
local busy = (tonumber(state.busy_until) or 0) - now
if busy > 0 then return {'busy', fmt(busy), tostring(reserved), '0', '0'} end
local rate = math.huge
if limit > 0 then
  rate = limit
  if tonumber(state.cut_at) then
    local steps = math.floor(math.max(0, now - state.cut_at) / every)
    rate = math.min(limit, (tonumber(state.rate_after_cut) or min_rate) + step * steps)
  end
end
if reserved == 0 then
  if limit > 0 then
    local tokens = burst
    local last = tonumber(state.refilled_at) or now
    if tonumber(state.tokens) then
      tokens = math.min(burst, state.tokens + rate * math.max(0, now - last))
    end
    state.tokens, state.refilled_at = tokens, math.max(now, last)
    local wait = 0
    if tokens < 1 then wait = (1 - tokens) / rate end
    if wait > budget then
      save()
      return {'too_long', fmt(wait), '0', fmt(rate), '0'}
    end
    state.tokens = tokens - 1
    if wait > 0 then
      save()
      return {'wait', fmt(wait), '1', fmt(rate), '0'}
    end
  end
  reserved = 1
end
local leases, n, soonest = {}, 0, nil
if type(state.leases) == 'table' then
  for id, expiry in pairs(state.leases) do
    if tonumber(expiry) and expiry > now then
      leases[id], n = expiry, n + 1
      if soonest == nil or expiry < soonest then soonest = expiry end
    end
  end
end
if max > 0 and n >= max then
  state.leases = leases
  save()
  return {'full', fmt(math.min(poll, soonest - now)), '1', fmt(rate), tostring(n)}
end
leases[lease_id] = now + ttl
state.leases = leases
save()
return {'granted', '0', '1', fmt(rate), tostring(n + 1)}
"""


class RedisStore:
    """One JSON value per instance in Redis (``prefix`` + key), changed by compare-and-set.

    ``fn`` runs on the value this process saw last; a small Lua script writes the result
    only if Redis still holds that value, else answers the current one and ``fn`` runs again
    on it. Uncontended, a change costs one round trip (``WATCH``/``GET``/``MULTI`` cost
    four: 16 ms against 4.5 ms per acquire and release on this loaded machine). A request's own two steps
    (acquire and release) run in Lua instead (:meth:`native`): under contention a
    compare-and-set is retried about 2.5 times, the script never.
    """

    def __init__(self, url: str, *, prefix: str = "exalate:throttle:"):
        import redis

        self.prefix = prefix
        self.redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._cas = self.redis.register_script(_CAS)
        self._step = self.redis.register_script(_STEP)
        self._redis_error = redis.RedisError
        self._seen: dict[str, str] = {}

    def transact(self, key: str, fn: Callable[[dict], Any]) -> Any:
        """Run ``fn(state)`` and store the result atomically (``fn`` may run more than once).

        Raises OSError when Redis cannot be reached or the key never stops changing.
        """
        name = self.prefix + key
        raw = self._seen.get(name, "")
        for _ in range(100):
            try:
                state = json.loads(raw) if raw else {}
            except ValueError:
                state = {}
            result = fn(state)
            new = json.dumps(state, sort_keys=True)
            try:
                done, current = self._cas(keys=[name], args=[raw, new, STATE_TTL])
            except self._redis_error as exc:
                raise OSError(f"Redis: {exc.__class__.__name__}") from exc
            if int(done) == 1:
                self._seen[name] = new
                return result
            raw = current.decode() if isinstance(current, bytes) else str(current)
        raise OSError(f"the throttle state {name} kept changing under this process")

    def native(self, key: str, op: str, args: list) -> list[str]:
        """Run ``acquire`` or ``release`` (see ``_STEP``) in Redis; the answer as strings.

        Raises OSError when Redis cannot be reached.
        """
        try:
            reply = self._step(keys=[self.prefix + key], args=[op, STATE_TTL, *args])
        except self._redis_error as exc:
            raise OSError(f"Redis: {exc.__class__.__name__}") from exc
        return [r.decode() if isinstance(r, bytes) else str(r) for r in reply]


_STORES: dict[str, Any] = {}
_STORES_LOCK = threading.Lock()


def store_for(url: str) -> MemoryStore | FileStore | RedisStore:
    """The store a ``TRACKER_THROTTLE_URL`` names (one object per URL in this process):
    ``redis://``/``rediss://``, ``file:///abs/dir`` or ``memory://``. Raises ValueError."""
    with _STORES_LOCK:
        if url not in _STORES:
            if url.startswith(("redis://", "rediss://", "unix://")):
                _STORES[url] = RedisStore(url)
            elif url.startswith("file://") and len(url) > len("file://"):
                _STORES[url] = FileStore(url[len("file://") :])
            elif url in ("memory://", ""):
                _STORES[url] = MemoryStore()
            else:
                raise ValueError(
                    f"TRACKER_THROTTLE_URL={url!r}: use redis://host:port/db, file:///a/directory or memory://."
                )
        return _STORES[url]
