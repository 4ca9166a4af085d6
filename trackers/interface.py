"""The one interface through which the sync engine and the console talk to a tracker.

``servicenow_adapter.adapter.ServiceNowAdapter`` implements it; a Jira adapter will
implement it without touching the engine. The engine never imports an adapter: it asks
``trackers.registry.adapter_class(tracker)`` (filled from ``settings.TRACKER_ADAPTERS``)
and, for this node's own instance, ``connections.selectors.tracker_adapter_get()``.

Shapes
------
* entity id: the tracker's identity of a record (ServiceNow ``sys_id``, 32 hex; Jira issue id).
* entity key: what people type (ServiceNow ``number`` such as ``INC0010001``; Jira ``TEST-1``).
* replica: the dict described in ``trackers/replica.py`` (schema v1).
* times: timezone-aware ``datetime`` in UTC.

Errors
------
Every method raises only the types of ``trackers.errors``: ``TransientTrackerError`` may
be retried later; every other ``TrackerError`` is permanent and shown to the admin.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class EntityRef:
    """One record: ``id`` (sys_id; Jira issue id), ``key`` (number; Jira issue key), ``url``
    (the instance's own UI link), and ``entity_type`` when known (``incident``; the Jira issue
    type the create used, e.g. ``Task`` when the project had no type of the replica's name)."""

    id: str
    key: str
    url: str
    entity_type: str = ""


@dataclass(frozen=True)
class ChangedEntity:
    """One row of a change listing: ``id``, ``mod_count`` (sys_mod_count), ``updated`` (UTC).

    ``attachments_updated`` (UTC, or None) is the newest attachment time of the entity when
    the listing saw attachments change: a new ServiceNow attachment changes neither the
    incident's ``sys_mod_count`` nor its ``sys_updated_on``, so (id, mod_count) alone
    cannot tell that something is new. ``attachments_marker`` ('' when none was listed)
    names the newest attachments (their time and ids): it differs whenever an attachment is
    added, even within the second of the last listing. Compare it too; '' tells nothing.
    """

    id: str
    mod_count: int
    updated: datetime
    attachments_updated: datetime | None = None
    attachments_marker: str = ""


@dataclass(frozen=True)
class CreatedItem:
    """What a write created: ``id`` of the new comment or attachment (or entity)."""

    id: str


@dataclass(frozen=True)
class WebhookHint:
    """One change a tracker's webhook announced: the entity's id and, when sent, its mod count."""

    entity_id: str
    mod_count: int | None = None


@dataclass(frozen=True)
class TrackerConfig:
    """How to reach one tracker instance. ``from_env`` is True when the environment set it.

    ``username``/``password`` are the integration user's (Jira Cloud: e-mail and API token;
    Jira Data Center: ``password`` holds the personal access token); ``client_id`` and
    ``client_secret`` are an OAuth client's. ``password`` and ``client_secret`` are
    plaintext here: never log this object (its repr leaves them out).
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
        return (
            f"TrackerConfig(tracker={self.tracker!r}, instance_url={self.instance_url!r}, "
            f"auth_method={self.auth_method!r}, username={self.username!r}, from_env={self.from_env})"
        )


class TrackerAdapter(abc.ABC):
    """Read and write one tracker instance. One instance per task; not thread-safe.

    Class attributes and class methods describe the tracker itself (no instance needed):
    the console uses them for labels, key checks, the environment lock and webhooks.
    """

    #: The tracker's name in settings and messages between nodes (``servicenow``).
    tracker: str = ""
    #: How people call the tracker (``ServiceNow``).
    display_name: str = ""
    #: What one entity is called (``incident``).
    entity_label: str = "entity"
    #: What people type to find one (``incident number``) and an example (``INC0010001``).
    key_label: str = "key"
    key_example: str = ""
    #: Entity types this tracker can create. Basic rules mirror a remote type when it is
    #: listed here and fall back to "task" otherwise (ServiceNow: incidents only).
    entity_types: tuple[str, ...] = ()

    # -- the tracker itself ------------------------------------------------------------------
    @classmethod
    def normalize_key(cls, key: str) -> str:
        """The key as the tracker stores it (ServiceNow: ``inc0010001`` → ``INC0010001``)."""
        return (key or "").strip()

    @classmethod
    def key_problem(cls, key: str) -> str | None:
        """What is wrong with a typed key, in an admin's words, or None when it may be looked up."""
        return None if (key or "").strip() else f"Enter {cls.key_hint()}."

    @classmethod
    def key_hint(cls) -> str:
        """``an incident number such as INC0010001``: the phrase forms and messages use."""
        article = "an" if cls.key_label[:1].lower() in "aeiou" else "a"
        example = f" such as {cls.key_example}" if cls.key_example else ""
        return f"{article} {cls.key_label}{example}"

    @classmethod
    def environment_config(cls) -> TrackerConfig | None:
        """The configuration the environment fixes for this tracker (scripted installs), or None.

        When not None, General settings shows these values read-only and never saves them.
        """
        return None

    @classmethod
    def parse_webhook(cls, body: bytes) -> list[WebhookHint]:
        """The changes one webhook call announces, from its raw body (at most 10,000 bytes).

        Raises ValueError with a reason an admin can act on (it is sent back as the 400 answer).
        """
        raise ValueError(f"{cls.display_name or cls.tracker} webhooks are not supported.")

    @classmethod
    @abc.abstractmethod
    def from_config(cls, config: TrackerConfig) -> TrackerAdapter:
        """Build an adapter from General settings or the environment. Raises TrackerError
        (or TrackerAuthenticationError) when the configuration is incomplete."""

    # -- checking the configuration ----------------------------------------------------------
    @abc.abstractmethod
    def test_connection(self) -> str:
        """Check URL, credentials and read access to entities, comments and attachments.

        Returns a short success message. Raises TrackerUnreachable, NotATrackerInstance,
        TrackerAuthenticationError, TrackerPermissionError (naming the table it could not read).
        """

    #: True when mirrors are created in a project the accepting admin chooses (Jira); the
    #: Accept wizard then asks "Select a project for the incoming sync".
    has_projects: bool = False

    def list_projects(self) -> list[tuple[str, str]]:
        """(key, name) of the projects a connection can create mirrors in; ServiceNow has none.

        Jira: the projects the integration account can create issues in, ordered by name.
        """
        return []

    # -- finding -----------------------------------------------------------------------------
    @abc.abstractmethod
    def find_entity(self, key: str) -> EntityRef:
        """Look up an entity by key (incident number). Raises TrackerNotFound, AmbiguousEntityKey."""

    @abc.abstractmethod
    def get_entity(self, entity_id: str) -> EntityRef:
        """Look up an entity by id (sys_id). Raises TrackerNotFound."""

    @abc.abstractmethod
    def find_entity_by_correlation(
        self, correlation_id: str, *, project: str = ""
    ) -> EntityRef | None:
        """The entity created with ``correlation_id`` (see :meth:`create_entity`), or None.

        The engine calls it before re-trying a create, so a crash between the create and
        the engine's own commit never makes a duplicate.
        """

    @abc.abstractmethod
    def entity_url(self, entity_id: str) -> str:
        """The instance's own browser URL for the entity (http or https)."""

    # -- reading -----------------------------------------------------------------------------
    @abc.abstractmethod
    def read_replica(self, entity_id: str) -> dict:
        """Read the entity with its public comments and attachment metadata as a replica v1 dict."""

    @abc.abstractmethod
    def stream_attachment(self, attachment_id: str, chunk_size: int = 65536) -> Iterator[bytes]:
        """Yield the attachment's bytes in chunks, never holding the whole file in memory."""

    @abc.abstractmethod
    def list_changed(self, *, since: datetime, overlap_seconds: float) -> list[ChangedEntity]:
        """Entities updated at or after ``since - overlap``, ordered, deduplicated on (id, mod_count)."""

    # -- writing -----------------------------------------------------------------------------
    @abc.abstractmethod
    def create_entity(
        self,
        *,
        summary: str,
        description: str,
        entity_type: str,
        correlation_id: str,
        correlation_display: str,
        project: str = "",
    ) -> EntityRef:
        """Create an entity carrying ``correlation_id`` (ServiceNow: the integration fields
        ``correlation_id`` / ``correlation_display``; Jira: an entity property) so
        :meth:`find_entity_by_correlation` finds it again. Exactly-once depends on it: there
        is no create without one. ``project`` is the connection's target project key for a
        tracker with projects (``has_projects``), '' otherwise. ``entity_type`` is the remote
        replica's type; the adapter picks the type it can create and returns it in the ref."""

    @abc.abstractmethod
    def update_entity(
        self, entity_id: str, *, summary: str | None = None, description: str | None = None
    ) -> None:
        """Set only the given fields (None: leave as it is); nothing given, no request."""

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
