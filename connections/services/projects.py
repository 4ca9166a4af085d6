"""The project a connection creates its mirrors in, for a tracker with projects.

Exalate's Accept step "Select a project for the incoming sync" exists only when this
node's tracker has projects (``TrackerAdapter.has_projects``; not ServiceNow). The
chosen project is stored on this node's end of the connection
(``Connection.incoming_project_key`` / ``incoming_project_name``), checked with the
adapter's ``test_project`` first, and can be changed later on the connection page.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from trackers.errors import TrackerError

from ..models import Connection
from ..selectors import tracker_adapter_class_get, tracker_adapter_get
from .errors import ConnectionSetupError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IncomingProject:
    """A project mirrors can be created in: ``key`` (``TEST``) and ``name`` (``Test``)."""

    key: str
    name: str

    @property
    def label(self) -> str:
        """``Test (TEST)``, as the help page shows a project."""
        return f"{self.name} ({self.key})" if self.name and self.name != self.key else self.key


def tracker_has_projects() -> bool:
    """True when this node's tracker asks for a project at Accept (its adapter class says so)."""
    try:
        return bool(tracker_adapter_class_get().has_projects)
    except TrackerError:
        return False


def incoming_projects_list() -> list[IncomingProject]:
    """The projects of this node's tracker that can receive mirrors, as the adapter lists them.

    Raises ConnectionSetupError (field ``project``) when the tracker cannot be asked
    (not configured, unreachable, token refused): the message says what to fix.
    """
    try:
        rows = tracker_adapter_get().list_projects()
    except TrackerError as exc:
        raise ConnectionSetupError(
            f"The projects of this node's {_tracker_name()} could not be listed: {exc}",
            status=502,
            field="project",
        ) from None
    return [IncomingProject(key=str(k), name=str(n)) for k, n in rows]


def incoming_project_check(project: str) -> IncomingProject:
    """Check that mirrors can be created in ``project`` (a key) and return it with its name.

    Raises ConnectionSetupError (field ``project``) when no project is chosen, it is not one
    of the listed ones, or the adapter's ``test_project`` refuses it (e.g. no Create issues
    permission), so nothing is stored for a project that cannot take mirrors.
    """
    key = (project or "").strip()
    if not key:
        raise ConnectionSetupError(
            "Please select the project where you want to create entities, received from the other side.",
            field="project",
        )
    known = {p.key.upper(): p for p in incoming_projects_list()}
    chosen = known.get(key.upper())
    if chosen is None:
        raise ConnectionSetupError(
            f"Project {key} is not one of the projects this node can create "
            f"{tracker_adapter_class_get().entity_label}s in.",
            field="project",
        )
    try:
        tracker_adapter_get().test_project(chosen.key)
    except TrackerError as exc:
        raise ConnectionSetupError(str(exc), status=403, field="project") from None
    return chosen


def connection_project_set(*, connection: Connection, project: str, user=None) -> Connection:
    """Change the project ``connection`` creates its mirrors in (the connection page).

    Mirrors made before stay where they are; new ones go to the new project. Checked
    like at Accept (:func:`incoming_project_check`). Raises ConnectionSetupError.
    """
    chosen = incoming_project_check(project)
    Connection.objects.filter(pk=connection.pk).update(
        incoming_project_key=chosen.key, incoming_project_name=chosen.name[:255]
    )
    connection.incoming_project_key, connection.incoming_project_name = chosen.key, chosen.name
    logger.info(
        "Connection %s: incoming project set to %s by %s",
        connection.name,
        chosen.key,
        getattr(user, "username", user),
    )
    _audit(user, "settings-changed", connection.name, f"incoming project {chosen.label}")
    return connection


def _tracker_name() -> str:
    try:
        cls = tracker_adapter_class_get()
        return cls.display_name or cls.tracker
    except TrackerError:
        return "tracker"


def _audit(user, action: str, target: str, detail: str) -> None:
    try:
        from audit.services import audit_record
    except ImportError:  # the audit app is not installed in this tree
        return
    audit_record(actor=user or "system", action=action, target=target, detail=detail)
