"""Heartbeats of the node's scheduler and workers, written to the database, read by ``/healthz``.

Why the database: it is the one store that web, worker and beat share in every setup
(SQLite file + file-system broker by default, PostgreSQL + Redis in production), and
``/healthz`` already checks it.

* **Scheduler**: :class:`HeartbeatScheduler` is Celery beat's scheduler (``beat_scheduler``
  setting, so ``celery beat`` and ``worker --beat`` both use it). Each tick writes the
  ``beat`` row at most every ``HEARTBEAT_INTERVAL`` seconds; the beat loop never sleeps
  longer than that (``beat_max_loop_interval``). A dead or hung beat stops writing.
* **Workers**: when a worker is ready (``worker_ready`` signal) its main process starts a
  thread writing ``worker:<hostname>`` every ``HEARTBEAT_INTERVAL`` seconds; a clean
  shutdown deletes the row. Rows older than a day (workers gone for good) are pruned.

A heartbeat older than ``HEARTBEAT_STALE`` seconds counts as stale. A failed write (the
database is down) is logged and tried again next time; it never stops beat or a worker.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import timedelta

from celery.beat import PersistentScheduler
from celery.signals import worker_ready, worker_shutdown

logger = logging.getLogger(__name__)

BEAT = "beat"
WORKER_PREFIX = "worker:"
PRUNE_AFTER = timedelta(days=1)


def heartbeat_write(name: str) -> bool:
    """Record that process ``name`` is alive now; True when written, False (logged) on a DB error."""
    from django.db import close_old_connections, connection
    from django.utils import timezone

    from .models import Heartbeat

    try:
        close_old_connections()
        now = timezone.now()
        Heartbeat.objects.update_or_create(name=name, defaults={"at": now, "pid": os.getpid()})
        if name.startswith(WORKER_PREFIX):
            Heartbeat.objects.filter(
                name__startswith=WORKER_PREFIX, at__lt=now - PRUNE_AFTER
            ).delete()
        return True
    except Exception as exc:  # noqa: BLE001 - a heartbeat must never take its process down
        logger.warning("Heartbeat %s not written: %s", name, exc.__class__.__name__)
        return False
    finally:
        if threading.current_thread() is not threading.main_thread():
            connection.close()


def heartbeat_status() -> dict:
    """The scheduler's and the workers' heartbeats, as ``/healthz`` reports them.

    Returns ``{"scheduler": {"ok", "seconds_since_heartbeat"}, "workers": {"ok", "alive",
    "seconds_since_heartbeat"}}``; seconds are those of the newest heartbeat (None when
    there is none). The scheduler is ok when its heartbeat is at most ``HEARTBEAT_STALE``
    seconds old; the workers when at least one worker's is. Raises on a database error.
    """
    from django.conf import settings
    from django.utils import timezone

    from .models import Heartbeat

    now = timezone.now()
    stale = settings.HEARTBEAT_STALE

    def age(at) -> float | None:
        return None if at is None else round(max(0.0, (now - at).total_seconds()), 1)

    beat = Heartbeat.objects.filter(name=BEAT).values_list("at", flat=True).first()
    workers = list(
        Heartbeat.objects.filter(name__startswith=WORKER_PREFIX).values_list("at", flat=True)
    )
    fresh = [at for at in workers if (now - at).total_seconds() <= stale]
    beat_age = age(beat)
    return {
        "scheduler": {
            "ok": beat_age is not None and beat_age <= stale,
            "seconds_since_heartbeat": beat_age,
        },
        "workers": {
            "ok": bool(fresh),
            "alive": len(fresh),
            "seconds_since_heartbeat": age(max(workers)) if workers else None,
        },
    }


class HeartbeatScheduler(PersistentScheduler):
    """Celery beat's persistent (file) scheduler that also writes the ``beat`` heartbeat."""

    _last_heartbeat = 0.0

    def tick(self, *args, **kwargs):
        from django.conf import settings

        now = time.monotonic()
        if now - self._last_heartbeat >= settings.HEARTBEAT_INTERVAL:
            self._last_heartbeat = now
            heartbeat_write(BEAT)
        return super().tick(*args, **kwargs)


_worker_stop = threading.Event()


@worker_ready.connect
def _start_worker_heartbeat(sender=None, **kwargs):
    """In the worker's main process: write ``worker:<hostname>`` until the worker stops."""
    from django.conf import settings

    name = WORKER_PREFIX + getattr(sender, "hostname", "") if sender else WORKER_PREFIX + "?"
    interval = settings.HEARTBEAT_INTERVAL

    def run():
        while True:
            heartbeat_write(name)
            if _worker_stop.wait(interval):
                return

    _worker_stop.clear()
    threading.Thread(target=run, name="exalate-heartbeat", daemon=True).start()
    _start_worker_heartbeat.worker_name = name


@worker_shutdown.connect
def _stop_worker_heartbeat(**kwargs):
    """A worker that stops cleanly takes its heartbeat row with it."""
    _worker_stop.set()
    name = getattr(_start_worker_heartbeat, "worker_name", None)
    if not name:
        return
    from django.db import connection

    from .models import Heartbeat

    try:
        Heartbeat.objects.filter(name=name).delete()
    except Exception as exc:  # noqa: BLE001
        logger.warning("Heartbeat %s not removed: %s", name, exc.__class__.__name__)
    finally:
        connection.close()
