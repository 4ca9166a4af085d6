"""The one corridor through which the engine asks a worker to look at a row, and its backoff.

The database is the queue (``sync.models``); a Celery message only *nudges* a worker to
look at a row. Every nudge of the sync engine goes through :func:`nudge`, which sends the
task only after the current transaction commits (``transaction.on_commit``; at once when
no transaction is open): a worker never looks before the row is there, and a rolled-back
write nudges nobody. When the broker is down the nudge is dropped with a warning and the
drain task (``sync.services.drain``) finds the row later.

Each helper below names its task in ``sync.tasks``, so a reader can follow a nudge to the
code it runs. Tests replace :func:`nudge` (the one seam) to run the tasks in-process.

**Coalescing.** One run of ``deliver`` sends every due event of its connection, and one run
of ``apply`` / ``scan`` handles everything of its twin, so a second message for the same id
that waits in the queue behind the first is pure overhead: a burst of 1,000 new events once
put 663 redundant ``sync.deliver`` messages in front of the real work. An immediate nudge
therefore marks "queued" in the node's shared cache (``CACHES["shared"]``: Redis or a folder
every process sees) and is skipped while the mark is there; the task clears the mark when
it *starts* (:func:`started`), before it reads the database, so work committed after that
gets a message of its own. The mark lapses after :data:`COALESCE_SECONDS`, so a message lost
with a killed worker holds nothing back for long (the drain task also re-nudges). Delayed
nudges (retries with a countdown) are never coalesced. When the cache fails, the nudge is
sent anyway: coalescing only ever saves work, it never decides whether work happens.
"""

from __future__ import annotations

import logging
import random

from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

#: Seconds a "queued" mark of a coalesced nudge lives at most (see the module docstring).
COALESCE_SECONDS = 20.0
#: Tasks whose immediate nudges are coalesced per first argument (a connection or twin id).
COALESCED = frozenset({"sync.deliver", "sync.apply", "sync.scan"})


def _mark_key(task_name: str, ident) -> str:
    return f"nudge-queued:{task_name}:{ident}"


def _shared_cache():
    from django.core.cache import caches

    return caches["shared"]


def _first_in_queue(task_name: str, ident) -> bool:
    """True when no message of ``task_name`` for ``ident`` is queued and unstarted (and mark one)."""
    try:
        return bool(_shared_cache().add(_mark_key(task_name, ident), 1, COALESCE_SECONDS))
    except Exception:  # noqa: BLE001 - a failing cache never stops a nudge
        logger.warning(
            "The shared cache failed; nudging %s %s without coalescing.", task_name, ident
        )
        return True


def started(task_name: str, ident) -> None:
    """Called by a coalesced task as it starts: later nudges for ``ident`` are sent again."""
    try:
        _shared_cache().delete(_mark_key(task_name, ident))
    except Exception:  # noqa: BLE001 - the mark lapses by itself
        logger.warning(
            "The shared cache failed; the queued mark of %s %s lapses by itself.", task_name, ident
        )


def nudge(task, *args, countdown: float | None = None) -> None:
    """Send Celery ``task`` (a task object of ``sync.tasks``) with ``args`` once the current
    transaction commits, after ``countdown`` seconds when given. An immediate nudge of a
    task in :data:`COALESCED` is skipped while one for the same task and first argument
    waits unstarted in the queue (module docstring). Never raises."""
    coalesce = task.name in COALESCED and not countdown and args

    def send():
        if coalesce and not _first_in_queue(task.name, args[0]):
            return
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


def scan_batch(twin_ids: list[int]) -> None:
    """Scan several twins, their source reads batched (``sync.tasks.trigger_scan_batch``)."""
    nudge(_tasks().trigger_scan_batch, list(twin_ids))


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
