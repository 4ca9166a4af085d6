"""Pure functions between ServiceNow records and the replica (``sync/replica.py``, schema v1).

Input records are Table / Attachment API rows read with ``sysparm_display_value=false``:
every value a string, date-times UTC ``YYYY-MM-DD HH:MM:SS``, references either bare
sys_ids or ``{"link", "value"}`` objects (both accepted). Basic mode rules (Exalate docs,
"Sync in Basic mode"): summary is ``short_description``, description is
``description``, comments are the public journal (``sys_journal_field`` rows with
element ``comments``), never work notes; attachments carry file name, content type,
size and the SHA-256 ServiceNow reports in ``hash``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from sync.adapters import ChangedEntity
from sync.replica import SCHEMA_VERSION

PUBLIC_ELEMENT = "comments"
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def value_of(field) -> str:
    """The raw string of a field: a reference object's ``value``, else the string itself."""
    if isinstance(field, dict):
        return str(field.get("value", ""))
    return "" if field is None else str(field)


def parse_datetime(text: str) -> datetime | None:
    """``YYYY-MM-DD HH:MM:SS`` (UTC) to an aware datetime; '' gives None. Raises ValueError otherwise."""
    text = value_of(text).strip()
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def iso_z(text: str) -> str:
    """ServiceNow's UTC date-time string as ISO 8601 ending in ``Z`` ('' stays '')."""
    moment = parse_datetime(text)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""


def entity_url(instance_url: str, sys_id: str) -> str:
    """The instance's own UI link: ``<instance>/nav_to.do?uri=incident.do%3Fsys_id%3D<sys_id>``."""
    return f"{instance_url.rstrip('/')}/nav_to.do?uri=incident.do%3Fsys_id%3D{sys_id}"


def journal_row_to_comment(row: Mapping, author_names: Mapping[str, str]) -> dict:
    """One ``sys_journal_field`` row as a replica comment.

    ``author`` is the user's display name from ``author_names`` (user_name → name), else
    the ``sys_created_by`` user_name itself.
    """
    user_name = value_of(row.get("sys_created_by"))
    author, body = split_author_line(value_of(row.get("value")))
    return {
        "id": value_of(row.get("sys_id")),
        "author": author or author_names.get(user_name) or user_name,
        "created": iso_z(row.get("sys_created_on", "")),
        "body": body,
        "public": True,
    }


_AUTHOR_LINE = re.compile(r"\[([^\]\n]{1,200}) wrote\]\n(.*)\Z", re.DOTALL)


def split_author_line(text: str) -> tuple[str, str]:
    """``("Beth Anglin", "Hi")`` for a mirrored comment ``"[Beth Anglin wrote]\nHi"``; else ``("", text)``.

    The inverse of :func:`comment_body_with_author`: a comment that arrived through one
    connection and travels on through another keeps its original author instead of
    becoming the integration user's, and its text does not pile up author lines.
    """
    match = _AUTHOR_LINE.match(text or "")
    return (match.group(1).strip(), match.group(2)) if match else ("", text or "")


def public_comments(rows: Iterable[Mapping], author_names: Mapping[str, str]) -> list[dict]:
    """Replica comments from journal rows: element ``comments`` only, ordered by created then id."""
    comments = [
        journal_row_to_comment(r, author_names)
        for r in rows
        if value_of(r.get("element")) == PUBLIC_ELEMENT
    ]
    comments.sort(key=lambda c: (c["created"], c["id"]))
    return comments


def content_type_of(raw: str) -> str:
    """The MIME type of a stored ``content_type``; recorded oddities like ``text/plain (.txt)`` are trimmed."""
    text = value_of(raw).strip()
    text = text.split(" (", 1)[0].strip()
    return text or "application/octet-stream"


def attachment_to_replica(row: Mapping) -> dict:
    """One attachment metadata record as a replica attachment (size in bytes, sha256 lowercase hex or '')."""
    digest = value_of(row.get("hash")).strip().lower()
    size_text = value_of(row.get("size_bytes")).strip()
    return {
        "id": value_of(row.get("sys_id")),
        "file_name": value_of(row.get("file_name")),
        "content_type": content_type_of(row.get("content_type", "")),
        "size": int(size_text) if size_text.isdigit() else 0,
        "sha256": digest if SHA256.match(digest) else "",
    }


def incident_to_replica(
    incident: Mapping,
    journal_rows: Iterable[Mapping],
    attachment_rows: Iterable[Mapping],
    *,
    instance_url: str,
    author_names: Mapping[str, str] | None = None,
) -> dict:
    """The replica v1 dict of an incident with its journal rows and attachment metadata.

    ``journal_rows`` may include work notes: only ``comments`` rows are kept.
    ``attachment_rows`` keep their order (the client lists them oldest first).
    """
    sys_id = value_of(incident.get("sys_id"))
    mod_count = value_of(incident.get("sys_mod_count")).strip()
    return {
        "schema": SCHEMA_VERSION,
        "tracker": "servicenow",
        "entity": {
            "id": sys_id,
            "key": value_of(incident.get("number")),
            "url": entity_url(instance_url, sys_id),
            "type": value_of(incident.get("sys_class_name")) or "incident",
        },
        "summary": value_of(incident.get("short_description")),
        "description": value_of(incident.get("description")),
        "comments": public_comments(journal_rows, author_names or {}),
        "attachments": [attachment_to_replica(a) for a in attachment_rows],
        "updated": iso_z(incident.get("sys_updated_on", "")),
        "mod_count": int(mod_count) if mod_count.isdigit() else 0,
    }


def replica_to_incident_fields(replica: Mapping) -> dict:
    """Incident fields Basic mode writes from a replica: ``short_description`` and ``description``.

    ServiceNow keeps 160 characters of ``short_description``; longer summaries are cut
    by the instance, not here, so the whole text is sent.
    """
    return {
        "short_description": str(replica.get("summary") or ""),
        "description": str(replica.get("description") or ""),
    }


def comment_body_with_author(body: str, author: str) -> str:
    """The journal text for a mirrored comment: ``[<author> wrote]`` on the first line, then the body.

    ServiceNow makes the API user the entry's author, so the original author travels in
    the text (as Exalate's comment helper does by default). An empty author adds nothing.
    """
    author = " ".join((author or "").split())
    return f"[{author} wrote]\n{body}" if author else body


def changed_entities(rows: Iterable[Mapping]) -> list[ChangedEntity]:
    """Change-listing rows (``sys_id``, ``sys_mod_count``, ``sys_updated_on``) as ChangedEntity.

    Deduplicated on (sys_id, sys_mod_count), keeping the latest ``updated`` of a pair;
    ordered by updated time then id.
    """
    seen: dict[tuple[str, int], ChangedEntity] = {}
    for row in rows:
        sys_id = value_of(row.get("sys_id"))
        updated = parse_datetime(row.get("sys_updated_on", ""))
        if not sys_id or updated is None:
            continue
        count_text = value_of(row.get("sys_mod_count")).strip()
        item = ChangedEntity(
            id=sys_id, mod_count=int(count_text) if count_text.isdigit() else 0, updated=updated
        )
        key = (item.id, item.mod_count)
        if key not in seen or seen[key].updated < item.updated:
            seen[key] = item
    return sorted(seen.values(), key=lambda c: (c.updated, c.id))
