"""The connection page's "Project for the incoming sync": show it and change it.

Only for a node whose tracker has projects (``TrackerAdapter.has_projects``); the choice
is made first at Accept (``views.invitation_accept_wizard``) and checked again here.
"""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from .models import Connection
from .services import (
    ConnectionSetupError,
    connection_project_set,
    incoming_projects_list,
    tracker_has_projects,
)
from .views import _connection_or_404, admin_required


def project_context(connection: Connection) -> dict:
    """Template context of the connection page's project card: ``has_projects``, the
    ``projects`` to choose from and ``projects_error`` when they could not be listed."""
    if not tracker_has_projects():
        return {"has_projects": False}
    try:
        projects, problem = incoming_projects_list(), ""
    except ConnectionSetupError as exc:
        projects, problem = [], exc.message
    return {"has_projects": True, "projects": projects, "projects_error": problem}


@admin_required
@require_POST
def connection_project_view(request, connection_id):
    """``POST /connections/<id>/project/`` with ``project`` (a key): new mirrors go there."""
    connection = _connection_or_404(connection_id)
    try:
        connection_project_set(
            connection=connection,
            project=request.POST.get("project", "")[:255],
            user=request.user,
        )
    except ConnectionSetupError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"New mirrors of {connection.name} are created in {connection.incoming_project_label}.",
        )
    return redirect("connections:detail", connection_id=connection.id)
