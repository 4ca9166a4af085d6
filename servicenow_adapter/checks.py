"""Test connection for a ServiceNow instance: URL, credentials and the rights Basic mode needs.

A mixin of :class:`servicenow_adapter.adapter.ServiceNowAdapter` (it uses ``self.client``,
``self.instance_url`` and ``self.username``).
"""

from __future__ import annotations

from trackers.errors import (
    NotATrackerInstance,
    TrackerAuthenticationError,
    TrackerNotFound,
    TrackerPermissionError,
    TrackerUnreachable,
    TransientTrackerError,
)
from trackers.interface import ConnectionReport, RightCheck, SettingsFields

from . import errors, rights
from . import query as q
from .client import NO_RETRY, OAuthCredentials
from .mapping import display_of, journal_display_entries, value_of

#: Incidents read to see whether ACLs hide some of them (one request).
SAMPLE = 100


class ConnectionCheck:
    """``test_connection``: one try per table, no retries, every failure in an admin's words;
    ``settings_fields``: what General settings asks for a ServiceNow instance."""

    @classmethod
    def settings_fields(cls) -> SettingsFields:
        """General settings for a ServiceNow instance: Basic (user, password) or OAuth 2."""
        return SettingsFields(
            instance_url_example="https://yourcompany.service-now.com",
            username_help="The integration user: it needs to read incident, sys_journal_field "
            "and sys_attachment, and to create and update incidents and attach files (the "
            "role itil gives all of these). Test connection checks each right without writing.",
            webhook_help="A ServiceNow business rule can announce a changed incident at once by "
            "calling POST {url} with the header Authorization: Bearer <webhook token> and the "
            'body {"sys_id": "…"} (the README shows the business rule).',
        )

    def test_connection(self) -> ConnectionReport:
        """Check URL, credentials and every right Basic mode needs, one line each, writing nothing.

        Reads (incidents, public comments in sys_journal_field, attachments) are verified by
        reading; create/update incidents and write attachments are inferred from the user's
        roles (:mod:`.rights`). One try each, no retries (an admin is waiting). Returns a
        :class:`ConnectionReport` (the message, and ``rights``: six :class:`RightCheck`
        lines in :data:`.rights.RIGHTS` order). Raises TrackerUnreachable (no answer, or a
        hibernating instance), NotATrackerInstance (an answer that is not ServiceNow's
        REST API), TrackerAuthenticationError (401), TransientTrackerError (429/5xx: try
        again later), TrackerPermissionError naming the first table that cannot be read
        (403, or an ACL that hides rows), carrying the six lines as ``rights``. A write
        right that is missing or unverified is a line, never an error: a custom ACL may
        allow what the roles do not.
        """
        where, who = self.instance_url, self.username
        saved_retry, self.client.retry = self.client.retry, NO_RETRY
        try:
            lines, problem = self._read_rights()
            lines += rights.write_lines(*rights.user_roles(self.client, who), who)
        except TrackerAuthenticationError as exc:
            how = (
                "OAuth client or the user's credentials"
                if isinstance(self.client.credentials, OAuthCredentials)
                else "user name and password"
            )
            raise TrackerAuthenticationError(
                f"ServiceNow at {where} refused the {how} for {who!r} (401). Check them and try again.",
                status=401,
                detail=exc.detail,
            ) from None
        except errors.NonJSONAnswer as exc:
            if exc.hibernating:
                raise TrackerUnreachable(
                    f"The instance {where} is hibernating. Wake it up from the ServiceNow developer portal, then test again."
                ) from None
            raise NotATrackerInstance(
                f"{where} answered, but not like a ServiceNow instance: it sent a web page instead of the "
                "REST API's JSON. Check the instance URL (https://<name>.service-now.com).",
                status=exc.status,
            ) from None
        except NotATrackerInstance as exc:
            raise NotATrackerInstance(
                f"{where} answered, but not like a ServiceNow instance ({exc.message}). Check the instance URL.",
                status=exc.status,
            ) from None
        except TrackerUnreachable as exc:
            raise TrackerUnreachable(
                f"Could not reach {where}: {exc.message.rsplit(': ', 1)[-1]}. "
                "Check the instance URL and that this server can reach it."
            ) from None
        except TransientTrackerError as exc:
            raise TransientTrackerError(
                f"{where} could not answer now ({exc.message}). Try again in a minute.",
                status=exc.status,
                detail=exc.detail,
                retry_after=exc.retry_after,
            ) from None
        finally:
            self.client.retry = saved_retry
        if problem is not None:
            problem.rights = tuple(lines)  # the lines travel with the error (ConnectionReport)
            raise problem
        read = {r.right: r.state for r in lines}
        if read[rights.READ_COMMENTS] == rights.GRANTED:
            message = (
                f"Connected to {where} as {who}: incidents, comments (sys_journal_field) and "
                "attachments (sys_attachment) can be read."
            )
        else:
            message = (
                f"Connected to {where} as {who}: incidents and attachments (sys_attachment) can be "
                "read; reading comments (sys_journal_field) could not be verified."
            )
        return ConnectionReport(f"{message} {rights.summary(lines)}", lines)

    def _read_rights(self) -> tuple[list[RightCheck], TrackerPermissionError | None]:
        """The three read lines, each verified by reading, and the first read that failed.

        A TrackerPermissionError becomes a ``missing`` line (and the returned problem);
        every other TrackerError propagates (the instance as a whole did not answer).
        """
        lines: list[RightCheck] = []
        problems: list[TrackerPermissionError] = []

        def run(right: str, check) -> bool:
            try:
                state, how = check()
            except TrackerPermissionError as exc:
                lines.append(RightCheck(right, rights.MISSING, f"missing: {exc.message}"))
                problems.append(exc)
                return False
            lines.append(RightCheck(right, state, how))
            return True

        incidents_ok = run(rights.READ_INCIDENTS, self._check_incidents)
        run(rights.READ_COMMENTS, lambda: self._check_comments(compare=incidents_ok))
        run(
            rights.READ_ATTACHMENTS,
            lambda: self._check_readable(
                "sys_attachment", "attachments (sys_attachment)", "/api/now/attachment"
            ),
        )
        return lines, (problems[0] if problems else None)

    def _check_incidents(self) -> tuple[str, str]:
        """Read the first incidents (one request): ``(state, how)``; raises when some are hidden."""
        where, who = self.instance_url, self.username
        try:
            incidents = self.client.table_page(
                "incident", query="ORDERBYsys_id", fields=("sys_id",), limit=SAMPLE
            )
        except TrackerNotFound as exc:
            # ServiceNow's own 404 ("No Record found", with a detail) is an empty table the v1 way.
            if not exc.detail:
                raise NotATrackerInstance(
                    f"{where} answered 404 for the incident table: is this the address of a ServiceNow instance?"
                ) from None
            return rights.GRANTED, "granted (the incident table answered; it has no incidents yet)."
        except TrackerPermissionError as exc:
            raise TrackerPermissionError(
                f"The user {who!r} cannot read the incident table on {where} (403 {exc.detail or exc.message}). "
                "Give it read access to incident, for example the itil role.",
                status=403,
                detail=exc.detail,
                connection_level=True,
            ) from None
        self._check_incidents_visible(incidents)
        if not incidents.rows:
            return rights.GRANTED, "granted (the incident table answered; it has no incidents yet)."
        return rights.GRANTED, f"granted (verified by reading {len(incidents.rows)} incident(s))."

    def _check_comments(self, *, compare: bool) -> tuple[str, str]:
        """Read sys_journal_field, then (``compare``) match an incident's shown comments."""
        found = self._rows_readable(
            "sys_journal_field", "comments and work notes (sys_journal_field)", None
        )
        number = self._check_journal_really_readable() if compare else None
        if number:
            return rights.GRANTED, (
                f"granted (verified by reading sys_journal_field: it returns the comments {number} shows)."
            )
        if found:
            return rights.GRANTED, "granted (verified by reading sys_journal_field)."
        return rights.UNVERIFIED, (
            "could not be verified: sys_journal_field returned no entries and no incident shows "
            "a comment to compare with, so a read ACL that hides them cannot be told apart from "
            "an instance without comments. Test again once an incident has a comment."
        )

    def _check_incidents_visible(self, page) -> None:
        """Raise TrackerPermissionError when the first page counts incidents it does not return.

        The list's limit is applied before read ACLs, so a page shorter than both the limit
        and ``X-Total-Count`` means rows exist that this user may not read (ServiceNow docs,
        Table API ``sysparm_limit``).
        """
        if page.total is None:
            return
        expected = min(SAMPLE, page.total)
        hidden = expected - len(page.rows)
        if hidden > 0:
            raise TrackerPermissionError(
                f"The user {self.username!r} may not read some incidents on {self.instance_url}: of the "
                f"first {expected} the instance counts, {hidden} are hidden by ACLs, so they cannot be "
                "found, exalated or mirrored onto. Give that user read access to every incident it "
                "should sync (the incident table's read ACL, for example through the itil role)."
            )

    def _check_journal_really_readable(self) -> str | None:
        """Raise when incidents show comments but ``sys_journal_field`` returns none of them.

        Returns the number of the incident compared, or None when none shows comments.

        Without its read ACL the journal table answers 200, no rows and ``X-Total-Count:
        0`` (not 403), exactly like an instance without comments; the incident's own
        ``comments`` display value still lists the entries. So: the newest incidents with
        their comments' display value (one request), then the journal of one that shows
        some (one request). Nothing to compare (no comments anywhere): nothing is claimed.
        """
        page = self.client.table_page(
            "incident",
            query="ORDERBYDESCsys_updated_on^ORDERBYsys_id",
            fields=("sys_id", "number", "comments"),
            limit=20,
            display_value="all",
        )
        for row in page.rows:
            shown = journal_display_entries(display_of(row.get("comments")))
            if not shown:
                continue
            sys_id, number = value_of(row.get("sys_id")), value_of(row.get("number"))
            entries = self.client.table_page(
                "sys_journal_field",
                query=q.join(
                    q.term("element_id", "=", sys_id),
                    q.term("element", "=", "comments"),
                    "ORDERBYsys_id",
                ),
                fields=("sys_id",),
                limit=1,
            )
            if not entries.rows:
                raise TrackerPermissionError(
                    f"The user {self.username!r} cannot read comments on {self.instance_url}: "
                    f"{number or sys_id} shows {len(shown)} comment(s), but sys_journal_field returns "
                    "none of them (200 with no rows: its read ACL hides them). Grant that user read "
                    "access to the sys_journal_field table.",
                    connection_level=True,
                )
            return number or sys_id
        return None

    def _check_readable(self, table: str, label: str, path: str | None) -> tuple[str, str]:
        """Read one row of ``table`` (via ``path``): ``(state, how)``; raises on 403 or hidden rows."""
        if self._rows_readable(table, label, path):
            return rights.GRANTED, f"granted (verified by reading {table})."
        return rights.GRANTED, f"granted ({table} answered; it has no rows yet)."

    def _rows_readable(self, table: str, label: str, path: str | None) -> int:
        """How many rows (0 or 1) one read of ``table`` returned; raises TrackerPermissionError
        on a 403 or when the instance counts rows it does not return (an ACL hides them)."""
        query = (
            q.join(q.term("name", "=", "incident"), "ORDERBYsys_id")
            if table == "sys_journal_field"
            else "ORDERBYsys_id"
        )
        try:
            page = self.client.table_page(
                table, query=query, fields=("sys_id",), limit=1, path=path
            )
        except TrackerPermissionError as exc:
            raise TrackerPermissionError(
                f"The user {self.username!r} cannot read {label} on {self.instance_url} "
                f"(403 {exc.detail or exc.message}). Grant it read access to {table}.",
                status=403,
                detail=exc.detail,
                connection_level=True,
            ) from None
        except TrackerNotFound:
            return 0  # an empty table answered the v1 way
        if not page.rows and page.total:
            raise TrackerPermissionError(
                f"The user {self.username!r} cannot read {label} on {self.instance_url}: the instance counts "
                f"{page.total} rows but returns none, so an ACL hides them. Grant it read access to {table}.",
                connection_level=True,
            )
        return len(page.rows)
