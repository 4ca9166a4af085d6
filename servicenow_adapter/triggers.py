"""Trigger queries on incidents: check, count, list and batch-read (issue 13).

A mixin of :class:`servicenow_adapter.adapter.ServiceNowAdapter` (it uses ``self.client``).
Calls per operation (each one HTTP request while the data fits one page):

=====================  ==================================================================
query_problem          sys_dictionary list (or one sample incident when it is unreadable);
                       the dot-walked tables' dictionaries once each
query_count            incident list, ``sysparm_limit=1`` (the count is ``X-Total-Count``)
query_entities         incident list ``<query>^sys_id><last>[^sys_updated_on>=<since>]``
query_contains         incident list ``<query>^sys_idIN<100 ids>`` per 100 ids
read_replicas          per 100 incidents: incident list + journal list + attachment list
                       (``sys_idIN`` / ``element_idIN`` / ``table_sys_idIN``), + authors
find_entities          incident list ``numberIN<100 numbers>`` per 100 numbers
=====================  ==================================================================

Every added term is ANDed into each ``^NQ`` block of the admin's query
(:func:`encoded.and_each_block`), and every row that comes back is re-checked where it can
be (ids, numbers), so an instance reading a term differently narrows, never widens.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from datetime import datetime

from trackers.errors import TrackerPermissionError
from trackers.interface import EntityRef, QueryMatch, QueryPage

from . import dictionary, encoded, mapping
from . import query as q
from .client import SYS_ID

CHUNK = 100


class TriggerQueries:
    """The ``query_*`` capabilities of ``trackers.interface.TrackerAdapter`` for incidents."""

    supports_queries = True
    query_language = "encoded query"
    max_query_length = encoded.MAX_QUERY_LENGTH

    @classmethod
    def query_syntax_problem(cls, query: str) -> str | None:
        """The first syntax problem of an encoded query (``encoded.parse``), or None."""
        try:
            encoded.parse(query)
        except encoded.QueryError as exc:
            return str(exc)
        return None

    def _fields_of(self, table: str):
        cache = self.__dict__.setdefault("_table_fields", {})
        if table not in cache:
            cache[table] = dictionary.table_fields(self.client, table)
        return cache[table]

    def query_problem(self, query: str) -> str | None:
        """Syntax, then every field (and dot-walked field) against the incident table.

        The fields come from ``sys_dictionary`` or, when the integration user cannot read
        it, from a sample incident (:mod:`servicenow_adapter.dictionary`). Names the first
        term whose field the table does not have, with the closest real names.
        """
        try:
            terms = encoded.parse(query)
        except encoded.QueryError as exc:
            return str(exc)
        if not terms:
            return None
        incident = self._fields_of("incident")
        if incident is None:
            return None  # no dictionary and no incident at all: nothing to check against
        for term in terms:
            names = [term.field]
            if term.op in ("SAMEAS", "NSAMEAS") and term.value:
                names.append(term.value)
            for name in names:
                problem = self._field_problem(incident, name, term.raw)
                if problem:
                    return problem
        return None

    def _field_problem(self, table_fields, name: str, raw: str) -> str | None:
        parts = name.split(".")
        current = table_fields
        for depth, part in enumerate(parts):
            if part not in current.fields:
                close = difflib.get_close_matches(part, list(current.fields), n=3, cutoff=0.6)
                hint = f" Did you mean {', '.join(close)}?" if close else ""
                return (
                    f"'{raw}': the {current.table} table has no field '{part}' (checked against "
                    f"{current.source}). The instance would silently drop this condition and "
                    f"match more incidents than you mean.{hint}"
                )
            if depth == len(parts) - 1:
                return None
            target = current.fields[part]
            if target == "?":
                return None  # sample-record fields: the reference's table is not known
            if not target:
                return f"'{raw}': {current.table}.{part} is not a reference, so '.{parts[depth + 1]}' cannot follow it."
            nxt = self._fields_of(target) if target else None
            if nxt is None:
                return None
            current = nxt
        return None

    def query_count(self, query: str) -> int:
        """Incidents matching ``query`` now: one list with ``sysparm_limit=1`` (``X-Total-Count``)."""
        page = self.client.table_page("incident", query=query or "", fields=("sys_id",), limit=1)
        return page.total if page.total is not None else len(page.rows)

    def query_entities(
        self, query: str, *, since: datetime | None = None, after_id: str = "", limit: int = 100
    ) -> QueryPage:
        """Incidents matching ``query``, sys_id > ``after_id`` (and updated at or after ``since``),
        ordered by sys_id: one list request (key-set paging on sys_id)."""
        extra = q.join(
            q.term("sys_id", ">", after_id) if after_id else "",
            q.term("sys_updated_on", ">=", q.sn_datetime(since)) if since else "",
        )
        full = q.join(encoded.and_each_block(query or "", extra), q.order_by("sys_id"))
        page = self.client.table_page(
            "incident",
            query=full,
            fields=("sys_id", "number", "short_description"),
            limit=limit,
        )
        matches = []
        for row in page.rows:
            sys_id = mapping.value_of(row.get("sys_id"))
            if not SYS_ID.match(sys_id) or (after_id and sys_id <= after_id):
                continue
            matches.append(
                QueryMatch(
                    id=sys_id,
                    key=mapping.value_of(row.get("number")),
                    url=self.entity_url(sys_id),
                    summary=mapping.value_of(row.get("short_description")),
                )
            )
        matches.sort(key=lambda m: m.id)
        more = page.total > len(page.rows) if page.total is not None else page.has_next
        return QueryPage(matches=matches, more=bool(more and matches))

    def query_contains(self, query: str, entity_ids: Iterable[str]) -> set[str]:
        """Which of ``entity_ids`` match ``query`` now: one list per 100 sys_ids."""
        ids = sorted({i for i in entity_ids if SYS_ID.match(i or "")})
        found: set[str] = set()
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            rows = self.client.table_list(
                "incident",
                query=encoded.and_each_block(query or "", q.term("sys_id", "IN", q.in_list(chunk))),
                fields=("sys_id",),
                order=("sys_id",),
            )
            found |= {mapping.value_of(r.get("sys_id")) for r in rows} & set(chunk)
        return found

    def find_entities(self, keys: Iterable[str]) -> dict[str, EntityRef]:
        """Incidents by number, one list per 100 numbers; numbers held by several incidents
        (numbers are not unique in ServiceNow) or by none are left out."""
        numbers = sorted({k.strip().upper() for k in keys if k and "," not in k})
        out: dict[str, EntityRef] = {}
        for start in range(0, len(numbers), CHUNK):
            chunk = numbers[start : start + CHUNK]
            rows = self.client.table_list(
                "incident",
                query=q.term("number", "IN", q.in_list(chunk)),
                fields=("sys_id", "number"),
                order=("number", "sys_id"),
            )
            seen: dict[str, list[dict]] = {}
            for r in rows:
                seen.setdefault(mapping.value_of(r.get("number")).upper(), []).append(r)
            for number, found in seen.items():
                if number in chunk and len(found) == 1:
                    out[number] = self._ref(found[0])
        return out

    def read_replicas(self, entity_ids: Iterable[str]) -> dict[str, dict]:
        """Replicas of many incidents with three lists per 100 (instead of three requests each).

        Same content as :meth:`read_replica`; an incident that shows comments its journal
        rows do not (no journal read access) is left out, so that the caller's own
        ``read_replica`` reports it. Incidents that are gone are left out.
        """
        ids = sorted({i for i in entity_ids if SYS_ID.match(i or "")})
        out: dict[str, dict] = {}
        from .adapter import INCIDENT_FIELDS

        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            id_list = q.in_list(chunk)
            incidents = self.client.table_list(
                "incident",
                query=q.term("sys_id", "IN", id_list),
                fields=(*INCIDENT_FIELDS, "comments"),
                order=("sys_id",),
                display_value="all",
            )
            journal = self.client.table_list(
                "sys_journal_field",
                query=q.join(
                    q.term("element_id", "IN", id_list), q.term("element", "=", "comments")
                ),
                fields=("sys_id", "element", "element_id", "value", "sys_created_on", "sys_created_by"),
                order=("sys_created_on", "sys_id"),
            )  # fmt: skip
            attachments = self.client.table_list(
                "sys_attachment",
                query=q.join(
                    q.term("table_name", "=", "incident"), q.term("table_sys_id", "IN", id_list)
                ),
                order=("sys_created_on", "sys_id"),
                path="/api/now/attachment",
            )
            by_journal: dict[str, list[dict]] = {}
            for row in journal:
                by_journal.setdefault(mapping.value_of(row.get("element_id")), []).append(row)
            by_attachment: dict[str, list[dict]] = {}
            for row in attachments:
                by_attachment.setdefault(mapping.value_of(row.get("table_sys_id")), []).append(row)
            names = self._author_names({mapping.value_of(r.get("sys_created_by")) for r in journal})
            for incident in incidents:
                sys_id = mapping.value_of(incident.get("sys_id"))
                if sys_id not in chunk:
                    continue
                rows = by_journal.get(sys_id, [])
                shown = mapping.journal_display_entries(
                    mapping.display_of(incident.get("comments"))
                )
                if shown and not rows:
                    continue  # read_replica raises the connection-level permission error
                try:
                    out[sys_id] = mapping.incident_to_replica(
                        incident,
                        rows,
                        by_attachment.get(sys_id, []),
                        instance_url=self.instance_url,
                        author_names=names,
                        integration_user=self.username,
                    )
                except (TrackerPermissionError, ValueError):
                    continue
                self._log_read(sys_id, by_attachment.get(sys_id, []))  # issue 14: the marker
        return out
