"""After set-up: revoke a pending invitation, activate, deactivate, delete a connection.

A local connection is two rows on this node (each the other's ``local_peer``); every
change here applies to both.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from ..models import Connection, Invitation
from .errors import ConnectionSetupError

logger = logging.getLogger(__name__)


def invitation_revoke(*, connection: Connection, user) -> None:
    """Revoke the pending invitation of ``connection`` and delete the pending connection.

    The code then fails on any node with "revoked". Calling it for an invitation
    already revoked does nothing. Raises ``ConnectionSetupError`` (409) when the
    connection is not a pending one this node initiated.
    """
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update().filter(connection_uuid=connection.id).first()
        )
        if invitation is None or not connection.is_initiator:
            raise ConnectionSetupError(
                "This connection has no invitation of this node to revoke.", status=409
            )
        if invitation.status == Invitation.Status.REVOKED:
            return
        if (
            invitation.status != Invitation.Status.PENDING
            or connection.status != Connection.Status.PENDING
        ):
            raise ConnectionSetupError(
                "The invitation has already been accepted: deactivate or delete the connection instead.",
                status=409,
            )
        Invitation.objects.filter(pk=invitation.pk).update(
            status=Invitation.Status.REVOKED, revoked_at=timezone.now(), code=""
        )
        Connection.objects.filter(pk=connection.pk).delete()
    logger.info("Invitation for %s revoked by %s", connection.name, getattr(user, "username", user))
    _audit(user, "revoked", connection, "pending invitation revoked; the code no longer works")


def _pair(connection: Connection) -> list:
    """The ids of ``connection`` and, for a local connection, its peer row."""
    ids = [connection.pk]
    if connection.type == Connection.Type.LOCAL and connection.local_peer_id:
        ids.append(connection.local_peer_id)
    return ids


def connection_activate(*, connection: Connection, user) -> Connection:
    """Turn a Deactivated (or Error) connection Active again; queued changes then go out.

    Both rows of a local connection change together. Active stays Active. Raises
    ``ConnectionSetupError`` (409) for a Pending connection.
    """
    if connection.status == Connection.Status.PENDING:
        raise ConnectionSetupError(
            "This connection is still waiting for its invitation to be accepted.", status=409
        )
    if connection.status != Connection.Status.ACTIVE:
        with transaction.atomic():
            Connection.objects.filter(pk__in=_pair(connection)).exclude(
                status=Connection.Status.PENDING
            ).update(
                status=Connection.Status.ACTIVE,
                last_error="",
                last_error_at=None,
                updated_at=timezone.now(),
            )
        logger.info(
            "Connection %s activated by %s", connection.name, getattr(user, "username", user)
        )
        _audit(user, "activated", connection, f"was {connection.get_status_display()}")
    connection.refresh_from_db()
    return connection


def connection_deactivate(*, connection: Connection, user) -> Connection:
    """Deactivate a connection: nothing is sent or applied, but changes stay queued.

    Both rows of a local connection change together; Deactivated stays Deactivated.
    Raises ``ConnectionSetupError`` (409) for a Pending connection.
    """
    if connection.status == Connection.Status.PENDING:
        raise ConnectionSetupError(
            "A pending connection cannot be deactivated: revoke its invitation or delete it.",
            status=409,
        )
    if connection.status != Connection.Status.DEACTIVATED:
        with transaction.atomic():
            Connection.objects.filter(pk__in=_pair(connection)).update(
                status=Connection.Status.DEACTIVATED, updated_at=timezone.now()
            )
        logger.info(
            "Connection %s deactivated by %s", connection.name, getattr(user, "username", user)
        )
        _audit(user, "deactivated", connection, f"was {connection.get_status_display()}")
    connection.refresh_from_db()
    return connection


def connection_delete(*, connection: Connection, user) -> None:
    """Delete this node's end of a connection (both rows of a local one).

    The synced incidents stay as they are in both instances; they stop syncing. The
    sync engine's twins and queued events of the connection go with it (they cascade).
    A pending invitation of the connection is revoked, so its code stops working. The
    other node keeps its end until its admin deletes it. Deleting twice does nothing.
    """
    with transaction.atomic():
        Invitation.objects.filter(
            connection_uuid=connection.pk, status=Invitation.Status.PENDING
        ).update(status=Invitation.Status.REVOKED, revoked_at=timezone.now(), code="")
        Connection.objects.filter(pk__in=_pair(connection)).delete()
    logger.info("Connection %s deleted by %s", connection.name, getattr(user, "username", user))
    _audit(user, "deleted", connection, "this node's end; the synced incidents stay as they are")


def _audit(user, action: str, connection: Connection, detail: str) -> None:
    from audit.services import audit_record

    audit_record(actor=user, action=action, target=f"connection {connection.name}", detail=detail)
