"""The Celery application. Tasks live in each app's ``tasks.py``; the beat schedule is in code."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exalate_console.settings")

app = Celery("exalate_console")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _beat_schedule() -> dict:
    """The periodic tasks (in code, not in a database). Each tick expires after one
    interval, so ticks missed while the worker was busy do not pile up."""
    from django.conf import settings

    def every(seconds: float, task: str) -> dict:
        return {"task": task, "schedule": seconds, "options": {"expires": max(seconds, 1.0)}}

    return {
        # Sync engine (issue #5): change detection per active connection, polling of the
        # remote by nodes without URL, and the drain that re-nudges lost work.
        "sync-detect-changes": every(settings.CHANGE_POLL_INTERVAL, "sync.detect_changes_all"),
        "sync-poll-remotes": every(settings.SYNC_POLL_INTERVAL, "sync.poll_remotes"),
        "sync-drain": every(settings.SYNC_DRAIN_INTERVAL, "sync.drain"),
        # Issue 12: Unexalate waits for a twin's queue to drain, then tells the other node.
        "sync-unexalates-sweep": every(settings.SYNC_DRAIN_INTERVAL, "sync.unexalates_sweep"),
        # Issue 13: bulk runs whose worker died (or whose nudge was lost) go on.
        "sync-bulk-drain": every(settings.SYNC_DRAIN_INTERVAL, "sync.bulk_drain"),
    }


app.conf.beat_schedule = _beat_schedule()

# Heartbeats of beat and the workers for /healthz (the scheduler class and the worker signals).
# (and exalate_console.worker_db: database connections kept between tasks).
from exalate_console import heartbeats, worker_db  # noqa: E402,F401
