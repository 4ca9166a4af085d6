"""Per-attachment state on a twin (issue 10): what became of each attachment of the remote side.

One row per (twin, remote attachment id), written by the apply on the receiving node:
``pending`` (queued for upload), ``mirrored`` (uploaded; ``local_id`` is the copy),
``refused`` (the destination refused it; ``reason`` says why), ``too_large`` (over the
destination's size limit, e.g. ServiceNow ``com.glide.attachment.max_size``) and
``skipped`` (the source could not give its bytes; ``reason``). A refused, too-large or
skipped attachment is a warning, never an error: the rest of the incident goes on, and
Retry on the twin sends it again.
"""

from __future__ import annotations

from django.db import models

from .models import Twin


class AttachmentState(models.Model):
    """What happened to one remote attachment of a twin (see the module docstring)."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        MIRRORED = "mirrored", "Mirrored"
        REFUSED = "refused", "Refused"
        TOO_LARGE = "too_large", "Too large"
        SKIPPED = "skipped", "Skipped"

    #: States shown as a warning (and counted on the connection page).
    WARNINGS = (State.REFUSED, State.TOO_LARGE, State.SKIPPED)

    twin = models.ForeignKey(Twin, on_delete=models.CASCADE, related_name="attachment_states")
    remote_id = models.CharField(max_length=64)
    file_name = models.CharField(max_length=255, blank=True)
    size = models.BigIntegerField(default=0)
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    reason = models.TextField(blank=True)
    local_id = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["twin", "remote_id"], name="attachment_state_once")
        ]

    def __str__(self) -> str:
        return f"{self.file_name or self.remote_id}: {self.state}"

    @property
    def is_warning(self) -> bool:
        """True for refused, too large and skipped (shown with their reason)."""
        return self.state in self.WARNINGS


class ConnectionProbe(models.Model):
    """A connection-level error that clears by itself: when to test the instance again.

    Credentials refused (401), a hibernating instance, a journal the user may not read:
    the connection is in Error (one error on the Errors page) and the node probes the
    instance on a back-off (``CONNECTION_PROBE_SECONDS``, doubling up to an hour); the
    first probe the instance passes resolves the error and resumes the connection, as
    Exalate does for errors that clear.
    """

    connection = models.OneToOneField(
        "connections.Connection", on_delete=models.CASCADE, related_name="probe"
    )
    reason = models.CharField(max_length=40)
    probes = models.PositiveIntegerField(default=0)
    next_probe_at = models.DateTimeField()
    last_probe_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"probe {self.connection_id} ({self.reason}) at {self.next_probe_at:%H:%M:%S}"
