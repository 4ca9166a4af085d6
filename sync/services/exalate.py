"""Exalate: an admin names an entity by its key; the worker finds it, twins it and scans it.

:func:`entity_exalate` records an :class:`~sync.models.ExalateRequest` (the status page
follows it); :func:`exalate_request_process` resolves the key on the worker, gets or
creates the one twin of (connection, entity) and scans it, which queues the first
outgoing replica. Exalating an entity that already has a twin makes no second twin.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from connections.models import Connection
from connections.selectors import tracker_adapter_class_get, tracker_adapter_get
from trackers.errors import (
    AmbiguousEntityKey,
    TrackerAuthenticationError,
    TrackerError,
    TrackerNotFound,
    TransientTrackerError,
)

from .. import claims, nudge
from ..models import ExalateRequest, Twin
from . import detect, failures
from .base import SyncRefused, state_for, twin_status_refresh
from .scan import twin_scan


def entity_exalate(*, connection: Connection, key: str, requested_by: str = "") -> ExalateRequest:
    """Ask the worker to exalate the entity with key ``key`` (incident number) on ``connection``.

    Returns the ExalateRequest the status page follows. Exalating an incident that already
    has a twin on this connection makes no second twin (and no second remote incident):
    the worker finds the twin and scans it for changes.

    Raises SyncRefused when ``key`` is not a key of this node's tracker (the adapter's
    ``key_problem`` says why) or the connection is not Active.
    """
    key = (key or "").strip()
    problem = tracker_adapter_class_get().key_problem(key)
    if problem:
        raise SyncRefused(problem)
    if connection.status != Connection.Status.ACTIVE:
        raise SyncRefused(
            f"Connection {connection.name} is {connection.get_status_display().lower()}: "
            "only an active connection can exalate."
        )
    with transaction.atomic():
        request = ExalateRequest.objects.create(
            connection=connection,
            key=key,
            requested_by=requested_by[:150],
            next_attempt_at=timezone.now(),
        )
        nudge.exalate(request.pk)
    return request


def exalate_request_process(request_id) -> None:
    """Resolve an exalate request on the worker: find the entity, get or create its twin, scan it.

    Not found or ambiguous keys end the request with an error the admin reads on the
    status page; transient tracker errors retry with backoff; a refused login is a
    connection-level error.
    """
    request = ExalateRequest.objects.select_related("connection").filter(pk=request_id).first()
    if request is None or request.status != ExalateRequest.Status.QUEUED:
        return
    connection = request.connection
    if connection.status != Connection.Status.ACTIVE:
        return
    if not claims.claim(ExalateRequest, request.pk):
        return
    try:
        ExalateRequest.objects.filter(pk=request.pk).update(attempts=F("attempts") + 1)
        try:
            adapter = tracker_adapter_get()
            ref = adapter.find_entity(request.key)
        except TrackerNotFound:
            label = tracker_adapter_class_get().entity_label
            _request_fail(
                request, f"No {label} with number {request.key} was found in this node's instance."
            )
            return
        except AmbiguousEntityKey as exc:
            label = tracker_adapter_class_get().entity_label
            _request_fail(
                request,
                f"{len(exc.candidates)} {label}s have number {request.key} (sys_id "
                + ", ".join(exc.candidates[:5])
                + "): numbers are not unique in this instance; exalate by trigger instead.",
            )
            return
        except TrackerAuthenticationError as exc:
            failures.login_refused(connection=connection, exc=exc)
            _request_retry_later(request, str(exc), None)
            return
        except TransientTrackerError as exc:
            _request_retry_later(request, str(exc), exc.retry_after)
            return
        except TrackerError as exc:
            _request_fail(request, str(exc))
            return
        with transaction.atomic():
            twin, _ = Twin.objects.get_or_create(
                connection=connection,
                local_entity_id=ref.id,
                defaults={"local_key": ref.key, "local_url": ref.url},
            )
            Twin.objects.filter(pk=twin.pk).update(local_key=ref.key, local_url=ref.url)
            state_for(connection)
            ExalateRequest.objects.filter(pk=request.pk).update(
                status=ExalateRequest.Status.DONE, twin=twin, error=""
            )
            detect.twin_request_scan(twin_ids=[twin.pk], nudge=False)
            twin_status_refresh(twin.pk)
    finally:
        claims.release(ExalateRequest, request.pk)
    twin_scan(twin.pk, adapter=adapter)


def _request_fail(request: ExalateRequest, message: str) -> None:
    """The request failed for good: said on its status page, and an entity-level error on
    the Errors page and in the API (``GET /api/errors/``), as any failed sync is."""
    from ..mail import errors_mail_soon
    from ..models import SyncError

    with transaction.atomic():
        ExalateRequest.objects.filter(pk=request.pk).update(
            status=ExalateRequest.Status.ERROR, error=message
        )
        SyncError.objects.create(
            level=SyncError.Level.ENTITY,
            connection_id=request.connection_id,
            message=f"Exalate {request.key} failed: {message}",
            code="exalate_failed",
        )
        errors_mail_soon(connection_id=request.connection_id)


def _request_retry_later(request: ExalateRequest, message: str, retry_after: float | None) -> None:
    delay = nudge.backoff_seconds(request.attempts + 1, retry_after)
    ExalateRequest.objects.filter(pk=request.pk).update(
        error=message, next_attempt_at=timezone.now() + timedelta(seconds=delay)
    )
    if delay < 120:
        nudge.exalate(request.pk, countdown=delay)
