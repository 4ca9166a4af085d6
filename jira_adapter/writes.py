"""Writing to a Jira site: issue types, create, update, comments and attachments.

A mixin of :class:`jira_adapter.adapter.JiraAdapter` (``self.client``, ``self.base``,
``self._keys``). Writes are never repeated blindly: a create carries the
``exalate.correlation`` entity property so ``find_entity_by_correlation`` finds it after
a crash, and the client retries a POST only when Jira surely did not process it.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable

from requests_toolbelt import MultipartEncoder

from trackers.errors import (
    TrackerBadRequest,
    TrackerError,
    TrackerNotFound,
    TrackerPermissionError,
)
from trackers.interface import CreatedItem, EntityRef

from . import mapping
from .changes import CORRELATION_PROPERTY, remember_write
from .checks import human_bytes

log = logging.getLogger(__name__)

COMMENT_PROPERTY = "exalate.origin"
META_TTL = 300.0
SPOOL_IN_MEMORY = 8 << 20
CACHE_LOCK = threading.Lock()
_META: dict[tuple, tuple[float, object]] = {}
HASHES: OrderedDict[tuple[str, str], str] = OrderedDict()


def _cached(key: tuple, fresh: bool, load):
    now = time.monotonic()
    with CACHE_LOCK:
        hit = _META.get(key)
    if hit and hit[0] > now and not fresh:
        return hit[1]
    value = load()
    with CACHE_LOCK:
        _META[key] = (now + META_TTL, value)
    return value


class IssueWriter:
    """Issue types, ``create_entity``, ``update_entity``, ``add_comment``, ``add_attachment``."""

    # -- issue types ----------------------------------------------------------------------------
    def issue_types(self, project: str, *, fresh: bool = False) -> list[dict]:
        """The issue types ``project`` offers for creation (createmeta, paged; cached 5 minutes)."""
        path = f"{self.client.api}/issue/createmeta/{project}/issuetypes"
        return _cached(
            ("types", self.base, project),
            fresh,
            lambda: list(self.client.paged(path, "issueTypes")),
        )

    def _create_fields(self, project: str, type_id: str, fresh: bool) -> list[dict] | None:
        path = f"{self.client.api}/issue/createmeta/{project}/issuetypes/{type_id}"
        try:
            return _cached(
                ("fields", self.base, project, type_id), fresh,
                lambda: list(self.client.paged(path, "fields")),
            )  # fmt: skip
        except (TrackerNotFound, TrackerBadRequest):
            return None  # an older site without this endpoint: let the create answer

    def _choose_type(self, project: str, wanted: str, fresh: bool) -> dict:
        """The project's type named ``wanted`` (case-insensitive), else Task, else its default
        (the first non-subtask type at hierarchy level 0). Raises TrackerPermissionError."""
        try:
            types = [t for t in self.issue_types(project, fresh=fresh) if not t.get("subtask")]
        except (TrackerNotFound, TrackerPermissionError):
            types = []
        if not types:
            raise TrackerPermissionError(
                f"Cannot create issues in project {project} on {self.base}: it does not exist, is "
                "not visible to the account, or lacks the Create issues permission for it."
            )
        by_name = {str(t.get("name") or "").lower(): t for t in types}
        for name in ((wanted or "").strip().lower(), "task"):
            if name in by_name:
                return by_name[name]
        top = [t for t in types if t.get("hierarchyLevel", 0) == 0]
        return (top or types)[0]

    # -- writing ----------------------------------------------------------------------------
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
        """Create an issue in ``project`` (key) stamped with the ``exalate.correlation``
        property ``{"id", "display"}`` in the create call itself, of the type chosen by
        :meth:`_choose_type`; the ref's ``entity_type`` names it. A type refused as invalid
        (removed since the cache was filled) is chosen again once from fresh metadata.
        The ``exalate.summary`` / ``exalate.description`` properties remember the replica
        text behind what was sent (see :func:`jira_adapter.mapping.recalled`).
        Raises TrackerBadRequest (no project, required fields Basic mode cannot fill, text
        over 32,767 characters), TrackerPermissionError, transient errors.
        """
        project = (project or "").strip().upper()
        if not project:
            raise TrackerBadRequest(
                "No Jira project is chosen for this connection: choose one on the connection page."
            )
        body = mapping.jira_body(description, flavour=self.client.flavour, what="The description")
        for fresh in (False, True):
            kind = self._choose_type(project, entity_type, fresh)
            fields = {
                "project": {"key": project},
                "issuetype": {"id": str(kind.get("id"))},
                "summary": mapping.summary_line(summary),
            }
            meta = self._create_fields(project, str(kind.get("id")), fresh)
            if meta is None or any(f.get("fieldId") == "description" for f in meta):
                if description.strip():
                    fields["description"] = body
            _refuse_required(meta, project, str(kind.get("name")))
            request = {
                "fields": fields,
                "properties": [{"key": CORRELATION_PROPERTY, "value": {
                    "id": correlation_id, "display": correlation_display}}]
                + _stamps(fields, summary=summary, description=description),
            }  # fmt: skip
            try:
                _, created = self.client.request(
                    "POST", f"{self.client.api}/issue", json_body=request
                )
            except TrackerBadRequest as exc:
                if not fresh and "issuetype" in (exc.detail or "").lower():
                    continue
                raise TrackerBadRequest(
                    f"Jira refused to create the issue in {project}: {exc.detail or exc.message}",
                    status=exc.status,
                ) from None
            break
        issue_id, key = str(created.get("id")), str(created.get("key"))
        remember_write(self.base, issue_id)
        self._ensure_property(issue_id, correlation_id, correlation_display)
        self._keys[issue_id] = key
        return EntityRef(
            id=issue_id,
            key=key,
            url=mapping.browse_url(self.base, key),
            entity_type=str(kind.get("name")),
        )

    def _ensure_property(self, issue_id: str, correlation_id: str, display: str) -> None:
        """Re-stamp the correlation property if the site dropped it from the create (never raises)."""
        path = f"{self.client.api}/issue/{issue_id}/properties/{CORRELATION_PROPERTY}"
        try:
            try:
                self.client.get(path)
            except TrackerNotFound:
                self.client.request(
                    "PUT", path, json_body={"id": correlation_id, "display": display}
                )
        except TrackerError as exc:
            log.warning("Issue %s: could not check its correlation property: %s", issue_id, exc)

    def update_entity(
        self, entity_id: str, *, summary: str | None = None, description: str | None = None
    ) -> None:
        """Set only the given fields with one ``PUT …/issue/{id}`` (204); nothing given, no request.

        Then re-stamps the ``exalate.summary`` / ``exalate.description`` properties of the
        fields set (one PUT each; a failure there is logged, the edit stands).
        """
        fields: dict = {}
        if summary is not None:
            fields["summary"] = mapping.summary_line(summary)
        if description is not None:
            fields["description"] = mapping.jira_body(
                description, flavour=self.client.flavour, what="The description"
            )
        if not fields:
            return
        try:
            self.client.request(
                "PUT", f"{self.client.api}/issue/{entity_id}", json_body={"fields": fields}
            )
        except TrackerNotFound:
            raise TrackerNotFound(
                f"There is no issue with id {entity_id} on {self.base}."
            ) from None
        remember_write(self.base, str(entity_id))
        for stamp in _stamps(fields, summary=summary, description=description):
            path = f"{self.client.api}/issue/{entity_id}/properties/{stamp['key']}"
            try:
                self.client.request("PUT", path, json_body=stamp["value"])
            except TrackerError as exc:  # the edit is made: a missing stamp only costs an echo
                log.warning("Issue %s: could not stamp %s: %s", entity_id, stamp["key"], exc)

    def add_comment(self, entity_id: str, *, body: str, author: str) -> CreatedItem:
        """Add a public comment, first paragraph ``[<author> wrote]``; returns its id.

        Stamped with the comment property ``exalate.origin``. A body over Jira's 32,767
        characters (once formatted) is refused with TrackerBadRequest, not split: nothing is
        half-written. Never retried after it may have reached Jira.
        """
        if not (body or "").strip():
            raise TrackerBadRequest("An empty comment cannot be added to a Jira issue.")
        value = mapping.jira_body(
            body, flavour=self.client.flavour, what="The comment", author=author
        )
        request = {
            "body": value,
            "properties": [{"key": COMMENT_PROPERTY, "value": {"by": "exalate"}}],
        }
        try:
            _, created = self.client.request(
                "POST", f"{self.client.api}/issue/{entity_id}/comment", json_body=request
            )
        except TrackerNotFound:
            raise TrackerNotFound(
                f"There is no issue with id {entity_id} on {self.base}."
            ) from None
        remember_write(self.base, str(entity_id))
        return CreatedItem(id=str(created.get("id")))

    def add_attachment(
        self, entity_id: str, *, file_name: str, content_type: str, chunks: Iterable[bytes]
    ) -> CreatedItem:
        """Upload an attachment: the chunks are spooled to a temporary file (8 MB in memory,
        then disk) while hashed and counted, checked against the site's ``uploadLimit``, then
        sent as one multipart ``file`` part with ``X-Atlassian-Token: no-check``. Raises
        TrackerBadRequest naming the limit, TrackerPermissionError when attachments are off.
        """
        if not (file_name or "").strip():
            raise TrackerBadRequest("An attachment needs a file name.")
        meta = self._attachments_allowed()
        limit = int(meta.get("uploadLimit") or 0)
        digest, size = hashlib.sha256(), 0
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            for chunk in chunks:
                if chunk:
                    size += len(chunk)
                    if limit and size > limit:
                        raise TrackerBadRequest(
                            f"{file_name} is larger than the upload limit of {self.base} "
                            f"({human_bytes(limit)}): it was not attached."
                        )
                    digest.update(chunk)
                    spool.write(chunk)

            def multipart():
                spool.seek(0)
                encoder = MultipartEncoder(
                    fields={"file": (file_name, spool, content_type or "application/octet-stream")}
                )
                return encoder, {
                    "Content-Type": encoder.content_type,
                    "X-Atlassian-Token": "no-check",
                }

            path = f"{self.client.api}/issue/{entity_id}/attachments"
            try:
                _, created = self.client.request("POST", path, body=multipart)
            except TrackerNotFound:
                raise TrackerNotFound(
                    f"There is no issue with id {entity_id} on {self.base}."
                ) from None
            except TrackerBadRequest as exc:
                if exc.status == 413:
                    raise TrackerBadRequest(
                        f"Jira at {self.base} refused {file_name}: over the upload limit "
                        f"({human_bytes(limit) if limit else 'set by the site'}) or the issue's "
                        "attachment limit.",
                        status=413,
                    ) from None
                raise
        rows = created if isinstance(created, list) else [created]
        attachment_id = str((rows[0] or {}).get("id") or "")
        remember_hash((self.base, attachment_id), digest.hexdigest())
        remember_write(self.base, str(entity_id))
        return CreatedItem(id=attachment_id)

    def _attachments_allowed(self) -> dict:
        if self._attachment_meta is None:
            self._attachment_meta = self.client.get(f"{self.client.api}/attachment/meta") or {}
        if self._attachment_meta.get("enabled") is False:
            raise TrackerPermissionError(f"Attachments are turned off on {self.base}.")
        return self._attachment_meta


def remember_hash(slot: tuple[str, str], sha256: str) -> str:
    """Remember the SHA-256 of attachment ``slot`` = (site, id); returns it."""
    with CACHE_LOCK:
        HASHES[slot] = sha256
        while len(HASHES) > 20_000:
            HASHES.popitem(last=False)
    return sha256


def _stamps(fields: dict, *, summary: str | None, description: str | None) -> list[dict]:
    """The ``exalate.summary`` / ``exalate.description`` properties for the fields being sent."""
    out = []
    for name, key, text in (
        ("summary", mapping.SUMMARY_PROPERTY, summary),
        ("description", mapping.DESCRIPTION_PROPERTY, description),
    ):
        if name in fields and text is not None:
            stamp = mapping.text_stamp(fields[name], text)
            if stamp is not None:
                out.append({"key": key, "value": stamp})
    return out


def _refuse_required(meta: list[dict] | None, project: str, type_name: str) -> None:
    """TrackerBadRequest when the create screen requires fields Basic mode cannot fill."""
    filled = {"summary", "issuetype", "project", "description", "reporter"}
    missing = [
        str(f.get("name") or f.get("fieldId"))
        for f in meta or []
        if f.get("required") and not f.get("hasDefaultValue") and f.get("fieldId") not in filled
    ]
    if missing:
        raise TrackerBadRequest(
            f"Project {project} requires {', '.join(missing)} for a {type_name}, which Basic mode "
            "does not fill: make them optional or give them a default value in Jira."
        )
