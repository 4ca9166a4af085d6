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

import hashlib
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from trackers.interface import ChangedEntity
from trackers.replica import SCHEMA_VERSION, fit_content_type, fit_file_name

PUBLIC_ELEMENT = "comments"
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def value_of(field) -> str:
    """The raw string of a field: a reference object's ``value``, else the string itself."""
    if isinstance(field, dict):
        return str(field.get("value", ""))
    return "" if field is None else str(field)


def display_of(field) -> str:
    """The display string of a field read with ``sysparm_display_value=all`` (else the string)."""
    if isinstance(field, dict):
        return str(field.get("display_value", ""))
    return "" if field is None else str(field)


#: A journal entry's header line in a journal field's display value:
#: ``2022-11-04 15:29:20 - System Administrator (Additional comments)`` (date in the API
#: user's format and time zone, so only its shape is relied on).
_JOURNAL_HEADER = re.compile(
    r"^\S[^\n]* - [^\n]+ \((?:Additional comments|Work notes|[^()\n]{1,80})\)$"
)


def journal_display_entries(display_text: str) -> list[str]:
    """The entry texts of a journal field's display value, oldest first.

    ServiceNow shows a record's journal newest first, one block per entry:
    ``<time> - <user's name> (<label>)\n<text>\n\n`` (ServiceNow docs, Table API with
    ``sysparm_display_value=true``; recorded responses). That is the order people see,
    and the only place the instance tells it for entries written in the same second
    (``sys_created_on`` has one-second resolution, ``sys_id`` is random). A header is a
    line of that shape at the start or after a blank line.
    """
    text = (display_text or "").replace("\r\n", "\n")
    if not text.strip():
        return []
    blocks: list[list[str]] = []
    previous_blank = True
    for line in text.split("\n"):
        if previous_blank and _JOURNAL_HEADER.match(line):
            blocks.append([])
        elif blocks:
            blocks[-1].append(line)
        previous_blank = line == ""
    entries = ["\n".join(lines).strip("\n") for lines in blocks]
    return list(reversed(entries))


def display_order(rows: Iterable[Mapping], display_text: str) -> dict[str, int]:
    """{journal sys_id: rank} from the display value, rank 0 the oldest shown entry.

    Rows are matched to displayed entries by their text (the first unused entry with the
    same text, oldest first); rows not found in the display keep no rank.
    """
    positions: dict[str, list[int]] = {}
    for index, entry in enumerate(journal_display_entries(display_text)):
        positions.setdefault(_normalise(entry), []).append(index)
    ranks: dict[str, int] = {}
    ordered = sorted(
        rows, key=lambda r: (value_of(r.get("sys_created_on")), value_of(r.get("sys_id")))
    )
    for row in ordered:
        free = positions.get(_normalise(value_of(row.get("value"))))
        if free:
            ranks[value_of(row.get("sys_id"))] = free.pop(0)
    return ranks


def _normalise(text: str) -> str:
    return (text or "").replace("\r\n", "\n").strip()


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


def journal_row_to_comment(
    row: Mapping, author_names: Mapping[str, str], *, integration_user: str = ""
) -> dict:
    """One ``sys_journal_field`` row as a replica comment.

    ``author`` is the user's display name from ``author_names`` (user_name → name), else
    the ``sys_created_by`` user_name itself. Only an entry written by this node's own
    integration user (``integration_user``, its user_name) may carry an author line
    (``[Beth Anglin wrote]``, which this node wrote itself): that line names the author. A
    comment written by a person keeps its real author, however its text begins, so nobody
    can write under another name.
    """
    user_name = value_of(row.get("sys_created_by"))
    text = value_of(row.get("value"))
    if integration_user and user_name.casefold() == integration_user.casefold():
        author, body = split_author_line(text)
    else:
        author, body = "", text
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


