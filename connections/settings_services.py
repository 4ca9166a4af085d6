"""Writes of General settings: test the tracker connection, save, rotate the webhook token."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from trackers.errors import TrackerError
from trackers.interface import RightCheck, TrackerConfig
from trackers.registry import adapter_class

from .models import NodeSettings
from .selectors import node_settings_get

logger = logging.getLogger(__name__)


def tracker_config_from_form(*, data: dict, stored: NodeSettings) -> TrackerConfig:
    """Build the TrackerConfig the admin entered; blank secrets fall back to the stored ones."""
    return TrackerConfig(
        tracker=data.get("tracker") or stored.tracker,
        instance_url=data["instance_url"],
        auth_method=data.get("auth_method") or stored.auth_method,
        username=data.get("username", ""),
        password=data.get("password") or stored.password,
        client_id=data.get("client_id", ""),
        client_secret=data.get("client_secret") or stored.client_secret,
        from_env=False,
    )


def tracker_connection_test(*, config: TrackerConfig) -> tuple[bool, str, tuple[RightCheck, ...]]:
    """Try ``config`` against the instance. Returns ``(ok, message, rights)``; never raises TrackerError.

    The message says in words what failed (unreachable, wrong credentials, not a
    ServiceNow instance, missing read access) and never contains a secret. ``rights`` are
    the adapter's one-line-per-right findings (:class:`trackers.interface.ConnectionReport`;
    empty for a tracker that reports none), also when a read right is missing.
    """
    try:
        adapter = adapter_class(config.tracker or "servicenow").from_config(config)
        report = adapter.test_connection()
        return True, str(report), tuple(getattr(report, "rights", ()))
    except TrackerError as exc:
        logger.info("Test connection to %s failed: %s", config.instance_url, exc.__class__.__name__)
        return False, str(exc), tuple(getattr(exc, "rights", ()))


def node_settings_record_test(*, ok: bool, message: str) -> None:
    """Remember the last Test connection result (shown on the page and on Getting started)."""
    NodeSettings.objects.filter(pk=node_settings_get().pk).update(
        last_test_at=timezone.now(), last_test_ok=ok, last_test_message=message[:2000]
    )


@transaction.atomic
def node_settings_update(*, data: dict, locked: dict[str, str], user=None) -> NodeSettings:
    """Save the General settings in one transaction; fields in ``locked`` (environment) are left alone.

    Blank password / client secret keep the stored ones. The audit log gets one
    ``settings-changed`` entry by ``user`` naming the changed fields (never a value of a
    secret) when anything changed.
    """
    node = NodeSettings.objects.select_for_update().get(pk=node_settings_get().pk)
    before = {f: getattr(node, f) for f in _AUDITED_FIELDS}
    for field in (
        "name",
        "public_url",
        "tracker",
        "instance_url",
        "auth_method",
        "username",
        "client_id",
    ):
        if field not in locked and field in data:
            setattr(node, field, data[field])
    for secret in ("password", "client_secret"):
        if secret not in locked and data.get(secret):
            setattr(node, secret, data[secret])
    node.save()
    changed = [f for f in _AUDITED_FIELDS if getattr(node, f) != before[f]]
    if changed:
        from audit.services import audit_record

        audit_record(
            actor=user,
            action="settings-changed",
            target="General settings",
            detail="Changed: " + ", ".join(f.replace("_", " ") for f in changed),
        )
    return node


_AUDITED_FIELDS = (
    "name",
    "public_url",
    "tracker",
    "instance_url",
    "auth_method",
    "username",
    "password",
    "client_id",
    "client_secret",
)


@transaction.atomic
def webhook_token_rotate(*, user=None) -> str:
    """Replace the inbound webhook token with a new random one and return it (shown once).

    Recorded in the audit log as ``webhook-token-rotated`` by ``user`` (never the token).
    """
    node = NodeSettings.objects.select_for_update().get(pk=node_settings_get().pk)
    node.webhook_token = NodeSettings.new_webhook_token()
    node.save(update_fields=["webhook_token", "updated_at"])
    from audit.services import audit_record

    audit_record(
        actor=user,
        action="webhook-token-rotated",
        target="General settings",
        detail="the old webhook token no longer works",
    )
    return node.webhook_token
