"""Change detection and the correlation look-up for a Jira site (JQL search).

A mixin of :class:`jira_adapter.adapter.JiraAdapter` (``self.client``, ``self.base``).

JQL dates are minute-granular and a quoted date is read in the searching account's time
zone (jira-api.md §2.3), so the lower bound is an **unquoted epoch-milliseconds** number
floored to the minute, widened by an overlap of at least ``JIRA_POLL_MIN_OVERLAP``
seconds (Cloud search is eventually consistent, §2.2: a change can become searchable
after later ones). Results are de-duplicated on (issue id, ``updated``). Issues this
process wrote in the last minutes are passed as ``reconcileIssues`` (read-after-write).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from datetime import datetime, timedelta

from django.conf import settings

from trackers.errors import TrackerBadRequest, TrackerNotFound
from trackers.interface import ChangedEntity, EntityRef

from . import mapping
from .client import CLOUD

#: The entity property stamped on every issue this node creates (jira-api.md §8.5).
CORRELATION_PROPERTY = "exalate.correlation"
RECENT_SECONDS = 600.0
_RECENT: dict[str, OrderedDict[str, float]] = {}
_RECENT_LOCK = threading.Lock()


def jql_string(value: str) -> str:
    """``value`` as a double-quoted JQL string (backslash and quote escaped)."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def remember_write(base: str, issue_id: str) -> None:
    """Note that this process wrote ``issue_id`` (for ``reconcileIssues`` in the next searches)."""
    with _RECENT_LOCK:
        ids = _RECENT.setdefault(base, OrderedDict())
        ids.pop(issue_id, None)
        ids[issue_id] = time.monotonic()
        while len(ids) > 50:
            ids.popitem(last=False)


def recent_writes(base: str) -> list[str]:
    """Up to 50 issue ids this process wrote on ``base`` in the last ten minutes, newest last."""
    cutoff = time.monotonic() - RECENT_SECONDS
    with _RECENT_LOCK:
        ids = _RECENT.get(base) or OrderedDict()
        return [i for i, at in ids.items() if at >= cutoff]


class ChangeListing:
    """``list_changed`` and ``find_entity_by_correlation``."""

    def list_changed(self, *, since: datetime, overlap_seconds: float) -> list[ChangedEntity]:
        """Issues updated at or after ``since - overlap`` (overlap ≥ ``JIRA_POLL_MIN_OVERLAP``, 120 s).

        One search (Cloud ``/search/jql`` with ``nextPageToken``; DC ``/search`` with
        ``startAt``): ``updated >= <epoch ms, minute floor> ORDER BY updated ASC, key ASC``,
        fields ``updated`` only. ``mod_count`` is ``updated`` in epoch seconds (as in
        :func:`jira_adapter.mapping.issue_to_replica`). Ordered by updated, id.
        """
        overlap = max(
            float(overlap_seconds), float(getattr(settings, "JIRA_POLL_MIN_OVERLAP", 120))
        )
        lower = since - timedelta(seconds=overlap)
        millis = int(lower.timestamp()) // 60 * 60_000
        jql = f"updated >= {millis} ORDER BY updated ASC, key ASC"
        seen: dict[tuple[str, datetime], ChangedEntity] = {}
        for issue in self.client.search(
            jql, fields=["updated"], reconcile=recent_writes(self.base)
        ):
            updated = mapping.parse_time((issue.get("fields") or {}).get("updated"))
            issue_id = str(issue.get("id") or "")
            if not issue_id or updated is None or updated < lower.replace(second=0, microsecond=0):
                continue
            seen[(issue_id, updated)] = ChangedEntity(
                id=issue_id, mod_count=mapping.mod_count_of(updated), updated=updated
            )
        return sorted(seen.values(), key=lambda c: (c.updated, c.id.zfill(20)))

    def find_entity_by_correlation(
        self, correlation_id: str, *, project: str = ""
    ) -> EntityRef | None:
        """The issue created with ``correlation_id`` (its ``exalate.correlation`` property), or None.

        1. JQL ``issue.property[exalate.correlation].id = "<id>"``: exact, but a site only
           indexes properties an installed app declares, so on most real sites this finds
           nothing (the Jira sandbox indexes it, as an app would);
        2. then, without relying on an index of properties, the issues created in
           ``project`` in the last ``JIRA_CORRELATION_LOOKBACK_DAYS`` (2) days, newest first,
           with the property returned by the search and compared here.
        A candidate's property is re-read with a direct GET when the search did not return it
        (at most 100 of the second search's). On Cloud (search lags behind writes), a miss is searched once more after
        ``JIRA_CORRELATION_SETTLE_SECONDS`` (5 s). An empty id finds nothing, without a request.
        """
        wanted = (correlation_id or "").strip()
        if not wanted:
            return None
        tries = 2 if self.client.flavour == CLOUD else 1
        for attempt in range(tries):
            if attempt:
                time.sleep(float(getattr(settings, "JIRA_CORRELATION_SETTLE_SECONDS", 5.0)))
            found = self._correlated(wanted, project)
            if found is not None:
                return found
        return None

    def _correlated(self, wanted: str, project: str) -> EntityRef | None:
        scope = f"project = {jql_string(project.upper())} AND " if project else ""
        days = int(getattr(settings, "JIRA_CORRELATION_LOOKBACK_DAYS", 2))
        queries = [
            f"{scope}issue.property[{CORRELATION_PROPERTY}].id = {jql_string(wanted)}",
            f"{scope}created >= -{max(1, days)}d ORDER BY created DESC",
        ]
        for n, jql in enumerate(queries):
            try:
                issues = list(
                    self.client.search(
                        jql,
                        fields=["issuetype", "project", "summary"],
                        properties=[CORRELATION_PROPERTY],
                        reconcile=recent_writes(self.base),
                    )
                )
            except TrackerBadRequest:
                continue  # a site that refuses the clause: try the next way
            for i, issue in enumerate(issues[: 1000 if n else 20]):
                if self._carries(issue, wanted, may_read=n == 0 or i < 100):
                    return self._ref(issue)
        return None

    def _carries(self, issue: dict, wanted: str, *, may_read: bool) -> bool:
        props = issue.get("properties")
        if isinstance(props, dict) and CORRELATION_PROPERTY in props:
            value = props[CORRELATION_PROPERTY]
        elif not may_read:
            return False
        else:
            try:
                value = self.client.get(
                    f"{self.client.api}/issue/{issue.get('id')}/properties/{CORRELATION_PROPERTY}"
                ).get("value")
            except TrackerNotFound:
                return False
        return isinstance(value, dict) and value.get("id") == wanted
