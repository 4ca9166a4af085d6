"""The one interface through which the sync engine talks to a tracker.

``servicenow_adapter.adapter.ServiceNowAdapter`` implements it today; a Jira adapter
will implement it later without touching ``sync``. The engine never imports a
tracker's client directly: it calls :func:`adapter_for_node`.

Shapes
------
* entity id: the tracker's identity of a record (ServiceNow ``sys_id``, 32 hex).
* entity key: what people type (ServiceNow ``number`` such as ``INC0010001``).
* replica: the dict described in ``sync/replica.py`` (schema v1).
* times: timezone-aware ``datetime`` in UTC.

Errors
------
Every method raises only the error types below (adapters wrap their own):
``TransientTrackerError`` may be retried later; every other ``TrackerError`` is
permanent and must be shown to the admin, not retried.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime


class TrackerError(Exception):
    """Base of all tracker errors. ``message`` is safe to show to an admin (no secrets).

    ``status`` is the HTTP status when the tracker answered one; ``detail`` is the
    tracker's own detail text when it gave one.
    """

    def __init__(self, message: str, *, status: int | None = None, detail: str = ""):
        super().__init__(message)
        self.message = message
        self.status = status
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.message} ({self.detail})" if self.detail else self.message


class TransientTrackerError(TrackerError):
    """Timeouts, connection errors, 429, 5xx, a non-JSON page (hibernating instance),
    a transaction cancelled for running too long. Retry later with backoff.

    ``retry_after`` is the number of seconds the tracker asked us to wait, if any.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class TrackerUnreachable(TransientTrackerError):
    """The instance URL did not answer (DNS, refused connection, timeout)."""


class TrackerAuthenticationError(TrackerError):
    """401 after any token refresh: wrong user, password or OAuth client. Connection-level."""


class TrackerPermissionError(TrackerError):
    """403: the integration user lacks a role or ACL (e.g. read on sys_journal_field)."""


class TrackerNotFound(TrackerError):
    """404, or no record with the given id or key."""


class TrackerBadRequest(TrackerError):
    """400: the tracker refused the request as invalid (e.g. a data policy)."""


class AmbiguousEntityKey(TrackerError):
    """The key (ServiceNow ``number``) matches more than one record; ``candidates`` lists their ids."""

    def __init__(self, message: str, *, candidates: list[str], **kw):
        super().__init__(message, **kw)
        self.candidates = candidates


class NotATrackerInstance(TrackerError):
    """The URL answered, but not as this tracker's API (e.g. an ordinary web site)."""


@dataclass(frozen=True)
class EntityRef:
    """One record: ``id`` (sys_id), ``key`` (number), ``url`` (the instance's own UI link)."""

    id: str
    key: str
    url: str


@dataclass(frozen=True)
class ChangedEntity:
    """One row of a change listing: ``id``, ``mod_count`` (sys_mod_count), ``updated`` (UTC)."""

    id: str
    mod_count: int
    updated: datetime


@dataclass(frozen=True)
class CreatedItem:
    """What a write created: ``id`` of the new comment or attachment (or entity)."""

    id: str


