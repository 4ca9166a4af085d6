"""Triggers, the twins they started, and bulk runs with their items (issue 13).

A :class:`Trigger` is Exalate's: an entity type, an **If** condition in the tracker's own
query language (ServiceNow: an encoded query), a connection, notes and an Active toggle.
Change detection runs its query with the trigger's own ``watermark`` in the same poll
that finds changes; every match without a twin on the connection is exalated once (the
twin's unique constraint per (connection, entity) makes two triggers share one twin).
:class:`TriggerTwin` remembers which trigger found which twin (Bulk Unexalate stops those).

A :class:`BulkRun` (Bulk Exalate, Bulk Unexalate, Bulk Connect) is a row claimed with a
lease like the rest of the engine (``sync.claims``); its :class:`BulkItem` rows are the
work list, each done at most once, so a run killed mid-way resumes where it stopped.
"""

from __future__ import annotations

import uuid

from django.db import models

from connections.models import Connection

from .models import Twin


class Trigger(models.Model):
    """A saved query whose every match is exalated on ``connection`` while ``active``.

    ``watermark``: the newest change time the trigger's poll has covered (None: never
    polled, the first poll lists every current match). ``last_count``: how many entities
    matched when the query was last saved or checked.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    entity_type = models.CharField(max_length=40, default="incident")
    query = models.TextField(blank=True)
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="triggers")
    notes = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    watermark = models.DateTimeField(null=True, blank=True)
    last_count = models.IntegerField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_poll_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=120, blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.entity_type} where {self.query or '(everything)'} on {self.connection_id}"


class TriggerTwin(models.Model):
    """Trigger ``trigger`` found the entity of ``twin`` (one row per pair)."""

    trigger = models.ForeignKey(Trigger, on_delete=models.CASCADE, related_name="links")
    twin = models.ForeignKey(Twin, on_delete=models.CASCADE, related_name="trigger_links")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["trigger", "twin"], name="sync_trigger_twin_once")
        ]

    def __str__(self) -> str:
        return f"{self.trigger_id} → twin {self.twin_id}"


class BulkRun(models.Model):
    """One Bulk Exalate, Bulk Unexalate or Bulk Connect run and its progress.

    Exalate / unexalate runs first *list* their items (the trigger's matches, or its
    twins; ``listed`` becomes True, ``list_cursor`` is the key-set position while
    listing), then work through them. A Bulk Connect run starts as ``validating`` (the
    worker checks each CSV row), waits in ``preview`` for Confirm, then links the good
    rows. ``cancel_requested`` stops it before the next item.
    """

    class Kind(models.TextChoices):
        EXALATE = "exalate", "Bulk Exalate"
        UNEXALATE = "unexalate", "Bulk Unexalate"
        CONNECT = "connect", "Bulk Connect"

    class Status(models.TextChoices):
        VALIDATING = "validating", "Checking the rows"
        PREVIEW = "preview", "Waiting for Confirm"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"

    OPEN = (Status.VALIDATING, Status.QUEUED, Status.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    trigger = models.ForeignKey(
        Trigger, null=True, blank=True, on_delete=models.SET_NULL, related_name="bulk_runs"
    )
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="bulk_runs")
    query = models.TextField(blank=True)
    file_name = models.CharField(max_length=255, blank=True)
    listed = models.BooleanField(default=False)
    list_cursor = models.CharField(max_length=64, blank=True)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=120, blank=True)
    requested_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="sync_bulk_due_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.pk} ({self.status})"


class BulkItem(models.Model):
    """One entity (or CSV row) of a bulk run. ``line``: the CSV line (0 for trigger runs)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        BAD = "bad", "Bad row"
        SKIPPED = "skipped", "Not linked"

    run = models.ForeignKey(BulkRun, on_delete=models.CASCADE, related_name="items")
    line = models.PositiveIntegerField(default=0)
    local_entity_id = models.CharField(max_length=64, blank=True)
    local_key = models.CharField(max_length=255, blank=True)
    remote_key = models.CharField(max_length=255, blank=True)
    summary = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    twin = models.ForeignKey(
        Twin, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["line", "id"]
        indexes = [models.Index(fields=["run", "status"], name="sync_bulk_item_idx")]

    def __str__(self) -> str:
        return f"{self.local_key or self.local_entity_id} ({self.status})"
