"""Node-to-node authentication: a short-lived HS256 JWT signed with the connection's secret.

Exalate documents that the shared secret of the invitation is exchanged once and then
used to make "a JWT for each request" between nodes
(https://docs.exalate.com/docs/how-is-the-security-improved-with-exalate); the claim set
is not documented, so ours is:

=======  ================================================================================
claim    meaning
=======  ================================================================================
``iss``  the sending node's id (uuid string)
``aud``  the receiving node's id (uuid string)
``cid``  the id the *receiving* node knows the connection by. Remote connections: both
         nodes store the same id (the initiator's, carried in the invitation). Local
         connections (both ends on one node): the peer row's id, ``local_peer_id``; the
         sync engine delivers local messages without HTTP, so this is only for symmetry.
``iat``  issued at (Unix seconds)
``exp``  expiry (Unix seconds), at most :data:`TOKEN_LIFETIME` seconds after ``iat``
``jti``  a uuid4 hex; a receiver accepts each ``jti`` once (stored in ``UsedNodeToken``)
``bsha`` hex sha256 of the exact request body bytes (of ``b""`` for a GET)
=======  ================================================================================

The invitation handshake uses the same token with one more claim, ``iid`` (the
invitation id), checked against the invitation's secret: see :func:`verify_handshake_request`.

Tokens and secrets are never logged.
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from datetime import UTC, datetime

import jwt
from django.db import IntegrityError, transaction
from rest_framework import authentication, exceptions, permissions

from .models import Connection, Invitation, UsedNodeToken
from .selectors import node_identity_get

ALGORITHM = "HS256"
#: Seconds a token is valid after it is issued.
TOKEN_LIFETIME = 60
#: Seconds of clock difference between two nodes that are tolerated.
CLOCK_SKEW = 10
_REQUIRED = ["iss", "aud", "cid", "iat", "exp", "jti", "bsha"]


class NodeAuthError(Exception):
    """A node-to-node token was refused. ``message`` says why, in words (no secrets)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def body_sha256(body: bytes) -> str:
    """Hex sha256 of ``body`` (``b""`` when None)."""
    return hashlib.sha256(body or b"").hexdigest()


def sign_token(
    *,
    secret: str,
    issuer: str,
    audience: str,
    connection_id: str,
    body: bytes,
    extra: dict | None = None,
) -> str:
    """Return a compact HS256 JWT with the claims described in this module's docstring.

    ``extra`` adds claims (the handshake adds ``iid``). Raises ``NodeAuthError`` when the
    secret is empty.
    """
    if not secret:
        raise NodeAuthError("This connection has no shared secret: accept an invitation first.")
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": audience,
        "cid": connection_id,
        "iat": now,
        "exp": now + TOKEN_LIFETIME,
        "jti": uuid.uuid4().hex,
        "bsha": body_sha256(body),
    }
    if extra:
        claims.update(extra)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def sign_node_request(connection: Connection, body: bytes) -> str:
    """Return the JWT that authenticates a request with ``body`` (bytes) on ``connection``.

    ``iss`` is this node's id, ``aud`` the remote node's id (this node's own id for a
    local connection), ``cid`` is :attr:`Connection.peer_connection_id`. Valid for
    :data:`TOKEN_LIFETIME` seconds. Raises ``NodeAuthError`` when the connection has no
    secret or no known remote node yet (a pending connection).
    """
    me = node_identity_get().node_id
    if connection.type == Connection.Type.LOCAL:
        audience = me
    elif connection.remote_node_id:
        audience = str(connection.remote_node_id)
    else:
        raise NodeAuthError(
            f"Connection {connection.name} has no remote node yet: its invitation has not been accepted."
        )
    return sign_token(
        secret=connection.secret,
        issuer=me,
        audience=audience,
        connection_id=connection.peer_connection_id,
        body=body,
    )


def _unverified_claims(token: str) -> dict:
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise NodeAuthError("The node token is not a valid JWT.") from None
    if header.get("alg") != ALGORITHM:
        raise NodeAuthError(f"The node token must be signed with {ALGORITHM}.")
    if not isinstance(claims, dict):
        raise NodeAuthError("The node token is not a valid JWT.")
    return claims