class TrackerAdapter(abc.ABC):
    """Read and write one tracker instance. One instance per task; not thread-safe."""

    tracker: str = ""

    @abc.abstractmethod
    def test_connection(self) -> str:
        """Check URL, credentials and read access to entities, comments and attachments.

        Returns a short success message. Raises TrackerUnreachable, NotATrackerInstance,
        TrackerAuthenticationError, TrackerPermissionError (naming the table it could not read).
        """

    @abc.abstractmethod
    def find_entity(self, key: str) -> EntityRef:
        """Look up an entity by key (incident number). Raises TrackerNotFound, AmbiguousEntityKey."""

    @abc.abstractmethod
    def get_entity(self, entity_id: str) -> EntityRef:
        """Look up an entity by id (sys_id). Raises TrackerNotFound."""

    @abc.abstractmethod
    def read_replica(self, entity_id: str) -> dict:
        """Read the entity with its public comments and attachment metadata as a replica v1 dict."""

    @abc.abstractmethod
    def stream_attachment(self, attachment_id: str, chunk_size: int = 65536) -> Iterator[bytes]:
        """Yield the attachment's bytes in chunks, never holding the whole file in memory."""

    @abc.abstractmethod
    def create_entity(self, *, summary: str, description: str, entity_type: str) -> EntityRef:
        """Create an entity (ServiceNow: an incident, whatever the type). Returns its ref."""

    @abc.abstractmethod
    def update_entity(self, entity_id: str, *, summary: str, description: str) -> None:
        """Set summary and description of an existing entity."""

    @abc.abstractmethod
    def add_comment(self, entity_id: str, *, body: str, author: str) -> CreatedItem:
        """Add one public comment; ``author`` (the original author's name) is carried in the text.

        Returns the new comment's id (ServiceNow: the sys_journal_field row's sys_id).
        """

    @abc.abstractmethod
    def add_attachment(
        self, entity_id: str, *, file_name: str, content_type: str, chunks: Iterable[bytes]
    ) -> CreatedItem:
        """Upload an attachment from an iterable of byte chunks (streamed). Returns its id."""

    @abc.abstractmethod
    def list_changed(self, *, since: datetime, overlap_seconds: float) -> list[ChangedEntity]:
        """Entities updated at or after ``since - overlap``, ordered, deduplicated on (id, mod_count)."""

    @abc.abstractmethod
    def entity_url(self, entity_id: str) -> str:
        """The instance's own browser URL for the entity."""

    def list_projects(self) -> list[tuple[str, str]]:
        """(id, name) of the projects a connection can target; ServiceNow has none."""
        return []

    # --- Optional methods the sync engine uses (added by the sync engine, issue #5) ----
    # Each has a default in terms of the methods above, so an adapter works without
    # them; overriding them makes the engine cheaper (fewer calls) and safer (exactly
    # once across crashes).

    #: Entity types this tracker can create. Basic rules mirror a remote type when it is
    #: listed here and fall back to "task" otherwise. Empty: decided by the sync engine's
    #: table for ``tracker`` (ServiceNow: incidents only).
    entity_types: tuple[str, ...] = ()

    def find_entity_by_correlation(self, correlation_id: str) -> EntityRef | None:
        """The entity whose integration correlation id (ServiceNow: ``correlation_id``) equals
        ``correlation_id``, or None. The engine calls it before re-trying a create, so a
        crash between the create and the engine's own commit never makes a duplicate.

        Default: None (no lookup possible; the engine then relies on its intent record).
        """
        return None

    def create_entity_correlated(
        self,
        *,
        summary: str,
        description: str,
        entity_type: str,
        correlation_id: str,
        correlation_display: str,
    ) -> EntityRef:
        """Create an entity carrying ``correlation_id`` / ``correlation_display`` (ServiceNow's
        integration fields of those names) so :meth:`find_entity_by_correlation` finds it.

        Default: :meth:`create_entity` without the correlation fields.
        """
        return self.create_entity(summary=summary, description=description, entity_type=entity_type)

    def update_entity_fields(
        self, entity_id: str, *, summary: str | None = None, description: str | None = None
    ) -> None:
        """Set only the given fields (None: leave as it is). Override to write only those.

        Default: reads the entity for the missing field, then :meth:`update_entity`.
        """
        if summary is None or description is None:
            current = self.read_replica(entity_id)
            summary = current["summary"] if summary is None else summary
            description = current["description"] if description is None else description
        self.update_entity(entity_id, summary=summary, description=description)


def adapter_for_node() -> TrackerAdapter:
    """Return the adapter for this node's tracker, built from General settings (or the environment).

    Raises TrackerError("... not configured") when no instance URL is set.
    """
    from connections.selectors import tracker_config_get
    from servicenow_adapter.adapter import ServiceNowAdapter

    config = tracker_config_get()
    if not config.instance_url:
        raise TrackerError(
            "This node has no ServiceNow instance configured: fill in General settings first."
        )
    return ServiceNowAdapter.from_config(config)