def public_comments(
    rows: Iterable[Mapping],
    author_names: Mapping[str, str],
    *,
    integration_user: str = "",
    display_text: str = "",
) -> list[dict]:
    """Replica comments from journal rows: element ``comments`` only, in the order people see.

    Ordered by created time; entries of one second in the order of ``display_text`` (the
    incident's ``comments`` display value, see :func:`journal_display_entries`), else by
    id. ``integration_user``: see :func:`journal_row_to_comment`.
    """
    public = [r for r in rows if value_of(r.get("element")) == PUBLIC_ELEMENT]
    ranks = display_order(public, display_text) if display_text else {}
    unranked = len(ranks) + len(public)
    comments = [
        journal_row_to_comment(r, author_names, integration_user=integration_user) for r in public
    ]
    comments.sort(key=lambda c: (c["created"], ranks.get(c["id"], unranked), c["id"]))
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
        # Any user who can attach a file chooses these: a 296-character name or a 420-character
        # type is shortened (extension kept) rather than making the whole incident unreadable.
        "file_name": fit_file_name(value_of(row.get("file_name"))),
        "content_type": fit_content_type(content_type_of(row.get("content_type", ""))),
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
    integration_user: str = "",
) -> dict:
    """The replica v1 dict of an incident with its journal rows and attachment metadata.

    ``journal_rows`` may include work notes: only ``comments`` rows are kept.
    ``integration_user`` is the user_name this node writes as (author lines of its own
    entries are read back; see :func:`journal_row_to_comment`).
    ``attachment_rows`` keep their order (the client lists them oldest first).
    Same-second comments follow the incident's ``comments`` display value when the
    incident was read with ``sysparm_display_value=all`` (see :func:`public_comments`).
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
        "comments": public_comments(
            journal_rows,
            author_names or {},
            integration_user=integration_user,
            display_text=display_of(incident.get("comments")),
        ),
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


def attachments_marker(updated: str, sys_ids: Iterable[str]) -> str:
    """``<newest attachment time>/<sha1 of the sys_ids at that time>``: changes with every new
    attachment, also one added in the same second as the attachments seen before."""
    digest = hashlib.sha1(",".join(sorted(sys_ids)).encode(), usedforsecurity=False)
    return f"{updated}/{digest.hexdigest()[:16]}"


def changed_entities(
    rows: Iterable[Mapping],
    attachments_updated: Mapping[str, str] | None = None,
    markers: Mapping[str, str] | None = None,
) -> list[ChangedEntity]:
    """Change-listing rows (``sys_id``, ``sys_mod_count``, ``sys_updated_on``) as ChangedEntity.

    One item per (sys_id, sys_mod_count), keeping the latest ``updated`` of a pair;
    ``attachments_updated`` ({sys_id: newest attachment ``sys_updated_on``}) sets the item's
    ``attachments_updated``, since a new attachment changes neither ``sys_mod_count`` nor
    the incident's ``sys_updated_on``; ``markers`` ({sys_id: :func:`attachments_marker`})
    its ``attachments_marker``. Ordered by updated time then id.
    """
    attachments_updated, markers = attachments_updated or {}, markers or {}
    seen: dict[tuple[str, int], ChangedEntity] = {}
    for row in rows:
        sys_id = value_of(row.get("sys_id"))
        updated = parse_datetime(row.get("sys_updated_on", ""))
        if not sys_id or updated is None:
            continue
        count_text = value_of(row.get("sys_mod_count")).strip()
        attached = attachments_updated.get(sys_id)
        item = ChangedEntity(
            id=sys_id,
            mod_count=int(count_text) if count_text.isdigit() else 0,
            updated=updated,
            attachments_updated=parse_datetime(attached) if attached else None,
            attachments_marker=markers.get(sys_id, ""),
        )
        key = (item.id, item.mod_count)
        if key not in seen or seen[key].updated < item.updated:
            seen[key] = item
    return sorted(seen.values(), key=lambda c: (c.updated, c.id))
