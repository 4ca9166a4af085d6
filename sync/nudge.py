"""The one corridor through which the engine asks a worker to look at a row, and its backoff.

The database is the queue (``sync.models``); a Celery message only *nudges* a worker to
look at a row. Every nudge of the sync engine goes through :func:`nudge`, which sends the
task only after the current transaction commits (``transaction.on_commit``; at once when
no transaction is open): a worker never looks before the row is there, and a rolled-back
write nudges nobody. When the broker is down the nudge is dropped with a warning and the
drain task (``sync.services.drain``) finds the row later.

Each helper below names its task in ``sync.tasks``, so a reader can follow a nudge to the
code it runs. Tests replace :func:`nudge` (the one seam) to run the tasks in-process.
"""

from __future__ import annotations

import logging
import random

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)


def nudge(task, *args, countdown: float | None = None) -> None:
    """Send Celery ``task`` (a task object of ``sync.tasks``) with ``args`` once the current
    transaction commits, after ``countdown`` seconds when given. Never raises."""

    def send():
        try:
            if countdown:
                task.apply_async(args=args, countdown=countdown)
            else:
                task.apply_async(args=args)
        except Exception:  # the broker is down: the drain task picks the row up later
            logger.warning(
                "Could not enqueue %s%r; the drain task will pick it up.", task.name, args
            )

    transaction.on_commit(send)


def _tasks():
    # Imported when first used: sync.tasks imports the services, which import this module.
    from . import tasks

    return tasks


def exalate(request_id, *, countdown: float | None = None) -> None:
    """Resolve exalate request ``request_id`` (``sync.tasks.exalate``)."""
    nudge(_tasks().exalate, str(request_id), countdown=countdown)


def scan(twin_id: int, *, countdown: float | None = None) -> None:
    """Scan twin ``twin_id``'s local entity for what the other side lacks (``sync.tasks.scan``)."""
    nudge(_tasks().scan, twin_id, countdown=countdown)


def apply(twin_id: int, *, countdown: float | None = None) -> None:
    """Apply twin ``twin_id``'s incoming replicas (``sync.tasks.apply``)."""
    nudge(_tasks().apply, twin_id, countdown=countdown)


def deliver(connection_id, *, countdown: float | None = None) -> None:
    """Deliver connection ``connection_id``'s due outgoing events (``sync.tasks.deliver``)."""
    nudge(_tasks().deliver, str(connection_id), countdown=countdown)


def poll(connection_id) -> None:
    """Poll the remote node of connection ``connection_id`` (``sync.tasks.poll``)."""
    nudge(_tasks().poll, str(connection_id))


def detect_changes(connection_id) -> None:
    """Look for changed entities of connection ``connection_id`` (``sync.tasks.detect_changes``)."""
    nudge(_tasks().detect_changes, str(connection_id))


def drain() -> None:
    """Re-nudge whatever is due (``sync.tasks.drain``), e.g. after a connection is retried."""
    nudge(_tasks().drain)


def backoff_seconds(attempts: int, retry_after: float | None = None) -> float:
    """Delay in seconds before attempt ``attempts + 1``.

    ``SYNC_RETRY_BASE · 2^(attempts-1)``, capped at ``SYNC_RETRY_MAX``, ±20 % jitter (so
    many rows that failed together do not retry together), and at least ``retry_after``
    (the other side's ``Retry-After``, itself capped at an hour).
    """
    base = settings.SYNC_RETRY_BASE * (2 ** max(0, min(attempts - 1, 20)))
    delay = min(settings.SYNC_RETRY_MAX, base) * random.uniform(0.8, 1.2)
    if retry_after:
        delay = max(delay, min(float(retry_after), 3600.0))
    return delay
