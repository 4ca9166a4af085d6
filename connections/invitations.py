"""The invitation code: what the initiating node hands the accepting one.

Exalate documents what an invitation carries (shared secret, connection type and name,
initiator information, tracker type, the initiator's Exalate node URL;
https://docs.exalate.com/docs/basic-exalate-concepts) but not its encoding. Ours is::

    exalate1.<payload>.<check>

* ``exalate1`` names the format version (a later format gets a new prefix);
* ``<payload>`` is base64url (no padding) of compact JSON::

    {"v": 1, "iid": <invitation uuid>, "cid": <connection uuid>, "name": <connection name>,
     "type": "public"|"private"|"local", "mode": "basic",
     "node": {"id": <initiator node uuid>, "name": ..., "url": <initiator Exalate URL>,
              "tracker": "servicenow"},
     "to": <intended destination node uuid, or null for private>,
     "secret": <one-time shared secret, 43 url-safe chars>, "exp": <Unix seconds>}

* ``<check>`` is base64url of HMAC-SHA256(secret, ``exalate1.<payload>``): any change
  or truncation of the pasted code is caught before anything is sent. (Whoever holds a
  code holds its secret, so this is an integrity check, not a signature: the handshake
  is what proves the code was the initiator's; see ``services.invitation_accept``.)

Whitespace (line breaks from e-mail clients) is ignored when a code is read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass

PREFIX = "exalate"
VERSION = 1
_CHECK_LEN = 43  # base64url of 32 bytes, unpadded
_B64 = re.compile(r"^[A-Za-z0-9_-]*$")


class InvitationCodeError(Exception):
    """The code cannot be used. ``message`` says why in words an admin understands."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class InvitationPayload:
    """A decoded invitation. Ids are uuid strings; ``expires_at`` is Unix seconds."""

    invitation_id: str
    connection_id: str
    name: str
    type: str
    mode: str
    node_id: str
    node_name: str
    node_url: str
    tracker: str
    to_node_id: str | None
    secret: str
    expires_at: int

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at


def new_secret() -> str:
    """A fresh one-time shared secret: 32 random bytes, base64url (43 characters)."""
    return secrets.token_urlsafe(32)


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check(secret: str, signed_part: str) -> str:
    return _b64encode(
        hmac.new(secret.encode(), signed_part.encode("ascii"), hashlib.sha256).digest()
    )


def encode_invitation(payload: InvitationPayload) -> str:
    """Return the invitation code (ASCII, no whitespace) for ``payload``."""
    body = {
        "v": VERSION,
        "iid": payload.invitation_id,
        "cid": payload.connection_id,
        "name": payload.name,
        "type": payload.type,
        "mode": payload.mode,
        "node": {
            "id": payload.node_id,
            "name": payload.node_name,
            "url": payload.node_url,
            "tracker": payload.tracker,
        },
        "to": payload.to_node_id,
        "secret": payload.secret,
        "exp": payload.expires_at,
    }
    encoded = _b64encode(
        json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    )
    signed_part = f"{PREFIX}{VERSION}.{encoded}"
    return f"{signed_part}.{_check(payload.secret, signed_part)}"


_NOT_A_CODE = (
    "This is not an Exalate invitation code. Copy the whole code the other node's admin sent you."
)
_INCOMPLETE = (
    "This invitation code is incomplete: part of it is missing. Copy the whole code again."
)
_CHANGED = (
    "This invitation code has been changed since it was made. Copy it again exactly as it was sent."
)


def _uuid(value, field: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InvitationCodeError(f"{_CHANGED} (bad {field})") from None


def decode_invitation(code: str) -> InvitationPayload:
    """Read an invitation code; check its format version and integrity (not its expiry).

    Raises ``InvitationCodeError`` for an empty, malformed, truncated or changed code, or
    one made by another format version. Expiry, revocation and reuse are checked by the
    services, which know the time and the nodes' state.
    """
    text = re.sub(r"\s+", "", code or "")
    if not text:
        raise InvitationCodeError("Paste the invitation code first.")
    if f"{PREFIX}{VERSION}.".startswith(text):
        raise InvitationCodeError(_INCOMPLETE)
    match = re.match(rf"^{PREFIX}(\d+)\.", text)
    if not match:
        raise InvitationCodeError(_NOT_A_CODE)
    if int(match.group(1)) != VERSION:
        raise InvitationCodeError(
            f"This invitation code was made by another version of the console (format {match.group(1)}); "
            f"this node reads format {VERSION}. Update the older node, then make a new invitation."
        )
    parts = text.split(".")
    if len(parts) == 2:
        raise InvitationCodeError(_INCOMPLETE)
    if len(parts) != 3 or not all(_B64.match(p) for p in parts[1:]):
        raise InvitationCodeError(_NOT_A_CODE)
    _, encoded, check = parts
    if len(check) < _CHECK_LEN:
        raise InvitationCodeError(_INCOMPLETE)
    if len(check) > _CHECK_LEN:
        raise InvitationCodeError(_CHANGED)
    try:
        body = json.loads(_b64decode(encoded).decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        # The check part is whole, so the code was not cut at its end: it was edited.
        raise InvitationCodeError(_CHANGED) from None
    if not isinstance(body, dict) or not isinstance(body.get("secret"), str) or not body["secret"]:
        raise InvitationCodeError(_CHANGED)
    if not hmac.compare_digest(_check(body["secret"], f"{parts[0]}.{encoded}"), check):
        raise InvitationCodeError(_CHANGED)
    node = body.get("node")
    if not isinstance(node, dict):
        raise InvitationCodeError(_CHANGED)
    try:
        expires_at = int(body["exp"])
        payload = InvitationPayload(
            invitation_id=_uuid(body["iid"], "invitation id"),
            connection_id=_uuid(body["cid"], "connection id"),
            name=str(body["name"]),
            type=str(body["type"]),
            mode=str(body["mode"]),
            node_id=_uuid(node["id"], "node id"),
            node_name=str(node.get("name") or ""),
            node_url=str(node.get("url") or ""),
            tracker=str(node.get("tracker") or ""),
            to_node_id=_uuid(body["to"], "destination node id") if body.get("to") else None,
            secret=body["secret"],
            expires_at=expires_at,
        )
    except (KeyError, TypeError, ValueError):
        raise InvitationCodeError(_CHANGED) from None
    if payload.type not in ("public", "private", "local") or payload.mode != "basic":
        raise InvitationCodeError(
            f"This invitation is for a {payload.mode} {payload.type} connection, which this node does not support."
        )
    return payload
