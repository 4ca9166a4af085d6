"""``ServiceNowAdapter``: the ``sync.adapters.TrackerAdapter`` of a ServiceNow instance (incidents).

Calls per operation (each one HTTP request when the data fits in one page of 500 rows):

=====================  ===========================================================================
test_connection        incident list (1 row) + sys_journal_field list (1 row) + attachment list (1 row)
find_entity            incident list ``number=<key>``
get_entity             incident GET
read_replica           incident GET + journal list + attachment list (+ one sys_user lookup for
                       authors not seen in the last hour by this process)
stream_attachment      attachment ``/file`` GET, streamed
create_entity          incident POST
update_entity          incident PATCH
add_comment            incident PATCH ``comments`` + journal list to find the new entry's sys_id
add_attachment         attachment ``/file`` POST, streamed
create_entity_correlated  incident POST with ``correlation_id`` / ``correlation_display``
find_entity_by_correlation  incident list ``correlation_id=<id>``
update_entity_fields   incident PATCH of the given fields only (none: no request)
list_changed           incident pages + attachment pages (key-set paging) (+ one incident list for
                       incidents whose only change is a new attachment)
=====================  ===========================================================================

Errors are the ``sync.adapters`` types; messages name the instance and the user, never
the password or client secret.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from django.conf import settings

from sync.adapters import (
    AmbiguousEntityKey,
    ChangedEntity,
    CreatedItem,
    EntityRef,
    NotATrackerInstance,
    TrackerAdapter,
    TrackerAuthenticationError,
    TrackerBadRequest,
    TrackerError,
    TrackerNotFound,
    TrackerPermissionError,
    TrackerUnreachable,
    TransientTrackerError,
)

from . import errors, mapping
from . import query as q
from .client import (
    NO_RETRY,
    SYS_ID,
    BasicCredentials,
    OAuthCredentials,
    RetryPolicy,
    ServiceNowClient,
)

INCIDENT_FIELDS = (
    "sys_id", "number", "short_description", "description", "sys_updated_on", "sys_mod_count",
    "sys_class_name",
)  # fmt: skip
AUTHOR_TTL = 3600.0
_AUTHORS: dict[tuple[str, str], tuple[str, float]] = {}
_AUTHORS_LOCK = threading.Lock()
_RETURNED_COMMENTS: dict[str, None] = {}
_RETURNED_LOCK = threading.Lock()
_SYS_ID_IN_TEXT = re.compile(r"sys_id(?:=|%3D)([0-9a-f]{32})")


class ServiceNowAdapter(TrackerAdapter):
    """Reads and writes incidents of one ServiceNow instance through :class:`ServiceNowClient`.

    One adapter per task (not thread-safe); OAuth tokens and author names are shared
    per process. ``author_lookup`` False skips the sys_user lookup (authors are then user_names).
    """

    tracker = "servicenow"

    def __init__(self, client: ServiceNowClient, *, author_lookup: bool = True):
        self.client = client
        self.instance_url = client.base
        self.username = client.credentials.username
        self.author_lookup = author_lookup

    @classmethod
    def from_config(cls, config) -> ServiceNowAdapter:
        """Build from ``connections.selectors.TrackerConfig`` (General settings or the environment).

        Timeout and retry budget come from SERVICENOW_TIMEOUT, SERVICENOW_RETRY_ATTEMPTS and
        SERVICENOW_RETRY_MAX_SECONDS. Raises TrackerError when the configuration is incomplete.
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
        )
        return cls(client)

    def __repr__(self) -> str:
        return f"ServiceNowAdapter({self.instance_url!r}, user={self.username!r})"

    # -- checking the configuration ---------------------------------------------------------
    def test_connection(self) -> str:
        """Check URL, credentials and read access to incident, sys_journal_field and sys_attachment.

        One try each, no retries (an admin is waiting). Returns a success message. Raises
        TrackerUnreachable (no answer, or a hibernating instance), NotATrackerInstance
        (an answer that is not ServiceNow's REST API), TrackerAuthenticationError (401),
        TrackerPermissionError naming the table that cannot be read (403, or an ACL that
        hides every row), TransientTrackerError (429/5xx: try again later).
        """
        where, who = self.instance_url, self.username
        saved_retry, self.client.retry = self.client.retry, NO_RETRY
        try:
            try:
                self.client.table_page(
                    "incident", query="ORDERBYsys_id", fields=("sys_id",), limit=1
                )
            except TrackerNotFound as exc:
                # ServiceNow's own 404 ("No Record found", with a detail) is an empty table the v1 way.
                if not exc.detail:
                    raise NotATrackerInstance(
                        f"{where} answered 404 for the incident table: is this the address of a ServiceNow instance?"
                    ) from None
            except TrackerPermissionError as exc:
                raise TrackerPermissionError(
                    f"The user {who!r} cannot read the incident table on {where} (403 {exc.detail or exc.message}). "
                    "Give it read access to incident, for example the itil role.",
                    status=403,
                    detail=exc.detail,
                ) from None
            self._check_readable(
                "sys_journal_field", "comments and work notes (sys_journal_field)", None
            )
            self._check_readable(
                "sys_attachment", "attachments (sys_attachment)", "/api/now/attachment"
            )
        except TrackerAuthenticationError as exc:
            how = (
                "OAuth client or the user's credentials"
                if isinstance(self.client.credentials, OAuthCredentials)
                else "user name and password"
            )
            raise TrackerAuthenticationError(
                f"ServiceNow at {where} refused the {how} for {who!r} (401). Check them and try again.",
                status=401,
                detail=exc.detail,
            ) from None
        except errors.NonJSONAnswer as exc:
            if exc.hibernating:
                raise TrackerUnreachable(
                    f"The instance {where} is hibernating. Wake it up from the ServiceNow developer portal, then test again."
                ) from None
            raise NotATrackerInstance(
                f"{where} answered, but not like a ServiceNow instance: it sent a web page instead of the "
                "REST API's JSON. Check the instance URL (https://<name>.service-now.com).",
                status=exc.status,
            ) from None
        except NotATrackerInstance as exc:
            raise NotATrackerInstance(
                f"{where} answered, but not like a ServiceNow instance ({exc.message}). Check the instance URL.",
                status=exc.status,
            ) from None
        except TrackerUnreachable as exc:
            raise TrackerUnreachable(
                f"Could not reach {where}: {exc.message.rsplit(': ', 1)[-1]}. "
                "Check the instance URL and that this server can reach it."
            ) from None
        except TransientTrackerError as exc:
            raise TransientTrackerError(
                f"{where} could not answer now ({exc.message}). Try again in a minute.",
                status=exc.status,
                detail=exc.detail,
                retry_after=exc.retry_after,
            ) from None
        finally:
            self.client.retry = saved_retry
        return (
            f"Connected to {where} as {who}: incidents, comments (sys_journal_field) and "
            "attachments (sys_attachment) can be read."
        )

    def _check_readable(self, table: str, label: str, path: str | None) -> None:
        query = (
            q.join(q.term("name", "=", "incident"), "ORDERBYsys_id")
            if table == "sys_journal_field"
            else "ORDERBYsys_id"
        )
        try:
            page = self.client.table_page(
                table, query=query, fields=("sys_id",), limit=1, path=path
            )
        except TrackerPermissionError as exc:
            raise TrackerPermissionError(
                f"The user {self.username!r} cannot read {label} on {self.instance_url} "
                f"(403 {exc.detail or exc.message}). Grant it read access to {table}.",
                status=403,
                detail=exc.detail,
            ) from None
        except TrackerNotFound:
            return  # an empty table answered the v1 way
        if not page.rows and page.total:
            raise TrackerPermissionError(
                f"The user {self.username!r} cannot read {label} on {self.instance_url}: the instance counts "
                f"{page.total} rows but returns none, so an ACL hides them. Grant it read access to {table}."
            )

    # -- finding entities -------------------------------------------------------------------------
    def find_entity(self, key: str) -> EntityRef:
        """Look up an incident by number (``INC0010001``; a sys_id or a record URL also works).

        One ``GET /api/now/table/incident?sysparm_query=number=<key>`` (value escaped);
        rows are re-checked client-side. Raises TrackerNotFound, AmbiguousEntityKey (numbers
        are not unique in ServiceNow: the candidates' sys_ids are listed, never a guess).
        """
        key = (key or "").strip()
        if not key:
            raise TrackerNotFound("Enter an incident number such as INC0010001.")
        if SYS_ID.match(key):
            return self.get_entity(key)
        found = _SYS_ID_IN_TEXT.search(key)
        if found and key.startswith(("http://", "https://")):
            return self.get_entity(found.group(1))
        number = key.upper()
        page = self.client.table_page(
            "incident",
            query=q.join(q.term("number", "=", number), q.order_by("sys_created_on", "sys_id")),
            fields=("sys_id", "number"),
            limit=20,
        )
        exact = [r for r in page.rows if mapping.value_of(r.get("number")).upper() == number]
        if not exact:
            raise TrackerNotFound(f"There is no incident {key} on {self.instance_url}.")
        if len(exact) > 1:
            ids = [mapping.value_of(r["sys_id"]) for r in exact]
            raise AmbiguousEntityKey(
                f"{len(exact)} incidents on {self.instance_url} have the number {number}; "
                "open the one you mean and use its sys_id or link instead.",
                candidates=ids,
            )
        return self._ref(exact[0])

    def get_entity(self, entity_id: str) -> EntityRef:
        """Look up an incident by sys_id (``GET /api/now/table/incident/{sys_id}``). Raises TrackerNotFound."""
        try:
            row = self.client.table_get("incident", entity_id, fields=("sys_id", "number"))
        except TrackerNotFound:
            raise TrackerNotFound(
                f"There is no incident with sys_id {entity_id} on {self.instance_url}."
            ) from None
        return self._ref(row)

    def _ref(self, row: dict) -> EntityRef:
        sys_id = mapping.value_of(row.get("sys_id"))
        return EntityRef(
            id=sys_id, key=mapping.value_of(row.get("number")), url=self.entity_url(sys_id)
        )

    def entity_url(self, entity_id: str) -> str:
        """``<instance>/nav_to.do?uri=incident.do%3Fsys_id%3D<sys_id>`` (ServiceNow's own UI link form)."""
        return mapping.entity_url(self.instance_url, entity_id)

    # -- reading ---------------------------------------------------------------------------------
    def read_replica(self, entity_id: str) -> dict:
        """The replica v1 of an incident: fields, public comments (no work notes) and attachment metadata.

        Three requests when each list fits one page: incident GET, ``sys_journal_field``
        list (element ``comments``), attachment list. Raises TrackerNotFound and the
        other tracker errors.
        """
        try:
            incident = self.client.table_get("incident", entity_id, fields=INCIDENT_FIELDS)
        except TrackerNotFound:
            raise TrackerNotFound(
                f"There is no incident with sys_id {entity_id} on {self.instance_url}."
            ) from None
        journal = self.client.journal_list(entity_id, elements=("comments",))
        attachments = self.client.attachment_list("incident", entity_id)
        names = self._author_names({mapping.value_of(r.get("sys_created_by")) for r in journal})
        return mapping.incident_to_replica(
            incident, journal, attachments, instance_url=self.instance_url, author_names=names
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
    def create_entity(self, *, summary: str, description: str, entity_type: str) -> EntityRef:
        """Create an incident (``POST /api/now/table/incident``) whatever ``entity_type`` is.

        ServiceNow in Basic mode syncs incidents only; the instance cuts a summary over
        160 characters. Raises TrackerBadRequest, TrackerPermissionError and transient errors.
        """
        fields = mapping.replica_to_incident_fields(
            {"summary": summary, "description": description}
        )
        row = self.client.table_create("incident", fields, fields=("sys_id", "number"))
        return self._ref(row)

    entity_types = ("incident",)

    def create_entity_correlated(
        self,
        *,
        summary: str,
        description: str,
        entity_type: str,
        correlation_id: str,
        correlation_display: str,
    ) -> EntityRef:
        """Create an incident carrying ``correlation_id`` and ``correlation_display`` (one POST).

        These are ServiceNow's fields for an integration's own key (100 characters each);
        :meth:`find_entity_by_correlation` finds the incident again after a crash.
        """
        fields = mapping.replica_to_incident_fields(
            {"summary": summary, "description": description}
        )
        fields.update(
            correlation_id=correlation_id[:100], correlation_display=correlation_display[:100]
        )
        row = self.client.table_create("incident", fields, fields=("sys_id", "number"))
        return self._ref(row)

    def find_entity_by_correlation(self, correlation_id: str) -> EntityRef | None:
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

    def update_entity_fields(
        self, entity_id: str, *, summary: str | None = None, description: str | None = None
    ) -> None:
        """Set only the fields given (None: leave as it is) with one PATCH; nothing given, no request."""
        fields = {}
        if summary is not None:
            fields["short_description"] = summary
        if description is not None:
            fields["description"] = description
        if not fields:
            return
        try:
            self.client.table_update("incident", entity_id, fields, fields=("sys_id",))
        except TrackerNotFound:
            raise TrackerNotFound(
                f"There is no incident with sys_id {entity_id} on {self.instance_url}."
            ) from None

    def update_entity(self, entity_id: str, *, summary: str, description: str) -> None:
        """Set ``short_description`` and ``description`` (``PATCH /api/now/table/incident/{sys_id}``)."""
        fields = mapping.replica_to_incident_fields(
            {"summary": summary, "description": description}
        )
        try:
            self.client.table_update("incident", entity_id, fields, fields=("sys_id",))
        except TrackerNotFound:
            raise TrackerNotFound(
                f"There is no incident with sys_id {entity_id} on {self.instance_url}."
            ) from None

    def add_comment(self, entity_id: str, *, body: str, author: str) -> CreatedItem:
        """Add a public comment, its first line ``[<author> wrote]``; returns the journal entry's sys_id.

        ``PATCH`` with ``comments`` (ServiceNow appends a ``sys_journal_field`` row), then
        one journal read of this incident's newest ``comments`` rows since the write to
        find the entry whose text is ours. Raises TrackerBadRequest for an empty comment;
        TrackerPermissionError when the entry cannot be read back (no journal read access).
        """
        text = mapping.comment_body_with_author(body or "", author)
        if not text.strip():
            raise TrackerBadRequest(
                "An empty comment cannot be added: ServiceNow ignores empty journal entries."
            )
        try:
            row = self.client.table_update(
                "incident",
                entity_id,
                {"comments": text},
                fields=("sys_id", "sys_updated_on", "number"),
            )
        except TrackerNotFound:
            raise TrackerNotFound(
                f"There is no incident with sys_id {entity_id} on {self.instance_url}."
            ) from None
        written = (
            mapping.parse_datetime(row.get("sys_updated_on", "")) or datetime.now().astimezone()
        )
        lower = q.sn_datetime(written - timedelta(seconds=120))
        page = self.client.table_page(
            "sys_journal_field",
            query=q.join(
                q.term("element_id", "=", entity_id),
                q.term("element", "=", "comments"),
                q.term("sys_created_on", ">=", lower),
                "ORDERBYDESCsys_created_on^ORDERBYDESCsys_id",
            ),
            fields=("sys_id", "value", "sys_created_on"),
            limit=50,
        )
        wanted = _normalise(text)
        matches = [
            mapping.value_of(e["sys_id"])
            for e in page.rows
            if _normalise(mapping.value_of(e.get("value"))) == wanted
        ]
        with _RETURNED_LOCK:
            # The same text twice within one second: skip entries this process already returned.
            fresh = [m for m in matches if m not in _RETURNED_COMMENTS] or matches
            if fresh:
                _RETURNED_COMMENTS[fresh[0]] = None
                while len(_RETURNED_COMMENTS) > 10_000:
                    _RETURNED_COMMENTS.pop(next(iter(_RETURNED_COMMENTS)))
                return CreatedItem(id=fresh[0])
        raise TrackerPermissionError(
            f"The comment was added to {mapping.value_of(row.get('number')) or entity_id}, but its journal entry "
            f"could not be read back: give {self.username!r} read access to sys_journal_field."
        )

    def add_attachment(
        self, entity_id: str, *, file_name: str, content_type: str, chunks: Iterable[bytes]
    ) -> CreatedItem:
        """Upload an attachment from byte chunks, streamed, with its real Content-Type; returns its sys_id.

        ``POST /api/now/attachment/file?table_name=incident&table_sys_id=…&file_name=…``.
        Raises TrackerBadRequest (no file name), TrackerNotFound (no such incident),
        TransientTrackerError (including a SHA-256 mismatch).
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
            raise TrackerNotFound(
                f"There is no incident with sys_id {entity_id} on {self.instance_url}."
            ) from None
        return CreatedItem(id=mapping.value_of(result.get("sys_id")))

    # -- change detection ------------------------------------------------------------------------
    def list_changed(self, *, since: datetime, overlap_seconds: float) -> list[ChangedEntity]:
        """Incidents updated at or after ``since - overlap_seconds``, deduplicated on (sys_id, sys_mod_count).

        Reads incidents with ``sys_updated_on>=<UTC literal>`` and attachments of incidents
        the same way (a new attachment does not touch the incident's own
        ``sys_updated_on``). Both use key-set paging on (sys_updated_on, sys_id), so a row
        updated while pages are read is never skipped (offset paging would skip one).
        An incident whose only change is a new attachment is listed with its current
        ``sys_mod_count`` and the attachment's time as ``updated``. Ordered by updated, id.
        """
        lower = q.sn_datetime(since - timedelta(seconds=max(0.0, float(overlap_seconds))))
        rows = self._keyset(
            "incident", "", lower, fields=("sys_id", "sys_mod_count", "sys_updated_on"), path=None
        )
        attachment_rows = self._keyset(
            "sys_attachment",
            q.term("table_name", "=", "incident"),
            lower,
            fields=("sys_id", "table_sys_id", "sys_updated_on"),
            path="/api/now/attachment",
        )
        latest: dict[str, str] = {}
        for a in attachment_rows:
            parent, updated = (
                mapping.value_of(a.get("table_sys_id")),
                mapping.value_of(a.get("sys_updated_on")),
            )
            if SYS_ID.match(parent) and updated > latest.get(parent, ""):
                latest[parent] = updated
        if latest:
            counts = {
                mapping.value_of(r["sys_id"]): mapping.value_of(r.get("sys_mod_count"))
                for r in rows
            }
            missing = sorted(set(latest) - set(counts))
            for start in range(0, len(missing), 100):
                chunk = missing[start : start + 100]
                found = self.client.table_list(
                    "incident",
                    query=q.term("sys_id", "IN", q.in_list(chunk)),
                    fields=("sys_id", "sys_mod_count"),
                    order=("sys_id",),
                )
                counts.update(
                    {
                        mapping.value_of(r["sys_id"]): mapping.value_of(r.get("sys_mod_count"))
                        for r in found
                    }
                )
            for parent, updated in latest.items():
                if parent in counts:
                    rows.append(
                        {
                            "sys_id": parent,
                            "sys_mod_count": counts[parent],
                            "sys_updated_on": updated,
                        }
                    )
        return mapping.changed_entities(rows)

    def _keyset(
        self, table: str, base: str, lower: str, *, fields: tuple[str, ...], path: str | None
    ) -> list[dict]:
        """Rows with ``sys_updated_on >= lower``, paged by the key (sys_updated_on, sys_id).

        Each next page asks for ``sys_updated_on>=T^sys_updated_on>T^ORsys_id>S`` (that is
        T' >= T and (T' > T or id > S)) from the last row seen. When ACLs empty a whole
        page while ``X-Total-Count`` says more rows exist, the offset moves past it instead.
        """
        order = "ORDERBYsys_updated_on^ORDERBYsys_id"
        limit = self.client.page_size
        cursor: tuple[str, str] | None = None
        offset, out = 0, []
        for _ in range(100_000):
            if cursor is None:
                condition = q.term("sys_updated_on", ">=", lower)
            else:
                stamp, last_id = cursor
                condition = q.join(
                    q.term("sys_updated_on", ">=", stamp),
                    q.term("sys_updated_on", ">", stamp) + "^OR" + q.term("sys_id", ">", last_id),
                )
            try:
                page = self.client.table_page(
                    table,
                    query=q.join(base, condition, order),
                    fields=fields,
                    limit=limit,
                    offset=offset,
                    path=path,
                )
            except errors.TransactionCancelled:
                if limit <= 10:
                    raise
                limit = max(10, limit // 2)
                continue
            out.extend(page.rows)
            window_end = offset + limit
            if page.rows:
                last = page.rows[-1]
                cursor = (
                    mapping.value_of(last.get("sys_updated_on")),
                    mapping.value_of(last.get("sys_id")),
                )
                offset = 0
                if (page.total is not None and page.total <= window_end) or (
                    page.total is None and not page.has_next
                ):
                    return out
            elif page.total is not None and page.total > window_end:
                offset = window_end
            else:
                return out
        return out


def _normalise(text: str) -> str:
    return text.replace("\r\n", "\n").strip()
