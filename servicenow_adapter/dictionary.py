"""The fields of a ServiceNow table, from the instance's dictionary or a sample record (issue 13).

A trigger's encoded query is checked against the incident table's real fields before it
is saved, because an instance silently drops a condition on an unknown field and matches
more than meant. Where the fields come from, best first:

1. ``sys_dictionary`` (one ``GET /api/now/table/sys_dictionary`` of the table and the tables
   it extends: incident extends task), which also names the table a reference points to,
   so a dot-walk such as ``assignment_group.name`` is checked on ``sys_user_group`` too;
2. when the integration user may not read the dictionary (403, or an ACL that answers 200
   with no rows), the fields of one sample record (``sysparm_limit=1``, every field); a
   dot-walk is then checked on its first field only.

When the table has no record either, nothing can be checked (None).
"""

from __future__ import annotations

from dataclasses import dataclass

from trackers.errors import TrackerNotFound, TrackerPermissionError

from . import mapping
from . import query as q

#: The tables a table extends (incident ← task), whose fields it inherits.
EXTENDS = {"incident": ("task",), "problem": ("task",), "change_request": ("task",)}


@dataclass(frozen=True)
class TableFields:
    """``fields``: field name → the table it references ('' when not a reference or unknown);
    ``source``: ``sys_dictionary`` or ``a sample incident record``."""

    table: str
    fields: dict[str, str]
    source: str


def _looks_like_sys_id(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)


def dictionary_fields(client, table: str) -> TableFields | None:
    """The fields of ``table`` from ``sys_dictionary`` (one request), or None when unreadable."""
    names = (table, *EXTENDS.get(table, ()))
    try:
        rows = client.table_list(
            "sys_dictionary",
            query=q.join(q.term("name", "IN", q.in_list(names)), "elementISNOTEMPTY"),
            fields=("name", "element", "internal_type", "reference"),
            order=("name", "element"),
            display_value="all",
            page_size=5000,
        )
    except (TrackerPermissionError, TrackerNotFound):
        return None
    fields: dict[str, str] = {}
    for row in rows:
        element = mapping.value_of(row.get("element"))
        if not element:
            continue
        ref = row.get("reference")
        target = mapping.value_of(ref)
        if _looks_like_sys_id(target):  # a reference to sys_db_object: its display is the name
            target = mapping.display_of(ref) if isinstance(ref, dict) else ""
        fields[element] = fields.get(element) or target or ""
    if not fields:
        return None
    return TableFields(
        table=table, fields=fields, source="the instance's dictionary (sys_dictionary)"
    )


def sample_fields(client, table: str) -> TableFields | None:
    """The fields of one record of ``table`` (one request), or None when the table has none."""
    page = client.table_page(table, query="", fields=(), limit=1)
    if not page.rows:
        return None
    row = page.rows[0]
    fields = dict.fromkeys(row, "?")  # "?": whether it is a reference is not known
    return TableFields(table=table, fields=fields, source=f"the fields of a sample {table} record")


def table_fields(client, table: str) -> TableFields | None:
    """The dictionary's fields of ``table``, else a sample record's, else None."""
    return dictionary_fields(client, table) or sample_fields(client, table)
