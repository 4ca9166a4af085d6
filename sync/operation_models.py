"""Console operations (issue 12): unexalating twins, error mails, connection descriptions.

* :class:`TwinEnding`: an admin asked to stop syncing a twin (Unexalate). While
  ``ended_at`` is empty the twin still syncs until its queue drains (or at once); then the
  twin becomes a *tombstone*: its entity ids are blanked (the incident can be exalated
  again and gets a new mirror) and an ``unexalate`` message tells the other node to end
  its twin too. The tombstone row goes once that message has been delivered.
* :class:`ErrorMail`: when errors were last mailed to the admins, per connection (or for
  the node), so a storm of errors sends one mail per connection and period.
* :class:`ConnectionDescription`: the free text an admin gives a connection on its page.
"""

from __future__ import annotations

from django.db import models

from connections.models import Connection

from .models import Twin


class TwinEnding(models.Model):
    """An Unexalate of ``twin``: requested (waiting for the queue to drain) or done (tombstone).

    ``local_entity_id`` / ``remote_entity_id`` (and keys) are the twin's ids when it ended,
    kept for the unexalate message and for the console's words after the twin's ids are
    blanked.
    """

    twin = models.OneToOneField(Twin, on_delete=models.CASCADE, related_name="ending")
    at_once = models.BooleanField(default=False)
    requested_by = models.CharField(max_length=150, blank=True)
    requested_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    local_entity_id = models.CharField(max_length=64, blank=True)
    local_key = models.CharField(max_length=64, blank=True)
    remote_entity_id = models.CharField(max_length=64, blank=True)
    remote_key = models.CharField(max_length=64, blank=True)

    class Meta:
        indexes = [models.Index(fields=["ended_at"], name="sync_twinending_ended_idx")]

    def __str__(self) -> str:
        return f"unexalate {self.local_key or '?'} ({'ended' if self.ended_at else 'waiting'})"


class ErrorMail(models.Model):
    """When open errors were last mailed, per connection (``connection`` null: node level)."""

    connection = models.OneToOneField(
        Connection, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    node = models.BooleanField(null=True, unique=True, default=None)  # True: node level
    last_sent_at = models.DateTimeField()
    errors_sent = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"error mail for {self.connection_id or 'the node'} at {self.last_sent_at}"


class ConnectionDescription(models.Model):
    """An admin's description of a connection (shown on its page and in the API)."""

    connection = models.OneToOneField(
        Connection, on_delete=models.CASCADE, primary_key=True, related_name="description_row"
    )
    description = models.TextField(blank=True, max_length=2000)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.description[:60]
