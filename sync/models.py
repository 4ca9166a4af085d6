"""Twins, sync events (the queue), mirrored items, exalate requests, errors and per-connection state.

The database is the queue. A Celery message only *nudges* a worker to look at a row;
the rows carry everything needed to resume after a crash (status, attempts, next
attempt time, claim lease, last error), and the periodic drain task re-nudges any
work whose nudge was lost. Work is claimed with a conditional UPDATE on a lease
(``claimed_until`` / ``claimed_by``) and its row count checked, so several worker
processes never do the same work twice (see ``sync.claims``).
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.db.models.functions import Reverse

from connections.models import Connection


class Twin(models.Model):
    """The link between one local entity and its remote mirror on one connection (a twin trace).

    One twin per (connection, local entity) and per (connection, remote entity), enforced
    by unique constraints (ids may be blank while the other side is not known yet: the
    receiving node creates its twin on the first replica, before its incident exists).

    ``known_summary`` / ``known_description`` are the values both sides last agreed on
    (sent or applied): a change detection pass that sees only what the sync wrote
    itself finds nothing new and sends nothing (no echo). ``last_seen_mod_count`` is the
    local ``sys_mod_count`` last scanned; ``scan_mod_count`` the highest one announced and
    ``last_listed_updated`` the newest change time announced (a new attachment changes the
    listing's time but not ``sys_mod_count``).
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        IN_PROGRESS = "in_progress", "In progress"
        SYNCHRONIZED = "synchronized", "Synchronized"
        ERROR = "error", "Error"

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="twins")
    local_entity_id = models.CharField(max_length=64, blank=True, db_index=True)
    local_key = models.CharField(max_length=64, blank=True, db_index=True)
    local_url = models.URLField(max_length=1000, blank=True)
    remote_entity_id = models.CharField(max_length=64, blank=True)
    remote_key = models.CharField(max_length=64, blank=True, db_index=True)
    remote_url = models.URLField(max_length=1000, blank=True)
    entity_type = models.CharField(max_length=40, default="incident")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    # Creation of the local entity from a remote replica: the intent is recorded before
    # the tracker write; a retry looks the entity up by correlation id instead of creating.
    create_intent_at = models.DateTimeField(null=True, blank=True)
    # NULL means "never agreed" (every value is then sent); '' is an agreed empty value.
    known_summary = models.TextField(null=True, blank=True)  # noqa: DJ001
    known_description = models.TextField(null=True, blank=True)  # noqa: DJ001
    last_sent_replica = models.JSONField(null=True, blank=True)
    last_received_replica = models.JSONField(null=True, blank=True)
    last_seen_mod_count = models.IntegerField(null=True, blank=True)
    scan_mod_count = models.IntegerField(null=True, blank=True)
    # Newest change time a listing announced (a new attachment changes no sys_mod_count).
    last_listed_updated = models.DateTimeField(null=True, blank=True)
    scan_requested = models.PositiveIntegerField(default=0)
    scan_done = models.PositiveIntegerField(default=0)
    scan_nudged_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=120, blank=True)
    last_error = models.TextField(blank=True)
    # What the remote node reported when it could not apply our last change ('' when fine).
    remote_error = models.TextField(blank=True)
    # What the remote node warned about when it applied our last change (e.g. an attachment
    # it refused as too large; '' when none). Issue 10.
    remote_warning = models.TextField(blank=True)
    # The change listing's attachment marker last announced (a new attachment changes no
    # sys_mod_count and may share the second of the last listing). Issue 10.
    last_attachments_marker = models.CharField(max_length=80, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "local_entity_id"],
                condition=~Q(local_entity_id=""),
                name="sync_twin_one_per_local_entity",
            ),
            models.UniqueConstraint(
                fields=["connection", "remote_entity_id"],
                condition=~Q(remote_entity_id=""),
                name="sync_twin_one_per_remote_entity",
            ),
        ]
        indexes = [
            models.Index(fields=["scan_requested", "scan_done"], name="sync_twin_scan_idx"),
            # Issue 12: Entity sync status looks twins up by the remote sys_id too.
            models.Index(fields=["remote_entity_id"], name="sync_twin_remote_id_idx"),
            # Issue 12: a search by the end of a number (10005 finds INC0010005) is a
            # prefix range on the reversed number (sync.selectors), on both back ends.
            models.Index(Reverse("local_key"), name="sync_twin_local_key_rev_idx"),
            models.Index(Reverse("remote_key"), name="sync_twin_remote_key_rev_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.local_key or '?'} ↔ {self.remote_key or '?'} on {self.connection_id}"

    @property
    def needs_scan(self) -> bool:
        return self.scan_requested > self.scan_done

    @property
    def correlation_id(self) -> str:
        """Deterministic id written into the entity this node creates for the remote one.

        ``exalate:<connection id>:<remote entity id>``: ServiceNow's own integration field
        ``correlation_id`` holds it, so a retry after a crash finds the incident it made.
        """
        return f"exalate:{self.connection_id}:{self.remote_entity_id}"


class MirroredItem(models.Model):
    """A comment or attachment this node added to its entity because the remote side had it.

    ``remote_id`` is the item's id on the remote side; ``local_id`` the id of the copy we
    created (blank while the write is in flight: the row is the intent recorded before the
    tracker call, reconciled on retry). Items whose ``local_id`` is here never travel back
    (no echo). Unique per (twin, kind, remote_id) and per (twin, kind, local_id).
    """

    class Kind(models.TextChoices):
        COMMENT = "comment", "Comment"
        ATTACHMENT = "attachment", "Attachment"

    twin = models.ForeignKey(Twin, on_delete=models.CASCADE, related_name="mirrored_items")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    remote_id = models.CharField(max_length=64)
    local_id = models.CharField(max_length=64, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    file_name = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["twin", "kind", "remote_id"], name="sync_mirrored_one_per_remote_item"
            ),
            models.UniqueConstraint(
                fields=["twin", "kind", "local_id"],
                condition=~Q(local_id=""),
                name="sync_mirrored_one_per_local_item",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.remote_id} → {self.local_id or '(pending)'}"


class SyncEvent(models.Model):
    """One queued unit of work of a twin: outgoing (a message to deliver) or incoming (to apply).

    Kinds: ``replica`` (a replica with the fields that changed) and ``ack`` (the receiving
    node's acknowledgement with its own key and URL). Outgoing replica events go
    queued → in_progress (being delivered) → sent (stored by the remote) → done (acked).
    Incoming replica events go queued → in_progress → done. ``error`` is permanent until
    an admin retries it; later events of the same twin wait behind it.

    ``event_id`` is the id both nodes use for the event (the receiver stores each at most
    once: unique per connection and direction). ``seq`` orders events of one twin: the
    sender's row id, kept by the receiver.
    """

    class Direction(models.TextChoices):
        OUT = "out", "Outgoing"
        IN = "in", "Incoming"

    class Kind(models.TextChoices):
        REPLICA = "replica", "Replica"
        ACK = "ack", "Acknowledgement"
        UNEXALATE = "unexalate", "Unexalate"  # issue 12: the twin ends on the other node too

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        IN_PROGRESS = "in_progress", "In progress"
        SENT = "sent", "Sent, waiting for acknowledgement"
        DONE = "done", "Done"
        ERROR = "error", "Error"

    event_id = models.UUIDField(default=uuid.uuid4)
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="sync_events")
    twin = models.ForeignKey(Twin, on_delete=models.CASCADE, related_name="events")
    direction = models.CharField(max_length=3, choices=Direction.choices)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.REPLICA)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    seq = models.BigIntegerField(default=0)
    payload = models.JSONField(default=dict)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "direction", "event_id"], name="sync_event_once_per_direction"
            )
        ]
        indexes = [
            models.Index(
                fields=["direction", "status", "next_attempt_at"], name="sync_event_due_idx"
            ),
            models.Index(fields=["twin", "direction", "status"], name="sync_event_twin_idx"),
            # Issue 12: the Sync queue pages newest first per direction and status (keyset).
            models.Index(fields=["direction", "status", "id"], name="sync_event_queue_idx"),
            # Issue 12: the Dashboard counts finished changes per day, week or month.
            models.Index(
                fields=["direction", "status", "kind", "done_at"], name="sync_event_done_idx"
            ),
            # Issue 12: the Errors page's warnings (open events retried many times).
            models.Index(
                fields=["direction", "status", "attempts"], name="sync_event_attempts_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.direction} {self.kind} #{self.pk} ({self.status})"


class ExalateRequest(models.Model):
    """An admin asked to exalate the entity with ``key`` on ``connection`` (form or REST API).

    The worker resolves the key to the entity (a tracker call, never in a view), creates
    or finds the twin (one per entity: two requests for one incident share one twin) and
    runs the first sync. The status page follows the request, then its twin.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        DONE = "done", "Twin found or created"
        ERROR = "error", "Error"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="exalate_requests"
    )
    key = models.CharField(max_length=64)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    twin = models.ForeignKey(
        Twin, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=120, blank=True)
    requested_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Exalate {self.key} on {self.connection_id} ({self.status})"


class ConnectionSyncState(models.Model):
    """Per-connection sync bookkeeping: the change-detection watermark and the work leases.

    ``watermark`` is the newest ``sys_updated_on`` seen by change detection; it only moves
    after a listing was fully processed. The three leases serialize delivery of the
    outbox, polling of the remote node (private connections) and change detection.
    """

    connection = models.OneToOneField(
        Connection, on_delete=models.CASCADE, primary_key=True, related_name="sync_state"
    )
    watermark = models.DateTimeField(null=True, blank=True)
    deliver_claimed_until = models.DateTimeField(null=True, blank=True)
    deliver_claimed_by = models.CharField(max_length=120, blank=True)
    poll_claimed_until = models.DateTimeField(null=True, blank=True)
    poll_claimed_by = models.CharField(max_length=120, blank=True)
    detect_claimed_until = models.DateTimeField(null=True, blank=True)
    detect_claimed_by = models.CharField(max_length=120, blank=True)
    last_poll_at = models.DateTimeField(null=True, blank=True)
    last_detect_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"sync state of {self.connection_id}"


class SyncError(models.Model):
    """An error people can see on the Errors page: entity, connection or node level.

    An entity-level error belongs to one twin and the event that failed for good. A
    connection-level error (e.g. the instance refused our credentials) is kept once per
    connection while open (unique constraint); later occurrences bump ``occurrences``.
    ``resolved_at`` is set by Resolve or Retry.
    """

    class Level(models.TextChoices):
        ENTITY = "entity", "Entity"
        CONNECTION = "connection", "Connection"
        NODE = "node", "Node"

    level = models.CharField(max_length=12, choices=Level.choices)
    connection = models.ForeignKey(
        Connection, null=True, blank=True, on_delete=models.CASCADE, related_name="sync_errors"
    )
    twin = models.ForeignKey(
        Twin, null=True, blank=True, on_delete=models.CASCADE, related_name="errors"
    )
    event = models.ForeignKey(
        SyncEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="errors"
    )
    message = models.TextField()
    # Issue 12: what kind of failure (e.g. "entity_gone": the incident no longer exists)
    # and whether the remote node reported it (it failed applying our change there).
    code = models.CharField(max_length=40, blank=True)
    remote = models.BooleanField(default=False)
    occurrences = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen_at", "-id"]
        # Issue 12: the Errors page and the Dashboard read the open errors of one level.
        indexes = [
            models.Index(
                fields=["level", "resolved_at", "last_seen_at"], name="sync_error_open_idx"
            )
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["connection"],
                condition=Q(level="connection", resolved_at__isnull=True),
                name="sync_error_one_open_per_connection",
            ),
            # Issue 12: one open node-level error per cause (its code).
            models.UniqueConstraint(
                fields=["code"],
                condition=Q(level="node", resolved_at__isnull=True),
                name="sync_error_one_open_per_node_cause",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.level} error: {self.message[:60]}"


from .attachment_models import AttachmentState, ConnectionProbe  # noqa: E402,F401  (issue 10)
from .operation_models import ConnectionDescription, ErrorMail, TwinEnding  # noqa: E402,F401  (issue 12)
from .trigger_models import BulkItem, BulkRun, Trigger, TriggerTwin  # noqa: E402,F401  (issue 13)
