"""Stage 1 of Initiate: what kind of node is at the Destination Instance URL?

:func:`destination_check` decides public / private / local; :func:`node_info_fetch` asks a
URL for its node information (``GET <url>/api/node/v1/info``, no auth). Tests that need a
remote node without running one replace ``connections.services.destination.node_info_fetch``
(the one place :func:`destination_check` looks it up).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from ..models import Connection
from ..selectors import node_identity_get, node_info_get
from ..transport import (
    NodeRequestRejected,
    NodeTransportError,
    NodeUnreachable,
    check_node_url,
    send,
)
from .errors import ConnectionSetupError

INFO_PATH = "/api/node/v1/info"
#: Seconds to wait for a destination's node information in the wizard.
INFO_TIMEOUT = 10.0
GENERAL_SETTINGS_HINT = "Set this node's Exalate URL in General settings"


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
    typed = urlsplit((url or "").strip())
    if typed.scheme.lower() not in ("http", "https") or not typed.hostname:
        raise ConnectionSetupError(
            "Enter the destination's URL starting with http:// or https://, e.g. https://sn-node.example.com.",
            field="destination_url",
        )
    try:
        base = check_node_url(url)  # the address guard; query and fragment are dropped
    except NodeTransportError as exc:
        raise ConnectionSetupError(exc.message, field="destination_url") from None
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
        root = f"{urlsplit(base).scheme}://{urlsplit(base).netloc}"
        hint = f" Leave out the path: enter just {root}." if typed.path not in ("", "/") else ""
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
