"""Test connection and the project step for a Jira site.

A mixin of :class:`jira_adapter.adapter.JiraAdapter` (it uses ``self.client``,
``self.base`` and ``self.username``). Every check is one try without retries (an admin
is waiting), and every failure is said in an admin's words.
"""

from __future__ import annotations

from trackers.errors import (
    NotATrackerInstance,
    TrackerAuthenticationError,
    TrackerBadRequest,
    TrackerNotFound,
    TrackerPermissionError,
    TrackerUnreachable,
    TransientTrackerError,
)

from . import mapping
from .client import CLOUD, NO_RETRY


class ConnectionCheck:
    """``test_connection``, ``test_project`` and ``list_projects``."""

    def test_connection(self) -> str:
        """Check that the URL is a Jira site, the token is accepted, and some project takes issues.

        Calls ``/rest/api/2/serverInfo``, ``/myself``, the project list and
        ``/attachment/meta`` once each. Raises TrackerUnreachable, NotATrackerInstance
        ("not a Jira site"), TrackerAuthenticationError (wrong e-mail, token or PAT),
        TrackerPermissionError (no project the account can create issues in),
        TransientTrackerError (429/5xx: try again).
        """
        where = self.base
        saved, self.client.retry = self.client.retry, NO_RETRY
        try:
            try:
                info = self.client.server_info()
            except TrackerNotFound as exc:
                if not exc.detail:
                    raise NotATrackerInstance(
                        f"{where} is not a Jira site: it has no /rest/api/2/serverInfo. Check the URL "
                        "(https://<site>.atlassian.net for Jira Cloud).",
                        status=404,
                    ) from None
                info = {}  # Jira's own 404 envelope (a proxy hiding serverInfo): /myself decides
            except (NotATrackerInstance, TrackerBadRequest) as exc:
                raise NotATrackerInstance(
                    f"{where} is not a Jira site: it did not answer Jira's /rest/api/2/serverInfo "
                    f"({exc.message}). Check the URL (https://<site>.atlassian.net for Jira Cloud).",
                    status=exc.status,
                ) from None
            except TrackerAuthenticationError:
                info = {}  # serverInfo closed to anonymous users: the next call tells more
            flavour = self.client.flavour
            try:
                me = self.client.get(f"{self.client.api}/myself")
                if not isinstance(me, dict) or not mapping.author_id(me):
                    raise NotATrackerInstance(
                        f"{where} answered /myself without a Jira user: is this the address of a Jira site?"
                    )
            except TrackerAuthenticationError as exc:
                if flavour == CLOUD:
                    how = f"the e-mail {self.username!r} and its API token"
                    hint = "Check both (API tokens expire after at most a year)"
                else:
                    how, hint = (
                        "the personal access token",
                        "Check it (tokens can expire or be revoked)",
                    )
                raise TrackerAuthenticationError(
                    f"Jira at {where} refused {how} (401). {hint} and try again.",
                    status=401,
                    detail=exc.detail,
                ) from None
            projects = self.list_projects()
            if not projects:
                raise TrackerPermissionError(
                    f"The account {me.get('displayName') or self.username!r} can create issues in no "
                    f"project on {where}. Give it the Browse projects and Create issues permissions "
                    "in the project that should receive mirrors."
                )
            try:
                meta = self.client.get(f"{self.client.api}/attachment/meta")
            except (TrackerPermissionError, TrackerNotFound):
                meta = {}
        except TrackerUnreachable as exc:
            raise TrackerUnreachable(
                f"Could not reach {where}: {exc.message.rsplit(': ', 1)[-1]}. Check the URL and "
                "that this server can reach it."
            ) from None
        except TransientTrackerError as exc:
            raise TransientTrackerError(
                f"{where} could not answer now ({exc.message}). Try again in a minute.",
                status=exc.status,
                detail=exc.detail,
                retry_after=exc.retry_after,
            ) from None
        finally:
            self.client.retry = saved
        kind = "Jira Cloud" if flavour == CLOUD else "Jira Data Center"
        version = f" {info['version']}" if info.get("version") else ""
        keys = ", ".join(k for k, _ in projects[:5]) + ("…" if len(projects) > 5 else "")
        if meta.get("enabled") is False:
            files = "attachments are turned off on this site"
        elif meta.get("uploadLimit"):
            files = f"attachments up to {human_bytes(int(meta['uploadLimit']))}"
        else:
            files = "attachments allowed"
        return (
            f"Connected to {where} ({kind}{version}) as {me.get('displayName') or self.username}: "
            f"{len(projects)} project(s) to create issues in ({keys}); {files}."
        )

    def test_project(self, project: str) -> str:
        """Check that the account can create issues in ``project`` (a key); returns the types it can use.

        Raises TrackerPermissionError naming the project when it is missing, invisible or
        offers no issue type to create (Jira lists no types without *Create issues*).
        """
        key = (project or "").strip().upper()
        try:
            types = self.issue_types(key, fresh=True)
        except (TrackerNotFound, TrackerPermissionError, TrackerBadRequest):
            types = []
        usable = [t for t in types if not t.get("subtask")]
        if not usable:
            raise TrackerPermissionError(
                f"The account {self.username or 'in use'} cannot create issues in project {key} on "
                f"{self.base}: the project does not exist, is not visible to it, or lacks the "
                "Create issues permission for it."
            )
        return f"Issues can be created in {key} as: " + ", ".join(t["name"] for t in usable) + "."

    def list_projects(self) -> list[tuple[str, str]]:
        """(key, name) of the projects the account can create issues in, ordered by name.

        Cloud: ``/rest/api/3/project/search?action=create`` (paged). Data Center has no
        such filter: every project the account can browse (``/rest/api/2/project``); the
        Accept step's :meth:`test_project` then checks the chosen one.
        """
        if self.client.flavour == CLOUD:
            rows = self.client.paged(
                "/rest/api/3/project/search", "values", action="create", orderBy="name"
            )
        else:
            rows = self.client.paged("/rest/api/2/project", "values")
        projects = {
            str(p.get("key")): str(p.get("name") or p.get("key")) for p in rows if p.get("key")
        }
        return sorted(projects.items(), key=lambda kv: (kv[1].lower(), kv[0]))


def human_bytes(size: int) -> str:
    """``1 GB``, ``10 MB``, ``512 KB``, ``900 bytes`` (powers of 1024)."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            value = size / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} bytes"
