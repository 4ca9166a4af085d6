"""Replica schema v1: the JSON snapshot of one entity that nodes exchange.

Shape (all keys present; times are ISO 8601 UTC strings ending in ``Z``)::

    {
      "schema": 1,
      "tracker": "servicenow",
      "entity": {"id": "<sys_id>", "key": "INC0010001", "url": "https://…", "type": "incident"},
      "summary": "…", "description": "…",
      "comments": [
        {"id": "<journal sys_id>", "author": "Beth Anglin", "created": "2026-11-29T10:00:00Z",
         "body": "…", "public": true}
      ],
      "attachments": [
        {"id": "<sys_id>", "file_name": "screen.png", "content_type": "image/png",
         "size": 12345, "sha256": "<64 hex>"}
      ],
      "updated": "2026-11-29T10:00:00Z",
      "mod_count": 4
    }

Comments are in the order people see them on the original (``created``, and within one
second the tracker's own display order, which ``id`` need not follow: ServiceNow's
``sys_id``s are random); only public comments appear (Basic mode never sends work notes).
Attachment ``file_name`` and ``content_type`` are at most 255 characters: an adapter fits
longer ones with :func:`fit_file_name` / :func:`fit_content_type` instead of failing the
whole entity (any user who can attach a file could otherwise block an incident). The sync engine (``sync``) validates replicas on
receipt (:func:`replica_validate`); the tracker adapters build them.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator

SCHEMA_VERSION = 1

# --- Validation on receipt -------------------------------------------------------------
# The schema below is the contract between nodes. A replica that does not match is
# refused as a whole with a message naming the first offending field; nothing of it
# is applied.

MAX_TEXT = 1_000_000  # characters of a summary, description or comment body
MAX_ITEMS = 5_000  # comments or attachments in one replica

MAX_FILE_NAME = 255  # characters of an attachment's file name
MAX_CONTENT_TYPE = 255  # characters of an attachment's content type
DEFAULT_CONTENT_TYPE = "application/octet-stream"

_ID = {"type": "string", "minLength": 1, "maxLength": 64}
_TIME = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$"}
#: Only http(s) links are taken from another node (a ``javascript:`` or ``data:`` URL would run
#: on the console's origin when an admin opens the remote incident); empty means "no link".
HTTP_URL_PATTERN = r"^(?:[hH][tT][tT][pP][sS]?://[^\s\x00-\x1f\x7f]+)?$"

REPLICA_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": [
        "schema",
        "tracker",
        "entity",
        "summary",
        "description",
        "comments",
        "attachments",
        "updated",
        "mod_count",
    ],
    "properties": {
        "schema": {"const": SCHEMA_VERSION},
        "tracker": {"type": "string", "minLength": 1, "maxLength": 40},
        "entity": {
            "type": "object",
            "required": ["id", "key", "url", "type"],
            "properties": {
                "id": _ID,
                "key": {"type": "string", "maxLength": 64},
                "url": {"type": "string", "maxLength": 1000, "pattern": HTTP_URL_PATTERN},
                "type": {"type": "string", "minLength": 1, "maxLength": 40},
            },
        },
        "summary": {"type": "string", "maxLength": MAX_TEXT},
        "description": {"type": "string", "maxLength": MAX_TEXT},
        "comments": {
            "type": "array",
            "maxItems": MAX_ITEMS,
            "items": {
                "type": "object",
                "required": ["id", "author", "created", "body", "public"],
                "properties": {
                    "id": _ID,
                    "author": {"type": "string", "maxLength": 255},
                    "created": _TIME,
                    "body": {"type": "string", "maxLength": MAX_TEXT},
                    "public": {"type": "boolean"},
                },
            },
        },
        "attachments": {
            "type": "array",
            "maxItems": MAX_ITEMS,
            "items": {
                "type": "object",
                "required": ["id", "file_name", "content_type", "size", "sha256"],
                "properties": {
                    "id": _ID,
                    "file_name": {"type": "string", "minLength": 1, "maxLength": MAX_FILE_NAME},
                    "content_type": {"type": "string", "maxLength": MAX_CONTENT_TYPE},
                    "size": {"type": "integer", "minimum": 0},
                    "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                },
            },
        },
        "updated": _TIME,
        "mod_count": {"type": "integer", "minimum": 0},
    },
}

_validator = Draft202012Validator(REPLICA_SCHEMA)


_EXTENSION = re.compile(r"(\.[A-Za-z0-9][A-Za-z0-9_+\-]{0,15}){1,2}$")
_MIME = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+\-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+\-]{0,126}$"
)


def fit_file_name(name: str, limit: int = MAX_FILE_NAME) -> str:
    """``name`` shortened to ``limit`` characters with its extension kept (``.png``, ``.tar.gz``).

    A file name says what the file is only through its extension (the destination picks
    an icon, a viewer and a download type from it), so the stem is cut and ``…`` marks the
    cut: ``"aaaa…aaa.png"``. Names within the limit come back unchanged; an empty name is
    ``"attachment"``. Control characters become spaces.
    """
    name = "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in name or "").strip()
    if not name:
        return "attachment"
    if len(name) <= limit:
        return name
    match = _EXTENSION.search(name)
    ext = match.group(0) if match and match.start() > 0 else ""
    if len(ext) > limit // 4:
        ext = ""
    return name[: limit - len(ext) - 1].rstrip() + "…" + ext


def fit_content_type(content_type: str, limit: int = MAX_CONTENT_TYPE) -> str:
    """A content type a replica may carry: ``type/subtype`` plus parameters when they fit.

    Over ``limit`` characters the parameters are dropped; a type that is still too long or
    is not ``type/subtype`` at all becomes ``application/octet-stream`` (what HTTP clients
    assume for unknown bytes): a MIME type cut in the middle would name a different type.
    The bytes are never changed.
    """
    text = (content_type or "").strip()
    if not text:
        return DEFAULT_CONTENT_TYPE
    if len(text) <= limit and _MIME.match(text.split(";", 1)[0].strip()):
        return text
    main = text.split(";", 1)[0].strip()
    if len(main) <= limit and _MIME.match(main):
        return main
    return DEFAULT_CONTENT_TYPE


def is_http_url(value: object) -> bool:
    """True for an ``http://`` or ``https://`` URL with a host (what a console page may link to)."""
    if not isinstance(value, str) or not value or not re.match(HTTP_URL_PATTERN, value):
        return False
    return bool(urlsplit(value).hostname)


class ReplicaInvalid(ValueError):
    """A replica does not match schema v1. ``str(exc)`` names the field, e.g.
    ``replica.comments[2].sha256: 'xyz' does not match '^[0-9a-f]{64}$'``."""


def replica_validate(data: Any) -> dict:
    """Check ``data`` against replica schema v1 and return it unchanged.

    Raises :class:`ReplicaInvalid` naming the first offending field (the error nearest
    the root is reported, so a wrong ``schema`` version is named before anything else).
    """
    if not isinstance(data, dict):
        raise ReplicaInvalid("replica: expected a JSON object.")
    if data.get("schema") != SCHEMA_VERSION:
        raise ReplicaInvalid(
            f"replica.schema: version {data.get('schema')!r} is not supported (this node reads version {SCHEMA_VERSION})."
        )
    errors = sorted(
        _validator.iter_errors(data),
        key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))),
    )
    if errors:
        err = errors[0]
        where = "replica" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path
        )
        if err.validator == "pattern" and err.schema.get("pattern") == HTTP_URL_PATTERN:
            raise ReplicaInvalid(f"{where}: only http:// and https:// links are accepted.")
        raise ReplicaInvalid(f"{where}: {err.message}")
    return data
