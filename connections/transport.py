"""HTTP from this node to a remote node, signed with the connection's secret.

:func:`node_request` is the one way the sync engine calls another node. Errors are split
the way the sync queue needs them: :class:`NodeUnreachable` is transient (retry later,
honouring ``retry_after``), :class:`NodeRequestRejected` is permanent (a 4xx answer;
``status`` 401/403 means the node token was refused). Tokens and secrets are never logged.
"""

from __future__ import annotations

import json as jsonlib
import logging
import threading

import requests
from django.conf import settings

from trackers.retry_after import parse_retry_after

from .models import Connection
from .node_auth import NodeAuthError, sign_node_request
from .url_guard import NodeAddressRefused, guard_node_url

logger = logging.getLogger(__name__)
_local = threading.local()
USER_AGENT = "exalate-console-node/1"


class NodeTransportError(Exception):
    """Base of node-to-node transport errors. ``message`` is safe to show to an admin."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NodeUnreachable(NodeTransportError):
    """Transient: connection refused, DNS, timeout, HTTP 5xx or 429. Retry later.

    ``retry_after`` is the number of seconds the remote node asked us to wait (from its
    ``Retry-After`` header), or None. ``status`` is the HTTP status if one was received.
    """

    def __init__(
        self, message: str, *, retry_after: float | None = None, status: int | None = None
    ):
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class NodeRequestRejected(NodeTransportError):
    """Permanent: the remote node answered 4xx (not 429). ``status`` is the HTTP status.

    401 and 403 mean the remote refused this node's token (wrong secret, unknown
    connection, clock skew); ``message`` carries the remote's ``{"error": ...}`` text.
    """

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.headers["User-Agent"] = USER_AGENT
        _local.session = session
    return session


class NodeAddressBlocked(NodeTransportError):
    """Permanent: the URL is one this node never requests (``connections.url_guard``):
    not http(s), or a link-local, metadata, unspecified or deny-listed address."""


def check_node_url(url: str, *, resolve_name: bool = True) -> str:
    """Return the base URL (``scheme://host[:port]``) of ``url`` if this node may request it.

    Every request to another node passes here (:func:`send`), so the address guard of
    ``connections.url_guard`` applies to Initiate, Accept's handshake and all sync traffic.
    ``resolve_name`` False skips the DNS lookup (see ``guard_node_url``). Raises
    ``NodeAddressBlocked`` (a ``NodeTransportError``) saying why not.
    """
    try:
        return guard_node_url(url, resolve_name=resolve_name)
    except NodeAddressRefused as exc:
        raise NodeAddressBlocked(str(exc)) from None


def error_text(response: requests.Response) -> str:
    """The remote's error sentence when its body has the node API's own error shape
    (``{"error": "<sentence>"}``, or DRF's ``{"detail": ...}``), cut to 300 characters;
    otherwise only ``HTTP <status> <reason>``: an arbitrary body (a proxy's page, or what
    some other server answers) is never shown to the admin."""
    data = None
    if "json" in (response.headers.get("Content-Type") or "").lower():
        try:
            data = response.json()
        except ValueError:
            data = None
    if isinstance(data, dict):
        for key in ("error", "detail"):
            if isinstance(data.get(key), str) and data[key].strip():
                return " ".join(data[key].split())[:300]
    return f"HTTP {response.status_code} {response.reason or ''}".strip()


def send(
    base_url: str,
    method: str,
    path: str,
    *,
    token: str | None,
    body: bytes = b"",
    content_type: str | None = None,
    stream: bool = False,
    timeout: float | None = None,
    headers: dict | None = None,
) -> requests.Response:
    """Send one request to ``base_url + path`` with ``Authorization: Bearer <token>`` (if given).

    Returns the response for 1xx-3xx; raises ``NodeUnreachable`` (connection error,
    timeout, 5xx, 429) or ``NodeRequestRejected`` (other 4xx). Redirects are not followed
    (a node answers directly).
    """
    url = check_node_url(base_url) + path  # the address guard: every node request passes here
    all_headers = {"Accept": "application/json"}
    if content_type:
        all_headers["Content-Type"] = content_type
    if headers:
        all_headers.update(headers)
    if token:
        all_headers["Authorization"] = f"Bearer {token}"
    timeout = settings.NODE_REQUEST_TIMEOUT if timeout is None else timeout
    try:
        response = _session().request(
            method.upper(),
            url,
            data=body or None,
            headers=all_headers,
            timeout=timeout,
            stream=stream,
            allow_redirects=False,
        )
    except requests.Timeout:
        raise NodeUnreachable(f"{base_url} did not answer within {timeout:g} s.") from None
    except requests.RequestException as exc:
        raise NodeUnreachable(f"{base_url} cannot be reached ({exc.__class__.__name__}).") from None
    status = response.status_code
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        message = f"{base_url} answered HTTP {status}: {error_text(response)}"
        response.close()
        raise NodeUnreachable(message, retry_after=retry_after, status=status)
    if status >= 400:
        message = error_text(response)
        response.close()
        logger.info("Node %s refused %s %s: HTTP %s", base_url, method.upper(), path, status)
        raise NodeRequestRejected(status, message or f"HTTP {status}")
    return response


def node_request(
    connection: Connection,
    method: str,
    path: str,
    *,
    json=None,
    data: bytes | None = None,
    stream: bool = False,
    timeout: float | None = None,
    headers: dict | None = None,
) -> requests.Response:
    """Send a signed request on ``connection`` to ``connection.remote_url + path``.

    ``path`` starts with ``/`` (e.g. ``/api/node/v1/messages``). ``json`` is serialised
    here (compact UTF-8) so that the signed body is exactly the bytes sent; ``data``
    sends raw bytes instead. ``timeout`` is seconds (default ``NODE_REQUEST_TIMEOUT``).
    With ``stream=True`` the caller must close the response.

    Raises ``NodeUnreachable`` (transient), ``NodeRequestRejected`` (permanent 4xx), or
    ``NodeTransportError`` when the connection has no remote URL (the remote polls this
    node instead), is local, or has no secret yet.
    """
    if connection.type == Connection.Type.LOCAL:
        raise NodeTransportError(
            f"Connection {connection.name} is local: deliver to its peer without HTTP."
        )
    if not connection.remote_url:
        raise NodeTransportError(
            f"The remote node of connection {connection.name} has no URL: it polls this node instead."
        )
    content_type = None
    if json is not None:
        body = jsonlib.dumps(json, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        content_type = "application/json"
    else:
        body = data or b""
    try:
        token = sign_node_request(connection, body)
    except NodeAuthError as exc:
        raise NodeTransportError(exc.message) from None
    return send(
        connection.remote_url,
        method,
        path,
        token=token,
        body=body,
        content_type=content_type,
        stream=stream,
        timeout=timeout,
        headers=headers,
    )
