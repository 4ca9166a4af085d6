"""The handshake: the accepting node proves it holds the invitation's one-time secret.

The acceptor sends ``POST <initiator>/api/node/v1/handshake`` with a JWT signed with the
secret (:func:`handshake_send`); the initiator checks it (``node_auth``), and
:func:`handshake_receive` turns its Pending connection Active. The invitation rules both
sides share (revoked, used, expired, meant for another node) are
:func:`invitation_refuse_unusable` and :func:`invitation_mark_accepted`.
"""

from __future__ import annotations

import json
import logging
import uuid

from django.db import transaction
from django.utils import timezone

from ..invitations import InvitationPayload
from ..models import Connection, Invitation
from ..node_auth import sign_token
from ..selectors import node_identity_get, node_info_get
from ..transport import (
    NodeRequestRejected,
    NodeTransportError,
    NodeUnreachable,
    check_node_url,
    send,
)
from .destination import RemoteNode
from .errors import ConnectionSetupError

logger = logging.getLogger(__name__)

HANDSHAKE_PATH = "/api/node/v1/handshake"


def handshake_send(payload: InvitationPayload) -> RemoteNode:
    """POST the handshake to the initiating node; return its node information."""
    me = node_identity_get()
    body = json.dumps(
        {
            "invitation_id": payload.invitation_id,
            "connection_id": payload.connection_id,
            "node": {
                "id": me.node_id,
                "name": me.name,
                "url": me.public_url,
                "tracker": me.tracker,
            },
        },
        separators=(",", ":"),
    ).encode()
    token = sign_token(
        secret=payload.secret,
        issuer=me.node_id,
        audience=payload.node_id,
        connection_id=payload.connection_id,
        body=body,
        extra={"iid": payload.invitation_id},
    )
    who = payload.node_name or payload.node_url
    try:
        response = send(
            payload.node_url,
            "POST",
            HANDSHAKE_PATH,
            token=token,
            body=body,
            content_type="application/json",
        )
    except NodeUnreachable as exc:
        raise ConnectionSetupError(
            f"The initiating node {who} cannot be reached at {payload.node_url}: {exc.message} "
            "Nothing was stored on this node; try again when it is back.",
            status=502,
        ) from None
    except NodeRequestRejected as exc:
        status = exc.status if exc.status in (403, 404, 409, 410) else 400
        raise ConnectionSetupError(
            f"{who} refused the invitation: {exc.message}", status=status, field="code"
        ) from None
    except NodeTransportError as exc:
        raise ConnectionSetupError(exc.message, field="code") from None
    try:
        data = response.json()
        node = data["node"]
        remote = RemoteNode(
            node_id=str(uuid.UUID(str(node["node_id"]))),
            name=str(node.get("name") or ""),
            tracker=str(node.get("tracker") or ""),
            url=str(node.get("url") or ""),
            modes=node.get("modes") or {},
        )
    except (ValueError, KeyError, TypeError):
        raise ConnectionSetupError(
            f"{who} answered the handshake with something unexpected.", status=502
        ) from None
    if remote.node_id != payload.node_id:
        raise ConnectionSetupError(
            f"The node at {payload.node_url} is not the node that made this invitation.",
            status=502,
            field="code",
        )
    return remote


