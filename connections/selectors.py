"""Reads of node settings and connections that pages and services need."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from .models import Connection, NodeSettings


def node_settings_get() -> NodeSettings:
    """Return this node's settings row, creating it (with a new node id) on first use."""
    node, created = NodeSettings.objects.get_or_create(
        pk=1, defaults={"webhook_token": NodeSettings.new_webhook_token()}
    )
    return node


@dataclass(frozen=True)
class NodeIdentity:
    """``node_id`` (str uuid), ``name``, ``public_url`` ('' when private), ``tracker``."""

    node_id: str
    name: str
    public_url: str
    tracker: str


def node_identity_get() -> NodeIdentity:
    """This node's identity, the environment's NODE_PUBLIC_URL / NODE_NAME winning over the page."""
    node = node_settings_get()
    return NodeIdentity(
        node_id=str(node.node_id),
        name=settings.NODE_NAME or node.name or "ServiceNow node",
        public_url=(settings.NODE_PUBLIC_URL or node.public_url or "").rstrip("/"),
        tracker=node.tracker,
    )


@dataclass(frozen=True)
class TrackerConfig:
    """How to reach this node's tracker. ``from_env`` is True when the environment set it.

    ``password`` and ``client_secret`` are plaintext here: never log this object.
    """

    tracker: str
    instance_url: str
    auth_method: str
    username: str
    password: str
    client_id: str
    client_secret: str
    from_env: bool

    def __repr__(self) -> str:  # never print secrets
        return f"TrackerConfig(tracker={self.tracker!r}, instance_url={self.instance_url!r}, auth_method={self.auth_method!r}, username={self.username!r}, from_env={self.from_env})"


def tracker_config_get() -> TrackerConfig:
    """Return the tracker settings: from the environment when SERVICENOW_INSTANCE_URL is set,
    otherwise from General settings."""
    if settings.SERVICENOW_INSTANCE_URL:
        return TrackerConfig(
            tracker="servicenow",
            instance_url=settings.SERVICENOW_INSTANCE_URL,
            auth_method=settings.SERVICENOW_AUTH,
            username=settings.SERVICENOW_USERNAME,
            password=settings.SERVICENOW_PASSWORD,
            client_id=settings.SERVICENOW_CLIENT_ID,
            client_secret=settings.SERVICENOW_CLIENT_SECRET,
            from_env=True,
        )
    node = node_settings_get()
    return TrackerConfig(
        tracker=node.tracker,
        instance_url=node.instance_url.rstrip("/"),
        auth_method=node.auth_method,
        username=node.username,
        password=node.password,
        client_id=node.client_id,
        client_secret=node.client_secret,
        from_env=False,
    )


def node_info_get() -> dict:
    """This node's public information, as ``GET /api/node/v1/info`` returns it.

    Shape: ``{"product": "exalate-console", "node_id": str, "name": str,
    "tracker": "servicenow", "url": str ('' when private), "modes": {"basic": True,
    "visual": False, "script": False}, "api_version": 1}``. Holds no secret.
    """
    identity = node_identity_get()
    return {
        "product": "exalate-console",
        "node_id": identity.node_id,
        "name": identity.name,
        "tracker": identity.tracker,
        "url": identity.public_url,
        "modes": {"basic": True, "visual": False, "script": False},
        "api_version": 1,
    }


def connection_list():
    """All connections of this node (QuerySet of Connection), by name; the invitation preloaded."""
    return Connection.objects.select_related("invitation").order_by("name", "created_at")


def connection_get(connection_id) -> Connection:
    """The Connection with ``connection_id`` (uuid or str). Raises Connection.DoesNotExist."""
    return Connection.objects.select_related("invitation").get(pk=connection_id)


def connection_rows():
    """The Connections tab's rows: like :func:`connection_list`, but a local connection shows once.

    A local connection is two rows on this node; the accepting row is hidden when its
    initiating peer exists (actions on one row change both).
    """
    return connection_list().exclude(
        type=Connection.Type.LOCAL, is_initiator=False, local_peer__isnull=False
    )


def connections_to_url_get(url: str) -> list:
    """Connections of this node whose remote node answers at ``url`` (trailing slash ignored).

    The Initiate wizard warns with them: a second connection to the same node syncs on
    its own, so an incident exalated on both gets two mirrors.
    """
    from .models import Connection

    url = (url or "").rstrip("/")
    if not url:
        return []
    return list(
        Connection.objects.filter(remote_url__in=[url, url + "/"]).exclude(
            type=Connection.Type.LOCAL
        )
    )


def twin_count_get(*, connection) -> int:
    """How many twins (synced incident pairs) ``connection`` has on this node."""
    from sync.models import Twin

    return Twin.objects.filter(connection=connection).count()
