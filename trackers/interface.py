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
import hmac
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from .errors import TrackerError


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
class WriteReceipt:
    """What the adapter's own writes to one entity left it at (issue 14), so the engine can
    record the entity's state without a confirming re-read.

    ``mod_count`` is the entity's change counter after the last write that moved it
    (ServiceNow ``sys_mod_count``; None when only attachments were written: they move no
    counter); ``base_mod_count`` the counter just before the first of those writes (None
    when the writes created the entity). The adapter returns a receipt only when each write
    moved the counter by exactly one, so nobody else wrote in between. ``updated`` is the
    newest change time written (UTC); ``attachments_marker`` what a change listing will
    show as ``ChangedEntity.attachments_marker`` for the attachments uploaded ('' none).
    """

    mod_count: int | None
    base_mod_count: int | None
    updated: datetime | None = None
    attachments_marker: str = ""


@dataclass(frozen=True)
class WebhookHint:
    """One change a tracker's webhook announced: the entity's id and, when sent, its mod count."""

    entity_id: str
    mod_count: int | None = None


@dataclass(frozen=True)
class QueryMatch:
    """One entity a trigger query matched: ``id``, ``key``, ``url``, ``summary`` (issue 13)."""

    id: str
    key: str
    url: str
    summary: str = ""


@dataclass(frozen=True)
class QueryPage:
    """One page of a trigger query, ordered by entity id: ``matches`` and whether ``more`` follow."""

    matches: list[QueryMatch]
    more: bool = False


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


@dataclass(frozen=True)
class SettingsFields:
    """How General settings asks for one tracker's instance: labels, examples, auth choices.

    ``auth_methods`` are (value, label) pairs stored in ``TrackerConfig.auth_method``;
    ``username_required_for`` the methods that need the user name field;
    ``client_auth_methods`` the methods that use the OAuth client id and secret (their
    fields are hidden for a tracker without any). ``webhook_help`` explains the inbound
    webhook; ``{url}`` is replaced by this node's webhook address.
    """

    instance_url_label: str = "Instance URL"
    instance_url_example: str = "https://yourcompany.example.com"
    auth_methods: tuple[tuple[str, str], ...] = (
        ("basic", "Basic (user and password)"),
        ("oauth", "OAuth 2 (client id and secret)"),
    )
    username_label: str = "User name"
    username_help: str = "The integration user the console reads and writes as."
    username_required_for: tuple[str, ...] = ("basic", "oauth")
    password_label: str = "Password"
    password_help: str = ""
    client_auth_methods: tuple[str, ...] = ("oauth",)
    webhook_help: str = (
        "The tracker can announce a changed entity at once by calling POST {url} with the "
        "header Authorization: Bearer <webhook token>."
    )


@dataclass(frozen=True)
class RightCheck:
    """One right the integration user needs, as Test connection found it (without writing).

    ``right`` names it ("read incidents", "create incidents"...); ``state`` is one of
    ``granted`` (verified by doing it: a read), ``probably`` (inferred from the user's
    roles), ``missing`` (``how`` says what to grant) or ``unverified`` (``how`` says why).
    """

    right: str
    state: str
    how: str


class ConnectionReport(str):
    """What ``test_connection`` returns: the success message (a ``str``) and its ``rights``.

    ``rights`` is a tuple of :class:`RightCheck`, empty by default, so a tracker that
    returns a plain message still works. A ``TrackerPermissionError`` raised by
    ``test_connection`` may carry the same lines as its ``rights`` attribute.
    """

    rights: tuple[RightCheck, ...] = ()

    def __new__(cls, message: str, rights: Iterable[RightCheck] = ()) -> ConnectionReport:
        report = super().__new__(cls, message)
        report.rights = tuple(rights)
        return report


