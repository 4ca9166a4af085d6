"""Change detection for a ServiceNow instance: incidents and attachments updated since a time.

A mixin of :class:`servicenow_adapter.adapter.ServiceNowAdapter` (it uses ``self.client``).
Key-set paging on (sys_updated_on, sys_id) so that a row updated while pages are read is
never skipped; see ``servicenow-api.md`` (Table API paging) for why offsets are unsafe.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from trackers.interface import ChangedEntity

from . import errors, mapping
from . import query as q
from .client import SYS_ID


class ChangeListing:
    """``list_changed`` and its key-set pager."""

    def list_changed(self, *, since: datetime, overlap_seconds: float) -> list[ChangedEntity]:
        """Incidents updated at or after ``since - overlap_seconds``, deduplicated on (sys_id, sys_mod_count).

        Reads incidents with ``sys_updated_on>=<UTC literal>`` and attachments of incidents
        the same way (a new attachment does not touch the incident's own
        ``sys_updated_on``). Both use key-set paging on (sys_updated_on, sys_id), so a row
        updated while pages are read is never skipped (offset paging would skip one).
        An incident whose only change is a new attachment is listed with its current
        ``sys_mod_count`` and the attachment's time as ``updated``; every incident with an
        attachment in the window carries its newest attachment time as
        ``attachments_updated``, so an attachment added in the same second as the last
        listing is told apart from what was already seen. Ordered by updated, id.
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
        newest_ids: dict[str, set[str]] = {}
        for a in attachment_rows:
            parent, updated = (
                mapping.value_of(a.get("table_sys_id")),
                mapping.value_of(a.get("sys_updated_on")),
            )
            if not SYS_ID.match(parent):
                continue
            if updated > latest.get(parent, ""):
                latest[parent] = updated
                newest_ids[parent] = set()
            if updated == latest[parent]:
                newest_ids[parent].add(mapping.value_of(a.get("sys_id")))
        markers = {p: mapping.attachments_marker(latest[p], newest_ids[p]) for p in latest}
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
        return mapping.changed_entities(rows, latest, markers)

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
