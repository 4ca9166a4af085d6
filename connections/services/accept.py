"""The Accept wizard: read an invitation code, refuse it early, accept it.

:func:`invitation_check` is the wizard's Next (no remote call, nothing written);
:func:`invitation_accept` runs the handshake with the initiating node
(:func:`~connections.services.handshake.handshake_send`) and stores this node's end, or,
for a local invitation, creates both rows here without HTTP. The code itself is decoded
in ``connections/invitations.py``.
"""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from ..invitations import InvitationCodeError, InvitationPayload, decode_invitation
from ..models import Connection, Invitation
from ..selectors import node_identity_get
from ..transport import NodeTransportError, check_node_url
from .errors import ConnectionSetupError
from .handshake import handshake_send, invitation_mark_accepted, invitation_refuse_unusable
from .initiate import connection_name_validate
from .projects import incoming_project_check, tracker_has_projects

logger = logging.getLogger(__name__)


def _expiry_text(expires_at: int) -> str:
    return datetime.fromtimestamp(expires_at, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def invitation_check(*, code: str) -> InvitationPayload:
    """Read ``code`` and refuse it early if this node cannot accept it.

    Checks format and integrity, expiry, that it was made for this node (when the
    initiator named a destination node), and that this node has not accepted it already.
    Makes no remote call and writes nothing. Raises ``ConnectionSetupError``.
    """
    try:
        payload = decode_invitation(code)
    except InvitationCodeError as exc:
        raise ConnectionSetupError(exc.message, field="code") from None
    if payload.expired:
        raise ConnectionSetupError(
            f"This invitation expired on {_expiry_text(payload.expires_at)}. "
            f"Ask the admin of {payload.node_name or payload.node_url} for a new one.",
            status=410,
            field="code",
        )
    if payload.type != Connection.Type.LOCAL:
        try:
            # Refuse early a code that points at a metadata address (the handshake's request
            # is guarded again, after resolving the name).
            check_node_url(payload.node_url, resolve_name=False)
        except NodeTransportError as exc:
            raise ConnectionSetupError(
                f"This invitation names an initiating node this node will not contact: {exc.message}",
                field="code",
            ) from None
    me = node_identity_get()
    local = payload.node_id == me.node_id
    if local != (payload.type == Connection.Type.LOCAL):
        if local:
            raise ConnectionSetupError(
                "This invitation was made by this node for another node: accept it on the destination node.",
                status=403,
                field="code",
            )
        raise ConnectionSetupError(
            "This invitation is for a local connection on another node: accept it there.",
            status=403,
            field="code",
        )
    if payload.to_node_id and payload.to_node_id != me.node_id:
        raise ConnectionSetupError(
            f"This invitation was made for another node, not this one. Ask the admin of "
            f"{payload.node_name or payload.node_url} to initiate the connection with this node's Exalate URL"
            f"{' (' + me.public_url + ')' if me.public_url else ''}.",
            status=403,
            field="code",
        )
    if local:
        invitation = Invitation.objects.filter(pk=payload.invitation_id).first()
        if invitation is None:
            raise ConnectionSetupError(
                "This node has no record of this invitation (was it made before a database reset?).",
                status=404,
                field="code",
            )
        invitation_refuse_unusable(invitation, accepting_node_id=None)
    else:
        if Connection.objects.filter(pk=payload.connection_id).exists():
            raise ConnectionSetupError(
                f"This invitation has already been accepted: connection {payload.name} exists on this node.",
                status=409,
                field="code",
            )
        if not payload.node_url:
            raise ConnectionSetupError(
                "This invitation names no URL of the initiating node.", field="code"
            )
    return payload


def invitation_accept(*, code: str, user, project: str = "") -> Connection:
    """Accept an invitation on this node; return this node's end of the connection, Active.

    ``project``: on a node whose tracker has projects, the key chosen in "Select a project
    for the incoming sync" (checked with the adapter before the handshake; required there,
    ignored elsewhere); stored as the connection's ``incoming_project_key`` / ``_name``.

    Remote invitation: runs the handshake with the initiating node (which turns Active
    only if this node proves it holds the code's secret and the invitation is still
    pending, unexpired and meant for this node), then stores this end with the same
    connection id. Private invitation: this end gets ``polls_remote=True``. Local
    invitation (made by this node): the second row is created next to the first, each
    pointing at the other through ``local_peer``.

    Raises ``ConnectionSetupError``; on error nothing is stored here, and the
    initiating node changes only if it accepted the handshake.
    """
    payload = invitation_check(code=code)
    chosen = incoming_project_check(project) if tracker_has_projects() else None
    where = (
        {"incoming_project_key": chosen.key, "incoming_project_name": chosen.name[:255]}
        if chosen
        else {}
    )
    if payload.node_id == node_identity_get().node_id:
        return _accept_local(payload, user, where)
    name = accepted_name_validate(payload)  # before the handshake: nothing is sent for a bad name
    remote = handshake_send(payload)
    now = timezone.now()
    with transaction.atomic():
        connection = Connection.objects.create(
            id=payload.connection_id,
            name=name,
            type=payload.type,
            mode=payload.mode,
            status=Connection.Status.ACTIVE,
            is_initiator=False,
            remote_node_id=remote.node_id,
            remote_url=payload.node_url,
            remote_name=(remote.name or payload.node_name)[:100],
            remote_tracker=(remote.tracker or payload.tracker)[:20],
            polls_remote=payload.type == Connection.Type.PRIVATE,
            secret=payload.secret,
            established_at=now,
            **where,
        )
    logger.info("Connection %s accepted by %s", payload.name, getattr(user, "username", user))
    _audit_accepted(user, connection.name, payload)
    return connection


def _accept_local(payload: InvitationPayload, user, where: dict) -> Connection:
    """Accept a local invitation: both ends on this node, no HTTP; both create their mirrors
    in the chosen project (``where``: the incoming project fields, or empty)."""
    now = timezone.now()
    with transaction.atomic():
        try:
            invitation = Invitation.objects.select_for_update().get(pk=payload.invitation_id)
        except Invitation.DoesNotExist:
            raise ConnectionSetupError(
                "This node has no record of this invitation (was it made before a database reset?).",
                status=404,
                field="code",
            ) from None
        if not hmac.compare_digest(invitation.secret, payload.secret):
            raise ConnectionSetupError(
                "This invitation's secret does not match the one this node made.",
                status=403,
                field="code",
            )
        invitation_refuse_unusable(invitation, accepting_node_id=None)
        initiator = invitation.connection
        if initiator is None:
            raise ConnectionSetupError(
                "The connection of this invitation was deleted.", status=410, field="code"
            )
        peer = Connection.objects.create(
            name=initiator.name,
            type=Connection.Type.LOCAL,
            mode=initiator.mode,
            status=Connection.Status.ACTIVE,
            is_initiator=False,
            remote_node_id=initiator.remote_node_id,
            remote_url=initiator.remote_url,
            remote_name=initiator.remote_name,
            remote_tracker=initiator.remote_tracker,
            local_peer=initiator,
            secret=initiator.secret,
            established_at=now,
            **where,
        )
        Connection.objects.filter(pk=initiator.pk).update(
            status=Connection.Status.ACTIVE,
            local_peer=peer,
            established_at=now,
            updated_at=now,
            **where,
        )
        invitation_mark_accepted(invitation, node_id=node_identity_get().node_id, now=now)
    logger.info("Local connection %s accepted by %s", peer.name, getattr(user, "username", user))
    _audit_accepted(user, peer.name, payload)
    return peer


def accepted_name_validate(payload: InvitationPayload) -> str:
    """Check the connection name an invitation brings, as Initiate checks a typed one.

    ``payload`` is the decoded invitation. A local invitation's name was checked on this
    node when it was made (both ends share it). For any other, the name must be usable
    here (at most 100 letters, digits, spaces, dots, dashes or underscores; Initiate's
    rule) and not taken by another connection of this node. Otherwise raises
    ``ConnectionSetupError`` (field ``code``; 409 when taken) saying what to ask the
    initiating admin for. Returns the trimmed name.
    """
    if payload.node_id == node_identity_get().node_id:
        return payload.name
    name = (payload.name or "").strip()
    shown = name if len(name) <= 100 else name[:100] + "…"
    initiator = payload.node_name or payload.node_url or "the initiating node"
    if name and Connection.objects.filter(name__iexact=name).exists():
        raise ConnectionSetupError(
            f"A connection named {shown} already exists on this node, so this invitation cannot"
            f" be accepted here. Ask the admin of {initiator} to initiate the connection again"
            " with another name.",
            status=409,
            field="code",
        )
    try:
        return connection_name_validate(name)
    except ConnectionSetupError:
        raise ConnectionSetupError(
            f"This invitation names the connection {shown!r}, which is not a usable connection"
            " name (it needs 1 to 100 letters, digits, spaces, dots, dashes or underscores)."
            f" Ask the admin of {initiator} for an invitation with another name.",
            field="code",
        ) from None


def _audit_accepted(user, name: str, payload: InvitationPayload) -> None:
    from audit.services import audit_record

    initiator = payload.node_name or payload.node_url or "the initiating node"
    audit_record(
        actor=user,
        action="accepted",
        target=f"connection {name}",
        detail=f"{payload.type} connection, invitation from {initiator}",
    )
