"""Pure functions between Jira issues and the replica (``trackers/replica.py``, schema v1).

Jira → replica: ``entity.id`` is the issue **id** (keys change when an issue moves,
jira-api.md §1.4), ``entity.type`` the issue type's name in lower case, ``summary`` the
summary, ``description`` the rendered description as plain text, comments from the comment
endpoint with their rendered HTML (``jira_adapter.html_out``), attachments from the
issue's ``attachment`` field. ``mod_count`` is the issue's ``updated`` time in whole epoch
seconds (Jira keeps no version counter; ``updated`` moves on every edit, comment and
attachment), so that a change listing and a read agree on it.

Replica → Jira: summary as one line of at most 255 characters (Jira refuses newlines and
longer summaries, §1.1); bodies as ADF on Cloud and wiki markup on Data Center.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from trackers.errors import TrackerBadRequest
from trackers.replica import SCHEMA_VERSION

from . import adf, wiki
from .adf import to_text as adf_text
from .html_out import rendered_to_body, rendered_to_text
from .markup import Block, Inline, body_to_blocks

#: Jira's limit on a description or comment body (jira-api.md §1.1, §3.3).
TEXT_LIMIT = 32_767
SUMMARY_LIMIT = 255
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def parse_time(text) -> datetime | None:
    """Jira's ``2026-03-02T09:15:44.120+0000`` (or epoch milliseconds) as an aware UTC datetime."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return datetime.fromtimestamp(text / 1000, tz=UTC)
    text = str(text or "").strip()
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def iso_z(moment: datetime | None) -> str:
    """``2026-03-02T09:15:44.120Z`` (milliseconds kept), '' for None."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def browse_url(base: str, key: str) -> str:
    """The issue's page: ``<site>/browse/<KEY>``."""
    return f"{base.rstrip('/')}/browse/{key}"


def mod_count_of(updated: datetime | None) -> int:
    """The replica ``mod_count`` of an issue: its ``updated`` in whole epoch seconds (0 if unknown)."""
    return int(updated.timestamp()) if updated else 0


def is_public(comment: Mapping) -> bool:
    """A comment restricted to a role or group, or a JSM internal note, is not public (§3.5)."""
    return not comment.get("visibility") and comment.get("jsdPublic", True) is not False


def author_id(user: Mapping | None) -> str:
    """The account id of a Jira user: ``accountId`` (Cloud), else ``key`` or ``name`` (DC)."""
    user = user or {}
    return str(user.get("accountId") or user.get("key") or user.get("name") or "")


def own_filtered(items: Iterable[Mapping], own_account: str) -> list[Mapping]:
    """The comments or attachments whose ``author`` is not ``own_account`` ('' keeps all)."""
    return [i for i in items if not own_account or author_id(i.get("author")) != own_account]


def comment_to_replica(comment: Mapping, *, base: str) -> dict:
    """One Jira comment as a replica comment (body from ``renderedBody``; raw body as fallback)."""
    rendered = comment.get("renderedBody")
    if isinstance(rendered, str) and rendered.strip():
        body = rendered_to_body(rendered, base=base)
    else:
        raw = comment.get("body")
        body = adf_text(raw) if isinstance(raw, dict) else str(raw or "")
    author = comment.get("author") or {}
    return {
        "id": str(comment.get("id") or ""),
        "author": str(author.get("displayName") or author.get("name") or "")[:255],
        "created": iso_z(parse_time(comment.get("created"))),
        "body": body,
        "public": is_public(comment),
    }


def attachment_to_replica(row: Mapping, sha256: str) -> dict:
    """One entry of the issue's ``attachment`` field as a replica attachment."""
    size = row.get("size")
    return {
        "id": str(row.get("id") or ""),
        "file_name": str(row.get("filename") or "attachment")[:255],
        "content_type": str(row.get("mimeType") or "application/octet-stream")[:255],
        "size": int(size) if isinstance(size, int) and size >= 0 else 0,
        "sha256": sha256,
    }


