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
receipt; the tracker adapters build them.
"""

SCHEMA_VERSION = 1