def _verify(
    token: str,
    body: bytes,
    *,
    secret: str,
    required: list[str],
    secret_name: str = "this connection's shared secret",
) -> dict:
    """Check signature, audience (this node), times, body hash and replay; return the claims."""
    me = node_identity_get().node_id
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=me,
            leeway=CLOCK_SKEW,
            options={"require": required},
        )
    except jwt.ExpiredSignatureError:
        raise NodeAuthError(
            "The node token has expired: check that both nodes' clocks are right."
        ) from None
    except jwt.InvalidSignatureError:
        raise NodeAuthError(f"The node token's signature does not match {secret_name}.") from None
    except jwt.InvalidAudienceError:
        raise NodeAuthError("The node token was made for another node, not this one.") from None
    except jwt.ImmatureSignatureError:
        raise NodeAuthError(
            "The node token was issued in the future: check that both nodes' clocks are right."
        ) from None
    except jwt.MissingRequiredClaimError as exc:
        raise NodeAuthError(f"The node token lacks the {exc.claim!r} claim.") from None
    except jwt.PyJWTError as exc:
        raise NodeAuthError(f"The node token is invalid ({exc.__class__.__name__}).") from None
    try:
        iat, exp = int(claims["iat"]), int(claims["exp"])
    except (TypeError, ValueError):
        raise NodeAuthError("The node token's iat and exp must be whole seconds.") from None
    if exp - iat > TOKEN_LIFETIME:
        raise NodeAuthError(f"The node token is valid for longer than {TOKEN_LIFETIME} seconds.")
    if not isinstance(claims.get("bsha"), str) or claims["bsha"] != body_sha256(body):
        raise NodeAuthError(
            "The request body does not match the body hash the node token was signed for."
        )
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 8 <= len(jti) <= 64:
        raise NodeAuthError("The node token's jti must be a string of 8 to 64 characters.")
    _remember_jti(jti, exp)
    return claims


#: Share of verified requests that also delete the expired used-token rows. An expired token
#: is refused by its ``exp`` before its row is looked at, so the sweep is housekeeping only;
#: doing it on every request was a third of ``_remember_jti``'s cost (issue 14's profile).
JTI_SWEEP_SHARE = 0.02


def _remember_jti(jti: str, exp: int) -> None:
    """Store ``jti`` until it can no longer pass the expiry check; refuse it if already stored."""
    now = datetime.now(tz=UTC)
    keep_until = datetime.fromtimestamp(exp + CLOCK_SKEW, tz=UTC)
    if random.random() < JTI_SWEEP_SHARE:
        UsedNodeToken.objects.filter(expires_at__lt=now).delete()
    try:
        with transaction.atomic():
            UsedNodeToken.objects.create(jti=jti, expires_at=keep_until)
    except IntegrityError:
        raise NodeAuthError("This node token was already used once (a replayed request).") from None


def verify_node_request(token: str, body: bytes) -> Connection:
    """Return the Connection a node-to-node request on ``body`` (bytes) belongs to.

    Checks, in order: the connection named by ``cid`` exists here and is not pending; the
    HS256 signature with its secret; ``aud`` is this node; ``exp``/``iat`` with
    :data:`CLOCK_SKEW` seconds of leeway and a lifetime of at most
    :data:`TOKEN_LIFETIME`; ``iss`` is the connection's remote node; ``bsha`` matches
    ``body``; ``jti`` was never accepted before (stored in the database, so every web and
    worker process agrees). The connection's status (active/deactivated/error) is not
    checked: callers decide what a deactivated connection may still do.

    Raises ``NodeAuthError`` with a message saying what is wrong.
    """
    claims = _unverified_claims(token)
    try:
        connection = Connection.objects.get(pk=uuid.UUID(str(claims.get("cid"))))
    except (ValueError, Connection.DoesNotExist):
        raise NodeAuthError(
            "The node token names a connection that does not exist on this node."
        ) from None
    if connection.status == Connection.Status.PENDING or not connection.secret:
        raise NodeAuthError(f"Connection {connection.name} is not established yet on this node.")
    claims = _verify(token, body, secret=connection.secret, required=_REQUIRED)
    expected_issuer = (
        node_identity_get().node_id
        if connection.type == Connection.Type.LOCAL
        else str(connection.remote_node_id or "")
    )
    if claims["iss"] != expected_issuer:
        raise NodeAuthError(
            "The node token was issued by a node that is not this connection's remote node."
        )
    return connection


