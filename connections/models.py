"""Node settings (this node's identity and its tracker), connections and invitations."""

from __future__ import annotations

import secrets
import uuid

from django.db import models

from exalate_console.crypto import EncryptedTextField


class NodeSettings(models.Model):
    """This node's General settings: one row (pk=1).

    Values given in the environment (NODE_PUBLIC_URL, SERVICENOW_*) win over these;
    the settings page then shows them read-only. ``password``, ``client_secret`` and
    ``webhook_token`` are encrypted at rest and never shown back.
    """

    class Tracker(models.TextChoices):
        SERVICENOW = "servicenow", "ServiceNow"

    class AuthMethod(models.TextChoices):
        BASIC = "basic", "Basic (user and password)"
        OAUTH = "oauth", "OAuth 2 (client id and secret)"

    node_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100, blank=True)
    public_url = models.URLField("Exalate URL", blank=True)
    tracker = models.CharField(max_length=20, choices=Tracker.choices, default=Tracker.SERVICENOW)
    instance_url = models.URLField("Instance URL", blank=True)
    auth_method = models.CharField(max_length=10, choices=AuthMethod.choices, default=AuthMethod.BASIC)
    username = models.CharField(max_length=150, blank=True)
    password = EncryptedTextField(blank=True)
    client_id = models.CharField("OAuth client id", max_length=255, blank=True)
    client_secret = EncryptedTextField("OAuth client secret", blank=True)
    webhook_token = EncryptedTextField(blank=True)
    last_test_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True)
    last_test_message = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "node settings"

    def __str__(self) -> str:
        return self.name or str(self.node_id)

    @staticmethod
    def new_webhook_token() -> str:
        return secrets.token_urlsafe(32)


class Connection(models.Model):
    """One end of a connection between this node and a remote node.

    A local connection (both ends on this node) is two rows that point at each other
    through ``local_peer``. ``secret`` is the shared HS256 key agreed at the handshake.
    The side whose peer has no URL and which has one itself waits to be polled; the side
    without a URL (``polls_remote``) starts all traffic.
    """

    class Type(models.TextChoices):
        PUBLIC = "public", "Public"
        PRIVATE = "private", "Private"
        LOCAL = "local", "Local"

    class Mode(models.TextChoices):
        BASIC = "basic", "Basic"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACTIVE = "active", "Active"
        DEACTIVATED = "deactivated", "Deactivated"
        ERROR = "error", "Error"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    type = models.CharField(max_length=10, choices=Type.choices, default=Type.PUBLIC)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.BASIC)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    is_initiator = models.BooleanField(default=True)
    remote_node_id = models.UUIDField(null=True, blank=True)
    remote_url = models.URLField(blank=True)
    remote_name = models.CharField(max_length=100, blank=True)
    remote_tracker = models.CharField(max_length=20, blank=True)
    polls_remote = models.BooleanField(
        default=False, help_text="True when this node has no URL and must poll the remote node."
    )
    local_peer = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    secret = EncryptedTextField(blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "created_at"]

    def __str__(self) -> str:
        return self.name
