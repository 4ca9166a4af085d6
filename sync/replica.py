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

Comments are ordered by ``created`` then ``id``; only public comments appear (Basic
mode never sends work notes). The sync engine (``sync``) validates replicas on
receipt (:func:`replica_validate`); the tracker adapters build them.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_VERSION = 1

# --- Validation on receipt -------------------------------------------------------------
# The schema below is the contract between nodes. A replica that does not match is
# refused as a whole with a message naming the first offending field; nothing of it
# is applied.

MAX_TEXT = 1_000_000  # characters of a summary, description or comment body
MAX_ITEMS = 5_000  # comments or attachments in one replica

_ID = {"type": "string", "minLength": 1, "maxLength": 64}
_TIME = {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$"}

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
                "url": {"type": "string", "maxLength": 1000},
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
                    "file_name": {"type": "string", "minLength": 1, "maxLength": 255},
                    "content_type": {"type": "string", "maxLength": 255},
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
        raise ReplicaInvalid(f"{where}: {err.message}")
    return data
