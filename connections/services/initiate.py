"""Stage 2 of Initiate: a Pending connection, its Invitation and the invitation code."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..invitations import InvitationPayload, encode_invitation, new_secret
from ..models import Connection, Invitation
from ..selectors import node_identity_get
from .destination import default_connection_name, destination_check
from .errors import ConnectionSetupError

logger = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[\w.\- ]{1,100}$")


def connection_name_validate(name: str) -> str:
    """Return the trimmed connection name; raise ``ConnectionSetupError`` if it is not usable."""
    name = (name or "").strip()
    if not name:
        raise ConnectionSetupError("Give the connection a name.", field="name")
    if not NAME_RE.match(name):
        raise ConnectionSetupError(
            "Use at most 100 letters, digits, spaces, dots, dashes or underscores in the connection name.",
            field="name",
        )
    if Connection.objects.filter(name__iexact=name).exists():
        raise ConnectionSetupError(
            f"A connection named {name} already exists on this node: choose another name.",
            field="name",
        )
    return name


def connection_initiate(
    *, destination_url: str, no_url: bool, mode: str, name: str, user
) -> tuple[Connection, str]:
    """Create a Pending connection and its invitation; return ``(connection, invitation_code)``.

    ``destination_url`` is the destination's Exalate URL (ignored when ``no_url``); it is
    checked again here (a remote call, before anything is written). ``mode`` must be
    ``basic``. An empty ``name`` gets the default ``Local_to_Remote`` name. The code expires after ``INVITATION_TTL_DAYS`` days. Raises
    ``ConnectionSetupError``; on error nothing is stored.
    """
    if mode != Connection.Mode.BASIC:
        raise ConnectionSetupError(
            "Only Basic mode is available: Visual and Script are not built yet.", field="mode"
        )
    check = destination_check(destination_url=destination_url, no_url=no_url)
    name = connection_name_validate((name or "").strip() or default_connection_name(check))
    me = node_identity_get()
    secret = new_secret()
    expires = timezone.now() + timedelta(days=settings.INVITATION_TTL_DAYS)
    with transaction.atomic():
        connection = Connection.objects.create(
            name=name,
            type=check.type,
            mode=mode,
            status=Connection.Status.PENDING,
            is_initiator=True,
            remote_node_id=check.node.node_id if check.node else None,
            remote_url=check.url if check.type == Connection.Type.PUBLIC else "",
            remote_name=check.node.name if check.node else "",
            remote_tracker=check.node.tracker if check.node else "",
            secret=secret,
        )
        invitation = Invitation(
            connection=connection,
            connection_uuid=connection.id,
            connection_name=name,
            secret=secret,
            intended_node_id=check.node.node_id if check.node else None,
            destination_url=check.url,
            expires_at=expires,
        )
        code = encode_invitation(
            InvitationPayload(
                invitation_id=str(invitation.id),
                connection_id=str(connection.id),
                name=name,
                type=check.type,
                mode=mode,
                node_id=me.node_id,
                node_name=me.name,
                node_url=me.public_url,
                tracker=me.tracker,
                to_node_id=str(check.node.node_id) if check.node else None,
                secret=secret,
                expires_at=int(expires.timestamp()),
            )
        )
        invitation.code = code
        invitation.save()
    logger.info(
        "Connection %s (%s) initiated by %s", name, check.type, getattr(user, "username", user)
    )
    from audit.services import audit_record

    audit_record(
        actor=user,
        action="initiated",
        target=f"connection {name}",
        detail=f"{check.type} connection" + (f" to {check.url}" if check.url else ""),
    )
    return connection, code
