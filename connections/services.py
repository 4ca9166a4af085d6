"""Everything that writes connections or calls another node to set one up.

The flow (after https://docs.exalate.com/docs/set-up-a-connection-in-basic-mode-7062):

1. :func:`destination_check` -- the Initiate wizard's first step: is the Destination
   Instance URL a node of this console (``GET <url>/api/node/v1/info``), this node
   itself (a local connection), or absent ("I don't have a URL": a private connection)?
2. :func:`connection_initiate` -- a Pending connection, its Invitation and the code.
3. :func:`invitation_check` -- the Accept wizard's Next: read the code, refuse it early
   when it is expired, made for another node, or already used here.
4. :func:`invitation_accept` -- the accepting node proves it holds the one-time secret
   in a handshake (``POST <initiator>/api/node/v1/handshake``, a JWT signed with it);
   the initiator turns Active (:func:`handshake_receive`), then the acceptor stores its
   own end, Active. A local invitation is accepted without HTTP.

Every service raises :class:`ConnectionSetupError` with a message for the admin and an
HTTP status for the API; nothing half-made stays behind on either node.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .invitations import (
    InvitationCodeError,
    InvitationPayload,
    decode_invitation,
    encode_invitation,
    new_secret,
)
from .models import Connection, Invitation
from .node_auth import sign_token
from .selectors import node_identity_get, node_info_get
from .transport import (
    NodeRequestRejected,
    NodeTransportError,
    NodeUnreachable,
    check_node_url,
    send,
)

logger = logging.getLogger(__name__)

INFO_PATH = "/api/node/v1/info"
HANDSHAKE_PATH = "/api/node/v1/handshake"
#: Seconds to wait for a destination's node information in the wizard.
INFO_TIMEOUT = 10.0
NAME_RE = re.compile(r"^[\w.\- ]{1,100}$")
GENERAL_SETTINGS_HINT = "Set this node's Exalate URL in General settings"


class ConnectionSetupError(Exception):
    """A connection cannot be set up or changed as asked.

    ``message`` is shown to the admin as is; ``status`` is the HTTP status the API
    answers with (400 bad input, 403 not for this node, 404 unknown, 409 state conflict
    such as a reused code, 410 expired or revoked, 502 the other node failed);
    ``field`` names the form field the message belongs to, if any.
    """

    def __init__(self, message: str, *, status: int = 400, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field


@dataclass(frozen=True)
class RemoteNode:
    """What a node says about itself at ``/api/node/v1/info``; ``url`` is where we reached it."""

    node_id: str
    name: str
    tracker: str
    url: str
    modes: dict


@dataclass(frozen=True)
class DestinationCheck:
    """Result of the wizard's first step.

    ``type`` is public/private/local; ``url`` the normalised destination URL ('' for
    private); ``node`` the remote node's information (None for private; this node's
    own for local); ``modes`` maps basic/visual/script to whether it can be chosen.
    """

    type: str
    url: str
    node: RemoteNode | None
    modes: dict


def _normalise_url(url: str) -> str:
    return (url or "").strip().rstrip("/")


def _same_url(a: str, b: str) -> bool:
    return bool(a) and bool(b) and _normalise_url(a).lower() == _normalise_url(b).lower()


def short_name(name: str, fallback: str) -> str:
    """A node name reduced to letters and digits (at most 40), for ``Local_to_Remote``."""
    cleaned = re.sub(r"[^A-Za-z0-9]+", "", name or "")[:40]
    return cleaned or fallback


def default_connection_name(check: DestinationCheck) -> str:
    """``<this node's short name>_to_<the destination's short name>`` (Exalate's ``Local_to_Remote``)."""
    local = short_name(node_identity_get().name, "Local")
    remote = short_name(check.node.name, "Remote") if check.node else "Remote"
    return f"{local}_to_{remote}"


def node_info_fetch(url: str) -> RemoteNode:
    """Ask ``url`` for its node information (``GET <url>/api/node/v1/info``, no auth).

    Raises ``ConnectionSetupError`` (field ``destination_url``) when the URL is not
    http(s), does not answer, or answers but is not a node of this console.
    """
    try:
        base = check_node_url(url)
    except NodeTransportError:
        raise ConnectionSetupError(
            "Enter the destination's URL starting with http:// or https://, e.g. https://sn-node.example.com.",
            field="destination_url",
        ) from None
    try:
        response = send(
            base,
            "GET",
            INFO_PATH,
            token=None,
            timeout=min(INFO_TIMEOUT, settings.NODE_REQUEST_TIMEOUT),
        )
    except NodeUnreachable as exc:
        if exc.status:
            raise ConnectionSetupError(
                f"{base} answered with an error (HTTP {exc.status}). Is the node running? Try again later.",
                field="destination_url",
            ) from None
        raise ConnectionSetupError(
            f"{base} cannot be reached from this node. Check the URL and that the destination node is running"
            " and reachable from here; if it cannot be reached, turn on \u201cI don't have a URL\u201d.",
            field="destination_url",
        ) from None
    except NodeRequestRejected:
        response = None
    data = None
    if response is not None and response.status_code == 200:
        try:
            data = response.json()
        except ValueError:
            data = None
    if not isinstance(data, dict) or data.get("product") != "exalate-console":
        parts = urlsplit(base)
        hint = (
            f" Leave out the path: enter just {parts.scheme}://{parts.netloc}."
            if parts.path not in ("", "/")
            else ""
        )
        raise ConnectionSetupError(
            f"{base} is not an Exalate console node: it did not answer {INFO_PATH}. Enter the destination's"
            f" Exalate URL, shown in General settings on that node.{hint}",
            field="destination_url",
        )
    try:
        node_id = str(uuid.UUID(str(data.get("node_id"))))
    except ValueError:
        raise ConnectionSetupError(
            f"{base} answered with a node id that is not valid.", field="destination_url"
        ) from None
    if data.get("api_version") != 1:
        raise ConnectionSetupError(
            f"{base} runs another version of the console (API {data.get('api_version')!r}); update both nodes.",
            field="destination_url",
        )
    modes = data.get("modes") if isinstance(data.get("modes"), dict) else {}
    return RemoteNode(
        node_id=node_id,
        name=str(data.get("name") or ""),
        tracker=str(data.get("tracker") or ""),
        url=base,
        modes={k: bool(modes.get(k)) for k in ("basic", "visual", "script")},
    )


def _own_node_as_remote() -> RemoteNode:
    info = node_info_get()
    return RemoteNode(
        node_id=info["node_id"],
        name=info["name"],
        tracker=info["tracker"],
        url=info["url"],
        modes=info["modes"],
    )


def destination_check(*, destination_url: str, no_url: bool) -> DestinationCheck:
    """Decide the connection type for the wizard's first step and what modes it offers.

    ``no_url`` ("I don't have a URL") makes a private connection: the destination has
    no URL, so this node must have one. This node's own URL (or a URL that answers with
    this node's id) makes a local connection. Anything else must be a node of this
    console. Only Basic mode is available today. Raises ``ConnectionSetupError``.
    """
    me = node_identity_get()
    available = {"basic": True, "visual": False, "script": False}
    if no_url:
        if not me.public_url:
            raise ConnectionSetupError(
                "This node has no Exalate URL, so a node without a URL could not reach it either. "
                f"{GENERAL_SETTINGS_HINT}, or let the other node initiate the connection and accept its invitation here.",
                field="no_url",
            )
        return DestinationCheck(type=Connection.Type.PRIVATE, url="", node=None, modes=available)
    url = _normalise_url(destination_url)
    if not url:
        raise ConnectionSetupError(
            "Enter the Destination Instance URL, or turn on \u201cI don't have a URL\u201d.",
            field="destination_url",
        )
    if _same_url(url, me.public_url):
        return DestinationCheck(
            type=Connection.Type.LOCAL,
            url=me.public_url,
            node=_own_node_as_remote(),
            modes=available,
        )
    node = node_info_fetch(url)
    if node.node_id == me.node_id:
        return DestinationCheck(
            type=Connection.Type.LOCAL, url=node.url, node=_own_node_as_remote(), modes=available
        )
    if not me.public_url:
        raise ConnectionSetupError(
            "This node has no Exalate URL, so the destination could not answer it. "
            f"{GENERAL_SETTINGS_HINT}, or ask the destination's admin to initiate the connection and accept "
            "their invitation here.",
            field="destination_url",
        )
    modes = {k: available[k] and node.modes.get(k, False) for k in available}
    if not modes["basic"]:
        raise ConnectionSetupError(
            f"{node.url} does not offer Basic mode.", field="destination_url"
        )
    return DestinationCheck(type=Connection.Type.PUBLIC, url=node.url, node=node, modes=modes)


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
    return connection, code


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
        _refuse_unusable(invitation, accepting_node_id=None)
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


def invitation_accept(*, code: str, user) -> Connection:
    """Accept an invitation on this node; return this node's end of the connection, Active.

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
    if payload.node_id == node_identity_get().node_id:
        return _accept_local(payload, user)
    remote = _handshake_send(payload)
    now = timezone.now()
    with transaction.atomic():
        connection = Connection.objects.create(
            id=payload.connection_id,
            name=payload.name[:100],
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
        )
    logger.info("Connection %s accepted by %s", payload.name, getattr(user, "username", user))
    return connection


def _handshake_send(payload: InvitationPayload) -> RemoteNode:
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


def _accept_local(payload: InvitationPayload, user) -> Connection:
    """Accept a local invitation: both ends on this node, no HTTP."""
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
        _refuse_unusable(invitation, accepting_node_id=None)
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
        )
        Connection.objects.filter(pk=initiator.pk).update(
            status=Connection.Status.ACTIVE, local_peer=peer, established_at=now, updated_at=now
        )
        _mark_accepted(invitation, node_id=node_identity_get().node_id, now=now)
    logger.info("Local connection %s accepted by %s", peer.name, getattr(user, "username", user))
    return peer


def _refuse_unusable(invitation: Invitation, *, accepting_node_id: str | None) -> None:
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


def _mark_accepted(invitation: Invitation, *, node_id: str, now) -> None:
    updated = Invitation.objects.filter(pk=invitation.pk, status=Invitation.Status.PENDING).update(
        status=Invitation.Status.ACCEPTED, accepted_at=now, accepted_by_node_id=node_id, code=""
    )
    if updated != 1:
        raise ConnectionSetupError(
            "This invitation has just been accepted by someone else.", status=409, field="code"
        )


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
            check_node_url(node_url)
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
        _refuse_unusable(invitation, accepting_node_id=node_id)
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
        _mark_accepted(invitation, node_id=node_id, now=now)
    logger.info("Connection %s accepted by node %s", invitation.connection_name, node_id)
    return {"node": node_info_get(), "connection": answer_connection}


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
