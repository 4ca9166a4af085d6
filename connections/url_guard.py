"""The one guard on addresses this node sends requests to on another node's behalf.

An admin types a node URL at Initiate; anyone can mint an invitation code that names an
initiator URL; a peer reports its own URL. Each would make this node send a request, so
before any node-to-node request the URL goes through :func:`guard_node_url`:

* only ``http`` and ``https``, with a host; the query and fragment are dropped (they would
  choose the path requested), and so is user info;
* the host name is resolved and **every** address it resolves to is checked: link-local
  (169.254.0.0/16, fe80::/10, which holds the cloud metadata services), the metadata
  addresses of the large clouds (169.254.169.254, fd00:ec2::254, 100.100.100.200),
  unspecified (0.0.0.0, ::), multicast, broadcast and reserved addresses are refused;
  IPv4 written as a number (``2852039166``) or mapped into IPv6 (``::ffff:169.254.169.254``)
  is checked as the IPv4 address it is;
* metadata host names (``metadata.google.internal``, ``metadata``) are refused by name;
* private ranges (10/8, 172.16/12, 192.168/16, fc00::/7) and loopback stay allowed: nodes
  live on company networks, and two nodes may share a machine.

``NODE_URL_ALLOW`` (comma-separated host names or CIDR ranges) lets an address through
that the rules refuse; ``NODE_URL_DENY`` refuses more. Redirects are never followed by the
transport (a node answers directly), so there is no second hop to check.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

METADATA_NAMES = frozenset({"metadata.google.internal", "metadata", "metadata.azure.internal"})
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class NodeAddressRefused(ValueError):
    """The URL may not be requested. ``str(exc)`` says why, in an admin's words."""


def _entries(value) -> list[str]:
    if isinstance(value, str):
        value = value.split(",")
    return [v.strip().lower() for v in value or () if v and v.strip()]


def _matches(host: str, addresses: Iterable[Address], entries: Iterable[str]) -> bool:
    for entry in entries:
        if entry == host:
            return True
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        if any(a.version == network.version and a in network for a in addresses):
            return True
    return False


def _plain(address: Address) -> Address:
    """IPv4-mapped (``::ffff:a.b.c.d``) and 6to4/Teredo-free view of an address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def address_problem(address: Address) -> str | None:
    """Why this node must not send a request to ``address``, or None when it may."""
    address = _plain(address)
    if address in METADATA_ADDRESSES:
        return "it is a cloud metadata service address"
    if address.is_unspecified:
        return "it is the unspecified address"
    if address.is_link_local:
        return "it is a link-local address (where cloud metadata services live)"
    if address.is_multicast:
        return "it is a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address == ipaddress.IPv4Address(
        "255.255.255.255"
    ):
        return "it is the broadcast address"
    if address.is_reserved and not address.is_private:
        return "it is a reserved address"
    return None


def resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to (A and AAAA). Raises NodeAddressRefused when none."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise NodeAddressRefused(f"The host name {host} cannot be resolved.") from None
    addresses = []
    for info in infos:
        text = info[4][0].split("%", 1)[0]  # drop an IPv6 zone id
        try:
            addresses.append(ipaddress.ip_address(text))
        except ValueError:
            continue
    if not addresses:
        raise NodeAddressRefused(f"The host name {host} resolves to no address.")
    return addresses


def base_url(url: str) -> str:
    """``scheme://host[:port][/path]`` of ``url``: query, fragment and user info dropped, no
    trailing slash (a node behind a proxy may live under a path such as ``/exalate``).

    Raises NodeAddressRefused when the URL is not http(s) with a host.
    """
    parts = urlsplit((url or "").strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise NodeAddressRefused(
            f"{url!r} is not an http:// or https:// address of a node (for example https://exalate.example.com)."
        )
    try:
        port = parts.port
    except ValueError:
        raise NodeAddressRefused(f"{url!r} has a port that is not a number.") from None
    host = parts.hostname
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/"), "", ""))


def _literal_addresses(host: str) -> list[Address]:
    """The address a host written as an IP literal stands for (``2852039166``, ``0xA9FEA9FE``
    and ``169.254.169.254`` alike, as the C resolver reads them), or [] for a name."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        return [ipaddress.IPv4Address(socket.inet_aton(host))]
    except OSError:
        return []


def guard_node_url(url: str, *, resolve_name: bool = True) -> str:
    """The base URL (see :func:`base_url`) of ``url`` when this node may request it.

    ``resolve_name`` False checks without a DNS lookup (scheme, metadata names, hosts written
    as addresses): the Accept wizard's Next uses it; the request itself always resolves.
    Raises NodeAddressRefused saying why not (see the module docstring for the rules).
    """
    base = base_url(url)
    parts = urlsplit(base)
    host = (parts.hostname or "").lower().rstrip(".")
    allow = _entries(getattr(settings, "NODE_URL_ALLOW", ()))
    deny = _entries(getattr(settings, "NODE_URL_DENY", ()))
    if host in allow:
        return base
    if host in METADATA_NAMES:
        raise NodeAddressRefused(
            f"{host} is a cloud metadata service: a node is never there, so this node does not send requests to it."
        )
    addresses = _literal_addresses(host)
    if not addresses and not resolve_name:
        return base
    if not addresses:
        addresses = resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
    if _matches(host, addresses, allow):
        return base
    if _matches(host, [_plain(a) for a in addresses] + list(addresses), deny):
        raise NodeAddressRefused(
            f"{host} is on this node's deny list (NODE_URL_DENY): this node does not send requests to it."
        )
    for address in addresses:
        problem = address_problem(address)
        if problem:
            shown = _plain(address)
            where = host if str(shown) == host else f"{host} ({shown})"
            raise NodeAddressRefused(
                f"This node does not send requests to {where}: {problem}. "
                "If a node really lives there, add it to NODE_URL_ALLOW."
            )
    return base
