"""Telling "there is no such incident" from "an ACL hides it" (a mixin of ``ServiceNowAdapter``).

ServiceNow answers 404 "No Record found" / "Record doesn't exist or ACL restricts the
record retrieval" for both; its lists, though, count (``X-Total-Count``) rows their read
ACLs then leave out (docs, Table API: ``sysparm_limit`` is applied before ACLs). Uses
``self.client``, ``self.instance_url`` and ``self.username``.
"""

from __future__ import annotations

from trackers.errors import TrackerError, TrackerNotFound, TrackerPermissionError

from . import query as q
from .client import SYS_ID


class AccessErrors:
    """``_missing`` (the error for a 404 on an incident) and ``_hidden`` (an ACL hides it)."""

    def _missing(self, entity_id: str) -> TrackerError:
        """The error for a 404 on incident ``entity_id``: TrackerNotFound, or TrackerPermissionError
        when the incident exists but an ACL hides it from the integration user.

        A 404 means "Record doesn't exist or ACL restricts the record retrieval"; one list
        ``sys_id=<id>`` tells them apart, since the list counts (``X-Total-Count``) rows its
        read ACLs then leave out (ServiceNow docs, Table API: the limit is applied before ACLs).
        """
        gone = TrackerNotFound(
            f"There is no incident with sys_id {entity_id} on {self.instance_url}."
        )
        if not SYS_ID.match(entity_id or ""):
            return gone
        try:
            page = self.client.table_page(
                "incident", query=q.term("sys_id", "=", entity_id), fields=("sys_id",), limit=1
            )
        except TrackerError:
            return gone
        if not page.rows and page.total:
            return self._hidden(f"The incident with sys_id {entity_id}")
        return gone

    def _hidden(self, what: str) -> TrackerPermissionError:
        return TrackerPermissionError(
            f"{what} exists on {self.instance_url}, but the user {self.username!r} may not read it: "
            "an ACL hides it. Give that user read access to the incident (the incident table's "
            "read ACL, for example through the itil role)."
        )
