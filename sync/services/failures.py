"""Errors people see, and Retry / Resolve on them (the Errors page, a twin's Retry button).

Three levels, as in Exalate: an *entity-level* error blocks one twin (its later events wait
behind the failed one) until an admin retries or resolves it; a *connection-level* error
(the instance refused this node's login, the remote refused our signature) is recorded
once, however many twins it hits, and puts the connection in Error; a *node-level* error
(this node's own tracker instance refuses its login or cannot be reached for longer than a
poll cycle: nothing syncs) is kept once per cause and resolves itself. Transient failures
are not errors here: they retry with backoff (``sync.nudge.backoff_seconds``), every
attempt recorded on the event row.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from connections.models import Connection
from trackers.errors import (
    TrackerAuthenticationError,
    TrackerError,
    TrackerPermissionError,
    TrackerUnavailable,
    TrackerUnreachable,
)

from .. import nudge
from ..models import (
    ConnectionProbe,
    ConnectionSyncState,
    ExalateRequest,
    SyncError,
    SyncEvent,
    Twin,
)
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
    from ..mail import errors_mail_soon

    errors_mail_soon(connection_id=connection.pk)
    return error


def login_refused(*, connection: Connection, exc: Exception) -> SyncError:
    """The instance refused this node's login (HTTP 401): one connection-level error, probed
    again on a back-off and resolved by itself once the instance accepts the credentials."""
    return connection_error_clearing(
        connection=connection,
        message=f"The instance refused this node's login: {exc}",
        reason="credentials",
    )


def tracker_connection_error(*, connection: Connection, exc: Exception) -> SyncError | None:
    """A tracker error that concerns the whole connection, not one entity: credentials
    refused (401), the instance unavailable as a whole (a hibernating ServiceNow developer
    instance) or a right every entity needs (``connection_level`` permission errors, e.g.
    no read access to the journal). One self-clearing connection error; None when ``exc``
    is none of those (the caller handles it per entity)."""
    if isinstance(exc, TrackerAuthenticationError):
        return login_refused(connection=connection, exc=exc)
    if isinstance(exc, TrackerUnavailable):
        return connection_error_clearing(
            connection=connection, message=exc.message, reason="unavailable"
        )
    if isinstance(exc, TrackerPermissionError) and getattr(exc, "connection_level", False):
        return connection_error_clearing(
            connection=connection, message=exc.message, reason="permission"
        )
    return None


def connection_error_clearing(*, connection: Connection, message: str, reason: str) -> SyncError:
    """A connection-level error that clears by itself: raised once (as
    :func:`connection_error_raise`), then the instance is probed every
    ``CONNECTION_PROBE_SECONDS`` (doubling, at most an hour) by :func:`probes_run`."""
    error = connection_error_raise(connection=connection, message=message)
    first = timezone.now() + timedelta(seconds=settings.CONNECTION_PROBE_SECONDS)
    ConnectionProbe.objects.update_or_create(
        connection=connection,
        defaults={"reason": reason},
        create_defaults={"reason": reason, "next_probe_at": first},
    )
    return error


def probe_delay(probes: int) -> float:
    """Seconds until the next probe after ``probes`` failed ones: base × 2^n, at most 3600."""
    return min(3600.0, settings.CONNECTION_PROBE_SECONDS * 2 ** min(probes, 16))


def probes_run(*, now=None) -> int:
    """Probe every connection whose self-clearing error is due; returns how many cleared.

    A probe is the tracker's Test connection (the same checks an admin runs). Passing it
    resolves the connection's error and resumes the connection (:func:`connection_retry`);
    failing it schedules the next probe later. A connection no longer in Error (an admin
    retried or deactivated it) drops its probe.
    """
    from connections.selectors import tracker_adapter_get

    now = now or timezone.now()
    cleared = 0
    for probe in ConnectionProbe.objects.filter(next_probe_at__lte=now).select_related(
        "connection"
    ):
        connection = probe.connection
        if connection.status != Connection.Status.ERROR:
            probe.delete()
            continue
        problem: TrackerError | None = None
        try:
            tracker_adapter_get().test_connection()
        except TrackerPermissionError as exc:
            if exc.connection_level:  # else: some entities hidden, not what stopped it
                problem = exc
        except TrackerError as exc:
            problem = exc
        if problem is not None:
            node_tracker_failed(connection=connection, exc=problem, now=now)
            ConnectionProbe.objects.filter(pk=probe.pk).update(
                probes=F("probes") + 1,
                next_probe_at=now + timedelta(seconds=probe_delay(probe.probes + 1)),
                last_probe_error=str(problem)[:2000],
            )
            SyncError.objects.filter(
                level=SyncError.Level.CONNECTION, connection=connection, resolved_at__isnull=True
            ).update(last_seen_at=now)
            continue
        probe.delete()
        node_tracker_ok(now=now)
        connection_retry(connection=connection)
        logger.info("Connection %s recovered by itself: the instance passed a probe", connection.pk)
        cleared += 1
    return cleared


def entity_error(
    *, twin: Twin, event: SyncEvent | None, message: str, code: str = "", remote: bool = False
) -> SyncError:
    """Record an entity-level error for ``twin`` (and ``event``); called inside a transaction.

    The same open error of the twin again (same message) counts another occurrence
    instead of a second row. ``code`` names the kind of failure (``entity_gone``: the
    incident no longer exists); ``remote`` marks a failure the remote node reported while
    applying our change. The admins get a mail (``sync.mail``, one per connection and
    ``ERROR_MAIL_PERIOD``).
    """
    now = timezone.now()
    same = SyncError.objects.filter(
        level=SyncError.Level.ENTITY, twin=twin, message=message, resolved_at__isnull=True
    ).first()
    if same:
        SyncError.objects.filter(pk=same.pk).update(
            occurrences=F("occurrences") + 1, last_seen_at=now, event=event or same.event
        )
        error = same
    else:
        error = SyncError.objects.create(
            level=SyncError.Level.ENTITY,
            connection_id=twin.connection_id,
            twin=twin,
            event=event,
            message=message,
            code=code[:40],
            remote=remote,
        )
    Twin.objects.filter(pk=twin.pk).update(last_error=message)
    from ..mail import errors_mail_soon  # the mail module reads the errors back

    errors_mail_soon(connection_id=twin.connection_id)
    return error


def error_resolve(*, error: SyncError, requested_by: str = "") -> None:
    """Resolve ``error`` without retrying (the admin ignores what failed). Idempotent.

    An entity error really clears the twin's error state: its failed events are set
    aside (done, their error text kept), the twin's last error and the remote's reported
    error are cleared, so later changes of the twin flow again. A connection error
    resumes the connection (as Retry does: there is nothing else to set aside).
    With ``requested_by`` (an admin's user name) the audit log gets a ``resolved`` entry.
    """
    if requested_by and error.resolved_at is None:
        _audit(requested_by, "resolved", error)
    if error.level == SyncError.Level.CONNECTION and error.connection_id:
        connection_retry(connection=error.connection)
        return
    now = timezone.now()
    with transaction.atomic():
        SyncError.objects.filter(pk=error.pk, resolved_at__isnull=True).update(resolved_at=now)
        if error.twin_id:
            if not SyncError.objects.filter(
                twin_id=error.twin_id, resolved_at__isnull=True
            ).exists():
                SyncEvent.objects.filter(
                    twin_id=error.twin_id, status=SyncEvent.Status.ERROR
                ).update(status=SyncEvent.Status.DONE, done_at=now)
                Twin.objects.filter(pk=error.twin_id).update(last_error="", remote_error="")
            twin_status_refresh(error.twin_id)
            nudge.apply(error.twin_id)
            nudge.deliver(error.connection_id)


def error_retry(*, error: SyncError, requested_by: str = "") -> None:
    """Resolve ``error`` and retry what failed: the twin's failed events, or the whole connection.

    For a failure the remote node reported, the failed change is sent again with the same
    event id: the remote node then retries its failed apply (``sync.services.receive``).
    With ``requested_by`` (an admin's user name) the audit log gets a ``retried`` entry.
    """
    if requested_by:
        _audit(requested_by, "retried", error)
    if error.level == SyncError.Level.CONNECTION and error.connection_id:
        connection_retry(connection=error.connection)
    elif error.twin_id:
        Twin.objects.filter(pk=error.twin_id).update(remote_error="")
        twin_retry(twin=error.twin)
    else:
        SyncError.objects.filter(pk=error.pk, resolved_at__isnull=True).update(
            resolved_at=timezone.now()
        )


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
        ConnectionProbe.objects.filter(connection=connection).delete()
        SyncEvent.objects.filter(connection=connection, status__in=OPEN_EVENT_STATUSES).update(
            next_attempt_at=now
        )
        ExalateRequest.objects.filter(
            connection=connection, status=ExalateRequest.Status.QUEUED
        ).update(next_attempt_at=now)
        nudge.drain()


def _audit(requested_by: str, action: str, error: SyncError) -> None:
    """One audit entry for an admin's Retry / Resolve of ``error``."""
    from audit.services import audit_record

    key = (error.twin.local_key or error.twin.remote_key) if error.twin_id else ""
    where = f" (twin {key})" if key else ""
    if not where and error.connection_id:
        where = f" (connection {error.connection.name})"
    audit_record(
        actor=requested_by,
        action=action,
        target=f"{error.get_level_display().lower()} error #{error.pk}{where}",
        detail=error.message[:500],
    )


def twin_retry(*, twin: Twin, requested_by: str = "") -> None:
    """Retry a twin after an entity-level error: failed events go back to the queue (attempts
    reset), the twin is scanned again, and its open errors are resolved. With
    ``requested_by`` (the twin's Retry button, the API) the audit log gets a ``retried`` entry."""
    if requested_by:
        from audit.services import audit_record

        audit_record(
            actor=requested_by,
            action="retried",
            target=f"twin {twin.local_key or twin.remote_key or twin.pk}",
            detail=f"on connection {twin.connection.name}",
        )
    now = timezone.now()
    with transaction.atomic():
        SyncError.objects.filter(twin=twin, resolved_at__isnull=True).update(resolved_at=now)
        SyncEvent.objects.filter(twin=twin, status=SyncEvent.Status.ERROR).update(
            status=SyncEvent.Status.QUEUED, attempts=0, next_attempt_at=now, last_error=""
        )
        Twin.objects.filter(pk=twin.pk).update(last_error="", claimed_until=None, claimed_by="")
        from .attachments import attachment_states_retry  # attachments imports this module

        attachment_states_retry(twin)  # refused / too-large / skipped attachments go again
        detect.twin_request_scan(twin_ids=[twin.pk])
        twin_status_refresh(twin.pk)
        nudge.apply(twin.pk)
        nudge.deliver(twin.connection_id)


# --- Node-level errors: this node's own tracker instance cannot be worked with at all -------

#: The causes of a node-level error (``SyncError.code``): one open error per cause.
NODE_CAUSES = ("node_credentials", "node_unavailable", "node_unreachable")


def _node_cause(exc: Exception) -> str:
    if isinstance(exc, TrackerAuthenticationError):
        return "node_credentials"
    if isinstance(exc, TrackerUnavailable):
        return "node_unavailable"
    if isinstance(exc, TrackerUnreachable):
        return "node_unreachable"
    return ""


def _failing_since(connection: Connection, cause: str):
    """When this node's tracker began failing for ``cause``, as far as the rows tell: the
    self-clearing connection error's probe (credentials, unavailable: the connection is in
    Error and only probed), else one poll after the last poll that worked."""
    if cause != "node_unreachable":
        probe = ConnectionProbe.objects.filter(connection=connection).only("created_at").first()
        if probe is not None:
            return probe.created_at
    last = (
        ConnectionSyncState.objects.filter(pk=connection.pk)
        .values_list("last_detect_at", flat=True)
        .first()
    )
    return (last or connection.created_at) + timedelta(seconds=settings.CHANGE_POLL_INTERVAL)


def _node_message(cause: str, exc: Exception) -> str:
    from connections.selectors import tracker_adapter_class_get

    name = tracker_adapter_class_get().display_name or "The tracker"
    again = "This error resolves itself on the first poll that works."
    if cause == "node_credentials":
        return (
            f"{name} refuses this node's login: {exc}. Nothing is read or written until it "
            "accepts it: check the user and password (or the OAuth client) in General "
            f"settings. {again}"
        )
    if cause == "node_unavailable":
        return (
            f"{name} is not serving requests: {exc}. Nothing is read or written until it is "
            "back (a hibernating developer instance wakes when someone logs in to it). "
            f"{again}"
        )
    return (
        f"This node cannot reach its {name} instance: {exc}. Check the instance URL in "
        f"General settings, the network, and that the instance is up. {again}"
    )


def node_tracker_failed(*, connection: Connection, exc: Exception, now=None) -> SyncError | None:
    """Change detection (or a probe) on ``connection`` failed with ``exc``. When this node's
    own tracker instance refuses its credentials (401, ``TrackerAuthenticationError``), is
    unavailable as a whole (a hibernating ServiceNow instance, ``TrackerUnavailable``) or
    does not answer (DNS, refused connection, timeout: ``TrackerUnreachable``) and has done
    so for longer than one poll cycle (a later poll fails too: at least half a
    ``CHANGE_POLL_INTERVAL`` after the failure began), nothing syncs on this node: record
    ONE open node-level error for that cause (again: ``occurrences`` + 1, message and
    last-seen updated) and mail the admins (``sync.mail``, node-level). Returns the error,
    or None (another kind of failure, or the first poll that failed)."""
    cause = _node_cause(exc)
    if not cause:
        return None
    now = now or timezone.now()
    since = _failing_since(connection, cause)
    open_error = SyncError.objects.filter(
        level=SyncError.Level.NODE, code=cause, resolved_at__isnull=True
    ).exists()
    if not open_error and (now - since).total_seconds() < settings.CHANGE_POLL_INTERVAL / 2:
        return None
    return node_error_raise(code=cause, message=_node_message(cause, exc), now=now)


def node_error_raise(*, code: str, message: str, now=None) -> SyncError:
    """Record ONE open node-level error with ``code`` (a unique constraint holds one open
    per code), or count another occurrence of it; the admins get a mail."""
    now = now or timezone.now()
    lookup = {"level": SyncError.Level.NODE, "code": code[:40], "resolved_at__isnull": True}
    with transaction.atomic():
        error = SyncError.objects.filter(**lookup).first()
        if error is None:
            try:
                with transaction.atomic():
                    error = SyncError.objects.create(
                        level=SyncError.Level.NODE, code=code[:40], message=message
                    )
            except IntegrityError:  # another worker recorded it a moment ago
                error = SyncError.objects.get(**lookup)
            else:
                logger.warning("Nothing syncs on this node: %s", message)
        else:
            SyncError.objects.filter(pk=error.pk).update(
                occurrences=F("occurrences") + 1, message=message, last_seen_at=now
            )
        from ..mail import errors_mail_soon

        errors_mail_soon(connection_id=None)
    return error


def node_tracker_ok(*, now=None) -> int:
    """A poll (or probe) of this node's tracker worked: its open node-level errors are
    resolved (the rows stay, with ``resolved_at``, as history). Returns how many; one
    cheap read when there is none (called on every poll)."""
    qs = SyncError.objects.filter(
        level=SyncError.Level.NODE, code__in=NODE_CAUSES, resolved_at__isnull=True
    )
    if not qs.exists():
        return 0
    resolved = qs.update(resolved_at=now or timezone.now())
    logger.info("This node's tracker works again: %d node error(s) resolved", resolved)
    return resolved
