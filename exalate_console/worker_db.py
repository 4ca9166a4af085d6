"""Database connections in Celery workers: kept between tasks, dropped when broken.

With ``CELERY_DB_REUSE_MAX`` set, Celery's Django fixup no longer closes the connection
around every task (it closes it every ``2 × CELERY_DB_REUSE_MAX`` task starts and ends).
Django's own rule for web requests then applies to tasks too: before and after each task
:func:`django.db.close_old_connections` closes a connection that had an error, is older
than ``CONN_MAX_AGE``, or (``CONN_HEALTH_CHECKS``) no longer answers, e.g. after the
database restarted. A task therefore never inherits a dead connection from the last one.
"""

from __future__ import annotations

from celery.signals import task_postrun, task_prerun
from django.db import close_old_connections


@task_prerun.connect(weak=False)
def _before_task(**_kwargs) -> None:
    close_old_connections()


@task_postrun.connect(weak=False)
def _after_task(**_kwargs) -> None:
    close_old_connections()