def handshake_receive(*, invitation: Invitation, claims: dict, body: bytes) -> dict:
    """The initiating node's side of the handshake; return ``{"node": <this node's info>, "connection": {...}}``.

    ``invitation`` and ``claims`` come from ``node_auth.verify_handshake_request`` (the
    token was signed with the invitation's secret, so the caller holds the code);
    ``body`` is ``{"invitation_id", "connection_id", "node": {"id", "name", "url", "tracker"}}``.
    The pending connection turns Active with the accepting node's details. Calling it
    again for an invitation the same node already accepted answers the same (a retry
    after a lost answer). Raises ``ConnectionSetupError``.
    """
    try:
        data = json.loads(body)
        node = data["node"]
        node_id = str(uuid.UUID(str(node["id"])))
        node_url = str(node.get("url") or "").strip().rstrip("/")
    except (ValueError, KeyError, TypeError):
        raise ConnectionSetupError("The handshake body is not what this node expects.") from None
    if node_id != claims["iss"] or str(data.get("invitation_id")) != str(invitation.id):
        raise ConnectionSetupError("The handshake body does not match its token.")
    if node_id == node_identity_get().node_id:
        raise ConnectionSetupError("A node cannot accept its own invitation over HTTP.", status=403)
    if node_url:
        try:
            # Stored for later requests, which are guarded again after resolving the name.
            node_url = check_node_url(node_url, resolve_name=False)
        except NodeTransportError as exc:
            raise ConnectionSetupError(exc.message) from None
    answer_connection = {
        "id": str(invitation.connection_uuid),
        "name": invitation.connection_name,
    }
    if (
        invitation.status == Invitation.Status.ACCEPTED
        and str(invitation.accepted_by_node_id) == node_id
        and invitation.connection_id
    ):
        return {"node": node_info_get(), "connection": answer_connection}
    now = timezone.now()
    with transaction.atomic():
        invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
        invitation_refuse_unusable(invitation, accepting_node_id=node_id)
        connection = invitation.connection
        if connection is None or connection.status != Connection.Status.PENDING:
            raise ConnectionSetupError(
                "The connection of this invitation no longer waits for acceptance.", status=410
            )
        private = connection.type == Connection.Type.PRIVATE
        Connection.objects.filter(pk=connection.pk, status=Connection.Status.PENDING).update(
            status=Connection.Status.ACTIVE,
            remote_node_id=node_id,
            remote_url="" if private else (invitation.destination_url or node_url),
            remote_name=str(node.get("name") or "")[:100],
            remote_tracker=str(node.get("tracker") or "")[:20],
            established_at=now,
            updated_at=now,
        )
        invitation_mark_accepted(invitation, node_id=node_id, now=now)
    logger.info("Connection %s accepted by node %s", invitation.connection_name, node_id)
    return {"node": node_info_get(), "connection": answer_connection}


def invitation_refuse_unusable(invitation: Invitation, *, accepting_node_id: str | None) -> None:
    """Raise ``ConnectionSetupError`` unless ``invitation`` can still be accepted."""
    if invitation.status == Invitation.Status.REVOKED:
        raise ConnectionSetupError(
            "This invitation was revoked by the admin of the initiating node. Ask them for a new one.",
            status=410,
            field="code",
        )
    if invitation.status == Invitation.Status.ACCEPTED:
        raise ConnectionSetupError(
            "This invitation has already been accepted; an invitation code works once. Ask for a new one.",
            status=409,
            field="code",
        )
    if invitation.expires_at <= timezone.now():
        raise ConnectionSetupError(
            f"This invitation expired on {invitation.expires_at:%Y-%m-%d %H:%M} UTC. Ask for a new one.",
            status=410,
            field="code",
        )
    if (
        accepting_node_id
        and invitation.intended_node_id
        and str(invitation.intended_node_id) != accepting_node_id
    ):
        raise ConnectionSetupError(
            f"This invitation was made for another node ({invitation.destination_url}), not the one accepting it.",
            status=403,
            field="code",
        )


def invitation_mark_accepted(invitation: Invitation, *, node_id: str, now) -> None:
    """Mark the Pending ``invitation`` Accepted by ``node_id`` at ``now`` and wipe its code.

    Raises ``ConnectionSetupError`` (409) when another request accepted it first (the
    update is conditional on Pending, so two tabs cannot both win).
    """
    updated = Invitation.objects.filter(pk=invitation.pk, status=Invitation.Status.PENDING).update(
        status=Invitation.Status.ACCEPTED, accepted_at=now, accepted_by_node_id=node_id, code=""
    )
    if updated != 1:
        raise ConnectionSetupError(
            "This invitation has just been accepted by someone else.", status=409, field="code"
        )
