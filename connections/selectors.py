"""Reads of node settings and connections that pages and services need."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from trackers.errors import TrackerError
from trackers.interface import TrackerAdapter, TrackerConfig
from trackers.registry import adapter_class, adapter_classes

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
    env = environment_tracker_config()  # the environment's tracker wins, as in tracker_config_get
    tracker = (env.tracker if env is not None else "") or node.tracker
    return NodeIdentity(
        node_id=str(node.node_id),
        name=settings.NODE_NAME or node.name or f"{_display_name(tracker)} node",
        public_url=(settings.NODE_PUBLIC_URL or node.public_url or "").rstrip("/"),
        tracker=tracker,
    )


def _display_name(tracker: str) -> str:
    try:
        return adapter_class(tracker).display_name or tracker
    except TrackerError:
        return tracker or "Exalate"


def environment_tracker_config() -> TrackerConfig | None:
    """The tracker configuration the environment fixes (e.g. ``SERVICENOW_*``), or None.

    Each registered adapter class is asked (``TrackerAdapter.environment_config``); the
    first that has one wins, so a scripted install needs no General settings.
    """
    for cls in adapter_classes().values():
        config = cls.environment_config()
        if config is not None:
            return config
    return None


def tracker_config_get() -> TrackerConfig:
    """Return the tracker settings: from the environment when it fixes them (the adapter says
    which variables), otherwise from General settings."""
    config = environment_tracker_config()
    if config is not None:
        return config
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


def tracker_adapter_get() -> TrackerAdapter:
    """The adapter of this node's own tracker instance, built from its configuration.

    ``adapter_class(config.tracker).from_config(config)``; raises TrackerError (admin words)
    when no instance is configured yet or no adapter is registered for the tracker.
    """
    config = tracker_config_get()
    cls = adapter_class(config.tracker or "servicenow")
    if not config.instance_url:
        raise TrackerError(
            f"This node has no {cls.display_name or config.tracker} instance configured: "
            "fill in General settings first."
        )
    return cls.from_config(config)


def tracker_adapter_class_get() -> type[TrackerAdapter]:
    """The adapter class of this node's tracker (labels, key rules) without building a client."""
    return adapter_class(tracker_config_get().tracker or "servicenow")


def settings_locked_fields() -> dict[str, str]:
    """General settings fields the environment sets (scripted installs): shown read-only,
    never saved from the page. Secrets map to '' (never shown)."""
    locked: dict[str, str] = {}
    if settings.NODE_NAME:
        locked["name"] = settings.NODE_NAME
    if settings.NODE_PUBLIC_URL:
        locked["public_url"] = settings.NODE_PUBLIC_URL
    config = environment_tracker_config()
    if config is not None:
        locked.update(
            tracker=config.tracker,
            instance_url=config.instance_url,
            auth_method=config.auth_method,
            username=config.username,
            client_id=config.client_id,
            password="",
            client_secret="",
        )
    return locked


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