def issue_to_replica(
    issue: Mapping,
    comments: Iterable[Mapping],
    *,
    base: str,
    own_account: str,
    sha256s: Mapping[str, str],
) -> dict:
    """The replica v1 of an issue read with ``expand=renderedFields``.

    Comments and attachments added by ``own_account`` (the integration account: what this
    node wrote) are left out, so they never echo; comments are ordered by created time, id.
    ``sha256s`` maps attachment id → SHA-256 (Jira reports none: the adapter hashes the bytes).
    Summary and description are the replica text this node wrote when the issue's
    ``exalate.summary`` / ``exalate.description`` properties show nobody changed them since.
    """
    fields = issue.get("fields") or {}
    rendered = issue.get("renderedFields") or {}
    key = str(issue.get("key") or "")
    description = rendered.get("description")
    if isinstance(description, str) and description.strip():
        text = rendered_to_text(description, base=base)
    else:
        raw = fields.get("description")
        text = adf_text(raw) if isinstance(raw, dict) else str(raw or "")
    items = [comment_to_replica(c, base=base) for c in own_filtered(comments, own_account)]
    items = [c for c in items if c["id"] and c["created"]]
    items.sort(key=lambda c: (c["created"], c["id"].zfill(20)))
    attachments = [
        attachment_to_replica(a, sha256s.get(str(a.get("id")), ""))
        for a in own_filtered(fields.get("attachment") or [], own_account)
    ]
    props = issue.get("properties") or {}
    text = recalled(fields.get("description"), props.get(DESCRIPTION_PROPERTY), text)
    summary = recalled(
        fields.get("summary"), props.get(SUMMARY_PROPERTY), str(fields.get("summary") or "")
    )
    updated = parse_time(fields.get("updated"))
    latest = max([updated] + [parse_time(c["created"]) for c in items], key=lambda t: t or _EPOCH)
    return {
        "schema": SCHEMA_VERSION,
        "tracker": "jira",
        "entity": {
            "id": str(issue.get("id") or ""),
            "key": key,
            "url": browse_url(base, key) if key else "",
            "type": str((fields.get("issuetype") or {}).get("name") or "task").lower()[:40],
        },
        "summary": summary,
        "description": text,
        "comments": items,
        "attachments": [a for a in attachments if SHA256.match(a["sha256"])],
        "updated": iso_z(latest) or iso_z(datetime.now(UTC)),
        "mod_count": mod_count_of(updated),
    }


_EPOCH = datetime.fromtimestamp(0, tz=UTC)


def summary_line(summary: str) -> str:
    """A summary Jira accepts: whitespace runs (newlines too) become one space, at most 255
    characters (cut with ``…``), never empty (``(no summary)``)."""
    text = " ".join((summary or "").split())
    if len(text) > SUMMARY_LIMIT:
        text = text[: SUMMARY_LIMIT - 1].rstrip() + "…"
    return text or "(no summary)"


def author_blocks(author: str) -> list[Block]:
    """The first paragraph of a mirrored comment, ``[Beth Anglin wrote]`` (as on ServiceNow)."""
    author = " ".join((author or "").split())
    return [Block("p", [Inline("text", f"[{author} wrote]")])] if author else []


def jira_body(text: str, *, flavour: str, what: str, author: str = ""):
    """A replica body as a Jira rich-text value: an ADF dict (``cloud``) or a wiki string (``dc``).

    Raises TrackerBadRequest when it is over Jira's 32,767-character limit (the ADF JSON
    or the wiki text is measured: a body Jira would refuse is never sent) or when the ADF
    produced is not valid. ``what`` names it in messages (``The comment``).
    """
    blocks = author_blocks(author) + body_to_blocks(text or "")
    if flavour == "cloud":
        value = adf.doc(blocks)
        found = adf.problems(value)
        if found:
            raise TrackerBadRequest(
                f"{what} could not be turned into valid Atlassian Document Format: {found[0]}."
            )
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    else:
        value = wiki.markup(blocks)
        size = len(value)
    if size > TEXT_LIMIT:
        raise TrackerBadRequest(
            f"{what} is too long for Jira: {size:,} characters once formatted, over Jira's "
            f"limit of {TEXT_LIMIT:,}. Shorten it on the other side (nothing was written)."
        )
    return value


# -- what this node wrote: the replica's own text, kept beside Jira's form ---------------------
#: Entity properties remembering the replica text behind the summary and description this
#: node last wrote (``{"sha256": <hash of the value sent>, "text": <replica text>}``).
SUMMARY_PROPERTY = "exalate.summary"
DESCRIPTION_PROPERTY = "exalate.description"
MAX_PROPERTY_BYTES = 30_000  # Jira keeps at most 32,768 bytes per property value


def value_hash(value) -> str:
    """SHA-256 of a field value as Jira stores it (an ADF dict canonicalised, or a string)."""
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(str(value or "").encode()).hexdigest()


def text_stamp(sent, text: str) -> dict | None:
    """The property value for a field written as ``sent`` from replica ``text``; None when too big."""
    stamp = {"sha256": value_hash(sent), "text": text}
    size = len(json.dumps(stamp, ensure_ascii=False).encode())
    return stamp if size <= MAX_PROPERTY_BYTES else None


def recalled(current, stamp, fallback: str) -> str:
    """The replica text this node wrote when the field still holds exactly what it sent
    (nobody edited it since), else ``fallback`` (the text read from Jira). This keeps a
    ServiceNow description unchanged by its round trip through Jira's formats, so it never
    comes back rewritten."""
    if isinstance(stamp, dict) and isinstance(stamp.get("text"), str):
        if stamp.get("sha256") == value_hash(current):
            return stamp["text"]
    return fallback
