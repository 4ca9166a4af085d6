"""``ServiceNowAdapter``: the ``trackers.interface.TrackerAdapter`` of a ServiceNow instance (incidents).

Calls per operation (each one HTTP request when the data fits in one page of 500 rows):

=====================  ===========================================================================
test_connection        incident list (100 rows: ACL-hidden ones are counted but not returned)
                       + sys_journal_field list (1 row) + 20 newest incidents' ``comments``
                       display values + one journal list of one that shows comments (is the
                       journal really readable?) + attachment list (1 row)
find_entity            incident list ``number=<key>`` (counted but not returned: hidden by ACL)
get_entity             incident GET (a 404: + one list ``sys_id=<id>`` to tell "hidden" from "gone")
read_replica           incident GET with ``sysparm_display_value=all`` (the ``comments`` display
                       value orders same-second comments and shows whether the journal is
                       readable) + journal list + attachment list (+ one sys_user lookup for
                       authors not seen in the last hour by this process)
stream_attachment      attachment ``/file`` GET, streamed
create_entity          incident POST with ``correlation_id`` / ``correlation_display`` (and the
                       first comment, when given: the insert writes its journal entry)
update_entity          incident PATCH of the given fields only (none: no request)
add_comments           incident PATCH ``comments`` per comment + ONE journal list for all of
                       them (:mod:`servicenow_adapter.journal`); ``add_comment``: 2 calls
write_receipt          no request: ``sys_mod_count`` / ``sys_updated_on`` from the write answers
add_attachment         attachment ``/file`` POST, streamed
find_entity_by_correlation  incident list ``correlation_id=<id>``
list_changed           incident pages + attachment pages (key-set paging) (+ one incident list for
                       incidents whose only change is a new attachment)
=====================  ===========================================================================

Errors are the ``trackers.errors`` types; messages name the instance and the user, never
the password or client secret. A 429 with ``Retry-After`` holds every call of this node to
the instance until then (:mod:`servicenow_adapter.busy`, shared by all workers).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterable, Iterator

from django.conf import settings

from trackers.errors import (
    AmbiguousEntityKey,
    AttachmentRefused,
    TrackerAuthenticationError,
    TrackerBadRequest,
    TrackerError,
    TrackerNotFound,
    TrackerPermissionError,
)
from trackers.interface import (
    CreatedItem,
    EntityRef,
    TrackerAdapter,
    TrackerConfig,
    WebhookHint,
)

from . import busy, errors, mapping
from . import query as q
from .access import AccessErrors
from .changes import ChangeListing
from .checks import ConnectionCheck
from .client import (
    SYS_ID,
    BasicCredentials,
    OAuthCredentials,
    RetryPolicy,
    ServiceNowClient,
)
from .journal import WRITE_FIELDS, CommentWrites
from .triggers import TriggerQueries  # issue 13: trigger queries

INCIDENT_FIELDS = (
    "sys_id", "number", "short_description", "description", "sys_updated_on", "sys_mod_count",
    "sys_class_name",
)  # fmt: skip
AUTHOR_TTL = 3600.0
# A row that find_entity read serves this adapter's next read_replica of the same incident
# for this long (the exalate task looks the number up, then scans at once): issue 14,
# one GET incident fewer for a lone exalate. A snapshot is a snapshot: its sys_mod_count
# and sys_updated_on are recorded with it, so a change after it is scanned again.
FOUND_ROW_REUSE_SECONDS = 10.0
_AUTHORS: dict[tuple[str, str], tuple[str, float]] = {}
_AUTHORS_LOCK = threading.Lock()
_SYS_ID_IN_TEXT = re.compile(r"sys_id(?:=|%3D)([0-9a-f]{32})")
#: What an incident number, sys_id or key may look like when typed (before any lookup).
KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_NUMBER_TYPED = re.compile(r"[A-Za-z]{2,8}\d{3,}")


class ServiceNowAdapter(
    ConnectionCheck, ChangeListing, AccessErrors, TriggerQueries, CommentWrites, TrackerAdapter
):
    """Reads and writes incidents of one ServiceNow instance through :class:`ServiceNowClient`.

    One adapter per task (not thread-safe); OAuth tokens and author names are shared
    per process. ``author_lookup`` False skips the sys_user lookup (authors are then user_names).
    """

    tracker = "servicenow"
    display_name = "ServiceNow"
    entity_label = "incident"
    key_label = "incident number"
    key_example = "INC0010001"
    #: Basic mode for ServiceNow syncs incidents only: whatever arrives becomes an incident.
    entity_types = ("incident",)

    def __init__(self, client: ServiceNowClient, *, author_lookup: bool = True):
        self.client = client
        self.instance_url = client.base
        self.username = client.credentials.username
        self.author_lookup = author_lookup
        self._found: tuple[str, float, dict] | None = None  # (sys_id, monotonic, row)

    # -- the tracker itself (no instance needed) -------------------------------------------
    @classmethod
    def normalize_key(cls, key: str) -> str:
        """An incident number as ServiceNow stores it: ``inc0010001`` → ``INC0010001``.

        Only a number-shaped key (2–8 letters, then 3 or more digits) is upper-cased; a
        sys_id (32 lowercase hex) or a record URL is passed through as typed.
        """
        key = (key or "").strip()
        if _NUMBER_TYPED.fullmatch(key):
            return key.upper()
        return key

    @classmethod
    def key_problem(cls, key: str) -> str | None:
        """Why a typed key cannot be an incident number or sys_id (admin words), or None."""
        if not KEY_RE.match((key or "").strip()):
            return (
                "Enter an incident number such as INC0010001 "
                "(letters, digits, '-', '_' or '.', at most 64)."
            )
        return None

    @classmethod
    def environment_config(cls) -> TrackerConfig | None:
        """``SERVICENOW_INSTANCE_URL`` and its siblings, when set: the instance is fixed by the
        environment (scripted installs) and General settings shows it read-only."""
        if not getattr(settings, "SERVICENOW_INSTANCE_URL", ""):
            return None
        return TrackerConfig(
            tracker="servicenow",
            instance_url=settings.SERVICENOW_INSTANCE_URL,
            auth_method=settings.SERVICENOW_AUTH,
            username=settings.SERVICENOW_USERNAME,
            password=settings.SERVICENOW_PASSWORD,
            client_id=settings.SERVICENOW_CLIENT_ID,
            client_secret=settings.SERVICENOW_CLIENT_SECRET,
            from_env=True,
        )

    @classmethod
    def parse_webhook(cls, body: bytes) -> list[WebhookHint]:
        """The business rule's announcement ``{"sys_id": "...", "sys_mod_count": "7"}``.

        ``sys_mod_count`` is optional (a string or a number, as ``current.sys_mod_count``
        serialises). Raises ValueError saying what is wrong with the body.
        """
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise ValueError('The body must be JSON: {"sys_id": "..."}.') from None
        sys_id = data.get("sys_id") if isinstance(data, dict) else None
        if not isinstance(sys_id, str) or not 1 <= len(sys_id) <= 64:
            raise ValueError("sys_id is missing.")
        mod_count = data.get("sys_mod_count")
        try:
            mod_count = int(mod_count) if mod_count not in (None, "") else None
        except (TypeError, ValueError):
            raise ValueError("sys_mod_count must be a whole number.") from None
        return [WebhookHint(entity_id=sys_id, mod_count=mod_count)]

    @classmethod
    def from_config(cls, config) -> ServiceNowAdapter:
        """Build from ``connections.selectors.TrackerConfig`` (General settings or the environment).

        Timeout and retry budget come from SERVICENOW_TIMEOUT, SERVICENOW_RETRY_ATTEMPTS and
        SERVICENOW_RETRY_MAX_SECONDS. The client shares the node's "busy until" gate
        (:mod:`servicenow_adapter.busy`): a 429's Retry-After holds every call from this
        node, in every worker. Raises TrackerError when the configuration is incomplete.
        """
        if config.tracker and config.tracker != "servicenow":
            raise TrackerError(f"This node's tracker is {config.tracker!r}, not ServiceNow.")
        url = (config.instance_url or "").strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise TrackerError(
                "The ServiceNow instance URL is missing or does not start with https://."
            )
        if not config.username or not config.password:
            raise TrackerAuthenticationError(
                "The ServiceNow user name and password must both be filled in."
            )
        if config.auth_method == "oauth":
            if not config.client_id or not config.client_secret:
                raise TrackerAuthenticationError("OAuth needs a client id and a client secret.")
            credentials: BasicCredentials | OAuthCredentials = OAuthCredentials(
                client_id=config.client_id,
                client_secret=config.client_secret,
                username=config.username,
                password=config.password,
            )
        else:
            credentials = BasicCredentials(username=config.username, password=config.password)
        retry = RetryPolicy(
            max_attempts=getattr(settings, "SERVICENOW_RETRY_ATTEMPTS", 4),
            max_total_seconds=getattr(settings, "SERVICENOW_RETRY_MAX_SECONDS", 60.0),
        )
        client = ServiceNowClient(
            url,
            credentials=credentials,
            timeout=getattr(settings, "SERVICENOW_TIMEOUT", 30.0),
            retry=retry,
            busy=busy.SHARED,
        )
        return cls(client)

    def __repr__(self) -> str:
        return f"ServiceNowAdapter({self.instance_url!r}, user={self.username!r})"

    # -- finding entities -------------------------------------------------------------------------
    def find_entity(self, key: str) -> EntityRef:
        """Look up an incident by number (``INC0010001``; a sys_id or a record URL also works).

        One ``GET /api/now/table/incident?sysparm_query=number=<key>`` (value escaped;
        the replica's fields, so this adapter's next :meth:`read_replica` of the incident
        does not read it again); rows are re-checked client-side. Raises TrackerNotFound,
        AmbiguousEntityKey (numbers are not unique in ServiceNow: the candidates' sys_ids
        are listed, never a guess).
        """
        key = (key or "").strip()
        if not key:
            raise TrackerNotFound("Enter an incident number such as INC0010001.")
        if SYS_ID.match(key):
            return self._get_found(key)
        found = _SYS_ID_IN_TEXT.search(key)
        if found and key.startswith(("http://", "https://")):
            return self._get_found(found.group(1))
        number = key.upper()
        page = self.client.table_page(
            "incident",
            query=q.join(q.term("number", "=", number), q.order_by("sys_created_on", "sys_id")),
            fields=(*INCIDENT_FIELDS, "comments"),
            limit=20,
            display_value="all",
        )
        exact = [r for r in page.rows if mapping.value_of(r.get("number")).upper() == number]
        if not exact:
            if page.total:  # the list counts rows that its ACLs then hide
                raise self._hidden(f"An incident numbered {number}")
            raise TrackerNotFound(f"There is no incident {key} on {self.instance_url}.")
        if len(exact) > 1:
            ids = [mapping.value_of(r["sys_id"]) for r in exact]
            raise AmbiguousEntityKey(
                f"{len(exact)} incidents on {self.instance_url} have the number {number}; "
                "open the one you mean and use its sys_id or link instead.",
                candidates=ids,
            )
        return self._keep_found(exact[0])

    def _get_found(self, sys_id: str) -> EntityRef:
        """find_entity by sys_id: the whole row, kept for the next read_replica."""
        return self._keep_found(self._incident_row(sys_id))

    def _keep_found(self, row: dict) -> EntityRef:
        ref = self._ref(row)
        self._found = (ref.id, time.monotonic(), row)  # only the last: the next read uses it
        return ref

    def _incident_row(self, sys_id: str) -> dict:
        """The incident's replica fields (``sysparm_display_value=all``). Raises TrackerNotFound."""
        try:
            return self.client.table_get(
                "incident", sys_id, fields=(*INCIDENT_FIELDS, "comments"), display_value="all"
            )
        except TrackerNotFound:
            raise self._missing(sys_id) from None

    def get_entity(self, entity_id: str) -> EntityRef:
        """Look up an incident by sys_id (``GET /api/now/table/incident/{sys_id}``). Raises TrackerNotFound."""
        try:
            row = self.client.table_get("incident", entity_id, fields=("sys_id", "number"))
        except TrackerNotFound:
            raise self._missing(entity_id) from None
        return self._ref(row)

    def _ref(self, row: dict) -> EntityRef:
        sys_id = mapping.value_of(row.get("sys_id"))
        return EntityRef(
            id=sys_id,
            key=mapping.value_of(row.get("number")),
            url=self.entity_url(sys_id),
            entity_type="incident",
        )

    def entity_url(self, entity_id: str) -> str:
        """``<instance>/nav_to.do?uri=incident.do%3Fsys_id%3D<sys_id>`` (ServiceNow's own UI link form)."""
        return mapping.entity_url(self.instance_url, entity_id)

    # -- reading ---------------------------------------------------------------------------------
    def read_replica(self, entity_id: str) -> dict:
        """The replica v1 of an incident: fields, public comments (no work notes) and attachment metadata.

        Three requests when each list fits one page (two when :meth:`find_entity` of this
        adapter read the incident less than ``FOUND_ROW_REUSE_SECONDS`` ago): incident GET (with
        ``sysparm_display_value=all``, so ``comments`` also carries its display value: the
        order people see same-second comments in), ``sys_journal_field`` list (element
        ``comments``), attachment list. Raises TrackerNotFound, TrackerPermissionError (an
        ACL hides the incident; or the incident shows comments but ``sys_journal_field``
        returns none: no read access to the journal, which the instance answers with 200
        and no rows instead of an error) and the other tracker errors.
        """
        kept, self._found = self._found, None
        if kept and kept[0] == entity_id and time.monotonic() - kept[1] < FOUND_ROW_REUSE_SECONDS:
            incident = kept[2]  # find_entity just read it (issue 14: no second GET)
        else:
            incident = self._incident_row(entity_id)
        journal = self.client.journal_list(entity_id, elements=("comments",))
        shown = mapping.journal_display_entries(mapping.display_of(incident.get("comments")))
        if shown and not journal:
            number = mapping.value_of(incident.get("number")) or entity_id
            raise TrackerPermissionError(
                f"The comments of {number} on {self.instance_url} cannot be read: the incident shows "
                f"{len(shown)} comment(s), but sys_journal_field returns none to {self.username!r}. "
                f"Give {self.username!r} read access to the sys_journal_field table (its read ACL).",
                connection_level=True,
            )
        attachments = self.client.attachment_list("incident", entity_id)
        self._log_read(entity_id, attachments)
        names = self._author_names({mapping.value_of(r.get("sys_created_by")) for r in journal})
        return mapping.incident_to_replica(
            incident,
            journal,
            attachments,
            instance_url=self.instance_url,
            author_names=names,
            integration_user=self.username,
        )

    def _author_names(self, user_names: set[str]) -> dict[str, str]:
        """Display names of journal authors, from a per-process cache refreshed hourly."""
        user_names = {u for u in user_names if u}
        now = time.monotonic()
        known: dict[str, str] = {}
        with _AUTHORS_LOCK:
            for name in user_names:
                hit = _AUTHORS.get((self.instance_url, name))
                if hit and hit[1] > now:
                    known[name] = hit[0]
        missing = user_names - set(known)
        if missing and self.author_lookup:
            try:
                found = self.client.users_by_name(missing)
            except (TrackerPermissionError, TrackerNotFound):
                found = {}
            with _AUTHORS_LOCK:
                for name in missing:
                    display = found.get(name) or name
                    _AUTHORS[(self.instance_url, name)] = (display, now + AUTHOR_TTL)
                    known[name] = display
        return known

    def stream_attachment(self, attachment_id: str, chunk_size: int = 65536) -> Iterator[bytes]:
        """Yield an attachment's bytes (``GET /api/now/attachment/{sys_id}/file``, streamed). Raises TrackerNotFound."""
        return self.client.attachment_download(attachment_id, chunk_size=chunk_size)

    # -- writing ---------------------------------------------------------------------------------
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
        """Create an incident (``POST /api/now/table/incident``, one request) whatever
        ``entity_type`` is: Basic mode for ServiceNow syncs incidents only.

        ``first_comment`` (body, author) goes in the same POST as ``comments`` (the insert
        writes the journal entry, ``[<author> wrote]`` first); an empty one is refused
        (TrackerBadRequest) before anything is written. Its sys_id is learned by
        ``add_comments(..., written=1)``.

        It carries ``correlation_id`` and ``correlation_display``, ServiceNow's fields for an
        integration's own key (100 characters each), so :meth:`find_entity_by_correlation`
        finds the incident again after a crash. The instance cuts a summary over 160
        characters. ``project`` is ignored (ServiceNow has no projects). Raises
        TrackerBadRequest, TrackerPermissionError and transient errors.
        """
        fields = mapping.replica_to_incident_fields(
            {"summary": summary, "description": description}
        )
        fields.update(
            correlation_id=correlation_id[:100], correlation_display=correlation_display[:100]
        )
        if first_comment is not None:
            text = mapping.comment_body_with_author(first_comment[0] or "", first_comment[1])
            if not text.strip():
                raise TrackerBadRequest(
                    "An empty comment cannot be added: ServiceNow ignores empty journal entries."
                )
            fields["comments"] = text
        row = self.client.table_create("incident", fields, fields=WRITE_FIELDS)
        ref = self._ref(row)
        self._log_write(ref.id, row, created=True)
        return ref

    def find_entity_by_correlation(
        self, correlation_id: str, *, project: str = ""
    ) -> EntityRef | None:
        """The incident whose ``correlation_id`` equals ``correlation_id`` (oldest if several), or None.

        One ``GET /api/now/table/incident?sysparm_query=correlation_id=<escaped>``; rows are
        re-checked client-side. An empty id finds nothing without a request.
        """
        wanted = (correlation_id or "")[:100]
        if not wanted:
            return None
        page = self.client.table_page(
            "incident",
            query=q.join(
                q.term("correlation_id", "=", wanted), q.order_by("sys_created_on", "sys_id")
            ),
            fields=("sys_id", "number", "correlation_id"),
            limit=5,
        )
        exact = [r for r in page.rows if mapping.value_of(r.get("correlation_id")) == wanted]
        return self._ref(exact[0]) if exact else None

    def update_entity(
        self, entity_id: str, *, summary: str | None = None, description: str | None = None
    ) -> None:
        """Set only the fields given (None: leave as it is) with one
        ``PATCH /api/now/table/incident/{sys_id}``; nothing given, no request."""
        fields = {}
        if summary is not None:
            fields["short_description"] = str(summary)
        if description is not None:
            fields["description"] = str(description)
        if not fields:
            return
        try:
            row = self.client.table_update("incident", entity_id, fields, fields=WRITE_FIELDS)
        except TrackerNotFound:
            raise self._missing(entity_id) from None
        self._log_write(entity_id, row)

    def add_attachment(
        self, entity_id: str, *, file_name: str, content_type: str, chunks: Iterable[bytes]
    ) -> CreatedItem:
        """Upload an attachment from byte chunks, streamed, with its real Content-Type; returns its sys_id.

        ``POST /api/now/attachment/file?table_name=incident&table_sys_id=…&file_name=…``.
        Raises TrackerBadRequest (no file name), AttachmentRefused (the instance refused this
        file: over ``com.glide.attachment.max_size`` gives ``too_large``, or another 400/413
        on the upload), TrackerNotFound / TrackerPermissionError (no such incident, or one an
        ACL hides), TransientTrackerError (including a SHA-256 mismatch).
        """
        if not (file_name or "").strip():
            raise TrackerBadRequest("An attachment needs a file name.")
        try:
            result = self.client.attachment_upload(
                table_name="incident",
                table_sys_id=entity_id,
                file_name=file_name,
                content_type=content_type or "application/octet-stream",
                chunks=chunks,
            )
        except TrackerNotFound:
            raise self._missing(entity_id) from None
        except AttachmentRefused:
            raise
        except TrackerBadRequest as exc:
            raise errors.attachment_refused(exc, file_name, self.instance_url) from None
        self._log_upload(entity_id, result)
        return CreatedItem(id=mapping.value_of(result.get("sys_id")))