def verify_handshake_request(token: str, body: bytes) -> tuple[Invitation, dict]:
    """Authenticate an invitation handshake; return ``(invitation, claims)``.

    The token carries ``iid`` (the invitation id) and is signed with the invitation's
    one-time secret, which proves the accepting node holds the code. Signature, audience,
    times, body hash and replay are checked as in :func:`verify_node_request`; the
    invitation's status and expiry are left to the caller, so that it can say "revoked"
    or "already accepted" only to a node that proved it holds the secret.

    Raises ``NodeAuthError``.
    """
    claims = _unverified_claims(token)
    try:
        invitation = Invitation.objects.get(pk=uuid.UUID(str(claims.get("iid"))))
    except (ValueError, Invitation.DoesNotExist):
        raise NodeAuthError("This node made no invitation with that id.") from None
    claims = _verify(
        token,
        body,
        secret=invitation.secret,
        required=[*_REQUIRED, "iid"],
        secret_name="the invitation's secret (the code was changed, or was not made by this node)",
    )
    if str(claims["cid"]) != str(invitation.connection_uuid):
        raise NodeAuthError("The handshake names another connection than the invitation's.")
    return invitation, claims


class NodePrincipal:
    """The ``request.user`` of a node-to-node request: the remote node, not a person."""

    is_authenticated = True
    is_staff = False
    is_superuser = False
    is_anonymous = False

    def __init__(self, node_id: str):
        self.node_id = node_id

    def __str__(self) -> str:
        return f"node {self.node_id}"


class NodeJWTAuthentication(authentication.BaseAuthentication):
    """DRF authentication for node-to-node endpoints: ``Authorization: Bearer <jwt>``.

    Returns ``(NodePrincipal, connection)``: ``request.auth`` is the Connection. A
    missing or refused token raises ``AuthenticationFailed`` whose body is
    ``{"error": "..."}`` with HTTP 401 (put this class first in
    ``authentication_classes``). Only for views that nodes call.
    """

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        parts = header.split()
        if len(parts) != 2 or parts[0] != self.keyword:
            raise exceptions.AuthenticationFailed(
                {"error": "This endpoint needs a node token: Authorization: Bearer <jwt>."}
            )
        try:
            connection = verify_node_request(parts[1], request.body)
        except NodeAuthError as exc:
            raise exceptions.AuthenticationFailed({"error": exc.message}) from None
        issuer = (
            str(connection.remote_node_id)
            if connection.remote_node_id
            else node_identity_get().node_id
        )
        return NodePrincipal(issuer), connection

    def authenticate_header(self, request):
        return f'{self.keyword} realm="exalate-node"'


class InvitationJWTAuthentication(NodeJWTAuthentication):
    """DRF authentication for the handshake: a node token signed with an invitation's secret.

    Returns ``(NodePrincipal, (invitation, claims))``; see :func:`verify_handshake_request`.
    Failures are 401 with ``{"error": "..."}``.
    """

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        parts = header.split()
        if len(parts) != 2 or parts[0] != self.keyword:
            raise exceptions.AuthenticationFailed(
                {
                    "error": "The handshake needs Authorization: Bearer <jwt signed with the invitation's secret>."
                }
            )
        try:
            invitation, claims = verify_handshake_request(parts[1], request.body)
        except NodeAuthError as exc:
            raise exceptions.AuthenticationFailed({"error": exc.message}) from None
        return NodePrincipal(str(claims["iss"])), (invitation, claims)


class IsRemoteNode(permissions.BasePermission):
    """Allow only requests authenticated by :class:`NodeJWTAuthentication`."""

    message = "Only a connected node may call this endpoint."

    def has_permission(self, request, view):
        return isinstance(request.auth, Connection)
