"""Reads of node settings and connections that pages and services need."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from .models import NodeSettings


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
