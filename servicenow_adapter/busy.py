"""An instance's "busy until", shared by every process of this node (web and Celery workers).

ServiceNow answers ``429`` with ``Retry-After`` (seconds) when a rate limit rule is hit
(docs, "Inbound REST API rate limiting"); the limit is per hour and per user, so every
call from this node to that instance is refused until then, not just the one request.
After such an answer :meth:`BusyGate.mark` stores the time; :meth:`BusyGate.remaining`
is checked before every request, which then waits or fails fast without calling.

Stored in Django's ``shared`` cache (``settings.CACHES``: a directory under VAR_DIR, or
Redis with ``CACHE_URL``), falling back to this process's memory when that alias is not
configured or its storage fails.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time

log = logging.getLogger(__name__)

#: Longest wait honoured (seconds): a bogus Retry-After must not stop a node for days.
MAX_BUSY_SECONDS = 3600.0


class BusyGate:
    """ "Busy until" per instance URL; ``alias`` is the Django cache used (None: memory only)."""

    def __init__(self, alias: str | None = "shared"):
        self.alias = alias
        self._local: dict[str, float] = {}
        self._lock = threading.Lock()

    def _cache(self):
        if not self.alias:
            return None
        try:
            from django.conf import settings
            from django.core.cache import caches

            if self.alias not in getattr(settings, "CACHES", {}):
                return None
            return caches[self.alias]
        except Exception:  # noqa: BLE001 - outside Django (a script) the memory is enough
            return None

    @staticmethod
    def _key(instance_url: str) -> str:
        return "servicenow-busy:" + hashlib.sha256(instance_url.encode()).hexdigest()[:32]

    def mark(self, instance_url: str, seconds: float) -> None:
        """The instance asked for ``seconds`` of quiet (capped at MAX_BUSY_SECONDS); never shortens."""
        seconds = min(max(0.0, float(seconds)), MAX_BUSY_SECONDS)
        until = time.time() + seconds
        key = self._key(instance_url)
        cache = self._cache()
        if cache is not None:
            try:
                if float(cache.get(key) or 0.0) < until:
                    cache.set(key, until, timeout=int(seconds) + 5)
                return
            except Exception as exc:  # noqa: BLE001 - keep it in this process at least
                log.warning("Could not share the busy time of %s: %s", instance_url, exc)
        with self._lock:
            self._local[key] = max(self._local.get(key, 0.0), until)

    def remaining(self, instance_url: str) -> float:
        """Seconds until the instance may be called again (0.0: now)."""
        key = self._key(instance_url)
        with self._lock:
            until = self._local.get(key, 0.0)
        cache = self._cache()
        if cache is not None:
            try:
                until = max(until, float(cache.get(key) or 0.0))
            except Exception:  # noqa: BLE001 - fall back to this process's memory
                pass
        return max(0.0, until - time.time())

    def clear(self, instance_url: str) -> None:
        """Forget the busy time (tests, and an admin's explicit retry)."""
        key = self._key(instance_url)
        with self._lock:
            self._local.pop(key, None)
        cache = self._cache()
        if cache is not None:
            try:
                cache.delete(key)
            except Exception:  # noqa: BLE001
                pass


#: The node's gate, used by clients built from the node's configuration.
SHARED = BusyGate()