class TrackerAdapter(abc.ABC):
    """Read and write one tracker instance. One instance per task; not thread-safe.

    Class attributes and class methods describe the tracker itself (no instance needed):
    the console uses them for labels, key checks, the environment lock and webhooks.
    """

    #: Templates may show a class's facts (``{{ tracker.key_label }}``) without calling it.
    do_not_call_in_templates = True
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
    def settings_fields(cls) -> SettingsFields:
        """What General settings asks for this tracker (labels, example URL, auth choices).

        The default is a user name and password (Basic) or an OAuth client; a tracker
        overrides it with its own words (Jira: e-mail and API token, or a personal access
        token).
        """
        return SettingsFields()

    @classmethod
    def environment_config(cls) -> TrackerConfig | None:
        """The configuration the environment fixes for this tracker (scripted installs), or None.

        When not None, General settings shows these values read-only and never saves them.
        """
        return None

    #: The largest webhook body the console reads, in bytes (a larger one answers 413).
    webhook_max_bytes: int = 10_000

    @classmethod
    def authenticate_webhook(cls, headers, body: bytes, secret: str) -> None:
        """Check that a webhook call comes from the tracker; ``secret`` is this node's
        webhook token (General settings), ``headers`` the request's (case-insensitive).

        Default: ``Authorization: Bearer <secret>``, compared in constant time. Raises
        ValueError in an admin's words (answered 401) when it does not match or no token is set.
        """
        scheme, _, token = (headers.get("Authorization") or "").partition(" ")
        if (
            not secret
            or scheme != "Bearer"
            or not hmac.compare_digest(token.encode(), secret.encode())
        ):
            raise ValueError("Wrong or missing webhook token (Authorization: Bearer <token>).")

    @classmethod
    def parse_webhook(cls, body: bytes) -> list[WebhookHint]:
        """The changes one webhook call announces, from its raw body (at most ``webhook_max_bytes``).

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

        Returns a short success message (a :class:`ConnectionReport` lists each right checked).
        Raises TrackerUnreachable, NotATrackerInstance,
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

    def test_project(self, project: str) -> str:
        """Check that mirrors can be created in ``project`` (a key from :meth:`list_projects`);
        return a short success message. Raises TrackerPermissionError (admin words) when not.
        A tracker without projects accepts only ''."""
        if project:
            raise TrackerError(f"{self.display_name or self.tracker} has no projects to choose.")
        return ""

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
        first_comment: tuple[str, str] | None = None,
    ) -> EntityRef:
        """Create an entity carrying ``correlation_id`` (ServiceNow: the integration fields
        ``correlation_id`` / ``correlation_display``; Jira: an entity property) so
        :meth:`find_entity_by_correlation` finds it again. Exactly-once depends on it: there
        is no create without one. ``project`` is the connection's target project key for a
        tracker with projects (``has_projects``), '' otherwise. ``entity_type`` is the remote
        replica's type; the adapter picks the type it can create and returns it in the ref.

        ``first_comment`` (body, author), passed only when ``creates_with_comment`` is True:
        the create itself writes that public comment (ServiceNow writes the journal entry in
        the same insert); its id is learned by :meth:`add_comments` with ``written=1``.
        None: the engine adds every comment afterwards."""

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

    #: True when :meth:`create_entity` takes ``first_comment`` (ServiceNow).
    creates_with_comment: bool = False

    def add_comments(
        self, entity_id: str, comments: list[tuple[str, str]], *, written: int = 0
    ) -> list[CreatedItem]:
        """Add public comments (body, author) in order; return their ids in the same order.

        The first ``written`` of them are already on the entity (``create_entity``'s
        ``first_comment``): they are not written again, only their ids are learned. Exactly
        once stays the engine's: it commits an intent per comment before this call and, on a
        retry, adopts the copies an earlier attempt wrote (matched by body and author) before
        writing the rest. Default: :meth:`add_comment` for each (``written`` must be 0).
        Raises what :meth:`add_comment` raises; comments written before an error stay written.
        """
        if written:
            raise TrackerError(
                f"{self.display_name or self.tracker} cannot read back comments it did not write."
            )
        return [self.add_comment(entity_id, body=b, author=a) for b, a in comments]

    def attachments_seen(self, entity_id: str) -> tuple[str, datetime | None]:
        """What the last :meth:`read_replica` of ``entity_id`` saw of its attachments, in the
        change listing's terms: (``ChangedEntity.attachments_marker``, newest attachment
        time, UTC), then forgotten; ``("", None)`` when unknown. The scan records them, so the
        next listing does not re-read the entity for attachments the scan has already seen."""
        return "", None

    def write_receipt(self, entity_id: str) -> WriteReceipt | None:
        """What this adapter's writes to ``entity_id`` since the last call left it at, and
        forget them; None when it cannot tell (the engine then re-reads the entity)."""
        return None

    @abc.abstractmethod
    def add_attachment(
        self, entity_id: str, *, file_name: str, content_type: str, chunks: Iterable[bytes]
    ) -> CreatedItem:
        """Upload an attachment from an iterable of byte chunks (streamed). Returns its id."""

    # -- trigger queries (issue 13; optional: a tracker without them has no triggers) ----------
    #: True when the adapter runs trigger queries (``query_*`` below).
    supports_queries: bool = False
    #: What the tracker's query language is called in forms (``encoded query``).
    query_language: str = "query"
    #: The longest query a trigger may hold (ServiceNow: 4,000 characters, far below the
    #: URL length at which an instance answers 414).
    max_query_length: int = 4000

    @classmethod
    def query_syntax_problem(cls, query: str) -> str | None:
        """What is wrong with a query's syntax (no instance needed), in an admin's words, or None.

        An empty query is not a syntax problem (it matches everything; the console asks).
        """
        return f"{cls.display_name or cls.tracker} has no trigger queries."

    def query_problem(self, query: str) -> str | None:
        """Syntax, then the fields: a term naming no field of the table is named (the
        instance would silently drop it and match more). None when the query may be saved."""
        return self.query_syntax_problem(query)

    def query_count(self, query: str) -> int:
        """How many entities match ``query`` now (one request, limit 1)."""
        raise NotImplementedError

    def query_entities(
        self, query: str, *, since: datetime | None = None, after_id: str = "", limit: int = 100
    ) -> QueryPage:
        """Entities matching ``query`` with id > ``after_id`` (and, with ``since``, updated at or
        after it), ordered by id, at most ``limit``; key-set paging: pass the last id back."""
        raise NotImplementedError

    def query_contains(self, query: str, entity_ids: Iterable[str]) -> set[str]:
        """The ids among ``entity_ids`` that match ``query`` now (batched: one request per 100)."""
        raise NotImplementedError

    def read_replicas(self, entity_ids: Iterable[str]) -> dict[str, dict]:
        """Replicas of several entities, batched where the tracker can (ServiceNow: ``sys_idIN``
        chunks). Entities that are gone are left out. Default: one :meth:`read_replica` each."""
        out = {}
        for entity_id in entity_ids:
            try:
                out[entity_id] = self.read_replica(entity_id)
            except Exception:  # noqa: BLE001 - the caller reads the missing ones one by one
                continue
        return out

    def find_entities(self, keys: Iterable[str]) -> dict[str, EntityRef]:
        """Entities by key, batched where the tracker can (ServiceNow: ``numberIN``); keys that
        match nothing or several entities are left out. Default: :meth:`find_entity` each."""
        out = {}
        for key in keys:
            try:
                out[key] = self.find_entity(key)
            except Exception:  # noqa: BLE001 - unknown or ambiguous keys are left out
                continue
        return out
