"""Node settings (this node's identity and its tracker), connections and invitations."""

from __future__ import annotations

import secrets
import uuid

from django.db import models

from .crypto import EncryptedTextField


class NodeSettings(models.Model):
    """This node's General settings: one row (pk=1).

    Values given in the environment (NODE_PUBLIC_URL, SERVICENOW_*) win over these;
    the settings page then shows them read-only. ``password``, ``client_secret`` and
    ``webhook_token`` are encrypted at rest and never shown back.
    """

    class AuthMethod(models.TextChoices):
        BASIC = "basic", "Basic (user and password)"
        OAUTH = "oauth", "OAuth 2 (client id and secret)"

    node_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100, blank=True)
    public_url = models.URLField("Exalate URL", blank=True)
    #: A name in settings.TRACKER_ADAPTERS (trackers.registry); the form offers the installed ones.
    tracker = models.CharField(max_length=20, default="servicenow")
    instance_url = models.URLField("Instance URL", blank=True)
    #: One of the tracker's ``settings_fields().auth_methods`` (ServiceNow: basic or oauth).
    auth_method = models.CharField(max_length=10, default=AuthMethod.BASIC)
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
    #: Where mirrors of remote entities are created on this node, for a tracker with projects
    #: (``TrackerAdapter.has_projects``): chosen at Accept ("Select a project for the incoming
    #: sync") or on the connection page. '' for a tracker without projects (ServiceNow).
    incoming_project_key = models.CharField(
        "Project for the incoming sync", max_length=255, blank=True
    )
    incoming_project_name = models.CharField(max_length=255, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    established_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the handshake completed and the connection turned Active.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def remote_tracker_label(self) -> str:
        """The remote tracker's display name (``ServiceNow`` for ``servicenow``)."""
        from trackers.errors import TrackerError
        from trackers.registry import adapter_class

        try:
            return adapter_class(self.remote_tracker).display_name or self.remote_tracker
        except TrackerError:
            return self.remote_tracker

    @property
    def incoming_project_label(self) -> str:
        """``Test (TEST)``: the incoming project as the help page shows it ('' when none)."""
        key, name = self.incoming_project_key, self.incoming_project_name
        if not key:
            return ""
        return f"{name} ({key})" if name and name != key else key

    @property
    def is_local(self) -> bool:
        return self.type == self.Type.LOCAL

    @property
    def peer_connection_id(self) -> str:
        """The id the *receiving* end of this connection knows it by (the JWT ``cid`` claim).

        Remote connections: both nodes store the same id, so this is ``self.id``.
        Local connections: the two rows on this node have different ids, so this is the
        peer row's id (``local_peer_id``).
        """
        if self.type == self.Type.LOCAL and self.local_peer_id:
            return str(self.local_peer_id)
        return str(self.id)


class Invitation(models.Model):
    """The invitation an initiating node made for one connection.

    The code itself is not the key of anything: ``id`` (carried in the code as ``iid``)
    is. ``secret`` is the same one-time shared secret as the connection's; it is kept
    here too so that a handshake for a revoked invitation (whose pending connection is
    gone) can still be authenticated before it is refused. ``code`` is kept, encrypted,
    only while the invitation is pending, so the admin can copy it again.
    ``intended_node_id`` is the node id the destination URL answered with when the
    invitation was made (None for a private connection, whose destination is unknown):
    only that node may accept it.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        REVOKED = "revoked", "Revoked"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    connection = models.OneToOneField(
        Connection, null=True, blank=True, on_delete=models.SET_NULL, related_name="invitation"
    )
    connection_uuid = models.UUIDField(help_text="The connection id carried in the code.")
    connection_name = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    secret = EncryptedTextField()
    code = EncryptedTextField(blank=True)
    intended_node_id = models.UUIDField(null=True, blank=True)
    destination_url = models.URLField(blank=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by_node_id = models.UUIDField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Invitation for {self.connection_name} ({self.status})"


class UsedNodeToken(models.Model):
    """A node-to-node JWT id (``jti``) already accepted; the unique index is the replay guard.

    Rows are kept until the token could no longer pass the expiry check
    (``expires_at`` = token ``exp`` + clock-skew leeway), then purged.
    """

    jti = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.jti
