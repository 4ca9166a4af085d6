"""Errors people see, and Retry / Resolve on them (the Errors page, a twin's Retry button).

Two levels, as in Exalate: an *entity-level* error blocks one twin (its later events wait
behind the failed one) until an admin retries or resolves it; a *connection-level* error
(the instance refused this node's login, the remote refused our signature) is recorded
once, however many twins it hits, and puts the connection in Error. Transient failures
are not errors here: they retry with backoff (``sync.nudge.backoff_seconds``), every
attempt recorded on the event row.
"""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from connections.models import Connection

from .. import nudge
from ..models import ExalateRequest, SyncError, SyncEvent, Twin
from . import detect
from .base import OPEN_EVENT_STATUSES, twin_status_refresh

logger = logging.getLogger(__name__)


def connection_error_raise(*, connection: Connection, message: str) -> SyncError:
    """Record ONE open connection-level error (or count another occurrence) and put the
    connection in Error with ``last_error``. Tracker work of the connection pauses until
    an admin retries it on the Errors page."""
    now = timezone.now()
    with transaction.atomic():
        error = SyncError.objects.filter(
            level=SyncError.Level.CONNECTION, connection=connection, resolved_at__isnull=True
        ).first()
        if error:
            SyncError.objects.filter(pk=error.pk).update(
                occurrences=F("occurrences") + 1, message=message, last_seen_at=now
            )
        else:
            try:
                with transaction.atomic():
                    error = SyncError.objects.create(
                        level=SyncError.Level.CONNECTION, connection=connection, message=message
                    )
            except IntegrityError:  # another worker recorded it a moment ago
                error = SyncError.objects.get(
                    level=SyncError.Level.CONNECTION,
                    connection=connection,
                    resolved_at__isnull=True,
                )
        Connection.objects.filter(pk=connection.pk).exclude(
            status__in=[Connection.Status.DEACTIVATED, Connection.Status.PENDING]
        ).update(status=Connection.Status.ERROR, last_error=message, last_error_at=now)
    logger.warning("Connection %s is in Error: %s", connection.pk, message)
    return error


def login_refused(*, connection: Connection, exc: Exception) -> SyncError:
    """The instance refused this node's login (HTTP 401): one connection-level error."""
    return connection_error_raise(
        connection=connection, message=f"The instance refused this node's login: {exc}"
    )


def entity_error(*, twin: Twin, event: SyncEvent | None, message: str) -> None:
    """Record an entity-level error for ``twin`` (and ``event``); called inside a transaction."""
    SyncError.objects.create(
        level=SyncError.Level.ENTITY,
        connection_id=twin.connection_id,
        twin=twin,
        event=event,
        message=message,
    )
    Twin.objects.filter(pk=twin.pk).update(last_error=message)


def error_resolve(*, error: SyncError) -> None:
    """Mark ``error`` resolved without retrying (the admin ignores it). Idempotent."""
    SyncError.objects.filter(pk=error.pk, resolved_at__isnull=True).update(
        resolved_at=timezone.now()
    )
    if error.twin_id:
        twin_status_refresh(error.twin_id)


def error_retry(*, error: SyncError) -> None:
    """Resolve ``error`` and retry what failed: the twin's failed events, or the whole connection."""
    if error.level == SyncError.Level.CONNECTION and error.connection_id:
        connection_retry(connection=error.connection)
    elif error.twin_id:
        twin_retry(twin=error.twin)
    else:
        error_resolve(error=error)


def connection_retry(*, connection: Connection) -> None:
    """Resolve the connection's open connection-level error, make it Active again and resume its queue."""
    now = timezone.now()
    with transaction.atomic():
        SyncError.objects.filter(
            level=SyncError.Level.CONNECTION, connection=connection, resolved_at__isnull=True
        ).update(resolved_at=now)
        Connection.objects.filter(pk=connection.pk, status=Connection.Status.ERROR).update(
            status=Connection.Status.ACTIVE, last_error=""
        )
        SyncEvent.objects.filter(connection=connection, status__in=OPEN_EVENT_STATUSES).update(
            next_attempt_at=now
        )
        ExalateRequest.objects.filter(
            connection=connection, status=ExalateRequest.Status.QUEUED
        ).update(next_attempt_at=now)
        nudge.drain()


def twin_retry(*, twin: Twin) -> None:
    """Retry a twin after an entity-level error: failed events go back to the queue (attempts
    reset), the twin is scanned again, and its open errors are resolved."""
    now = timezone.now()
    with transaction.atomic():
        SyncError.objects.filter(twin=twin, resolved_at__isnull=True).update(resolved_at=now)
        SyncEvent.objects.filter(twin=twin, status=SyncEvent.Status.ERROR).update(
            status=SyncEvent.Status.QUEUED, attempts=0, next_attempt_at=now, last_error=""
        )
        Twin.objects.filter(pk=twin.pk).update(last_error="", claimed_until=None, claimed_by="")
        detect.twin_request_scan(twin_ids=[twin.pk])
        twin_status_refresh(twin.pk)
        nudge.apply(twin.pk)
        nudge.deliver(twin.connection_id)
