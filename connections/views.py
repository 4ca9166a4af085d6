"""Connections pages: the list, the Initiate and Accept wizards, and per-connection actions.

(General settings live in settings_views.py.) The wizards follow
https://docs.exalate.com/docs/set-up-a-connection-in-basic-mode-7062 step by step and
with its labels. Each step is a POST that returns the next step: with htmx only the
dialog is swapped; without JavaScript the whole page is rendered, so both work.
"""

from __future__ import annotations

import time
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from trackers.errors import TrackerError
from trackers.registry import adapter_class

from .forms import InitiateForm, InvitationCodeForm, accepted_name_validate
from .models import Connection
from .selectors import (
    connection_get,
    connection_rows,
    connections_to_url_get,
    node_identity_get,
    tracker_adapter_class_get,
    twin_count_get,
)
from .services import (
    ConnectionSetupError,
    connection_activate,
    connection_deactivate,
    connection_delete,
    connection_initiate,
    destination_check,
    incoming_projects_list,
    invitation_accept,
    invitation_check,
    invitation_revoke,
    short_name,
    tracker_has_projects,
)
from .settings_views import general_settings  # noqa: F401  (re-exported for urls.py)

#: Session key holding the code of a local connection on its way to the Accept dialog.
SESSION_CODE = "connections_invitation_code"
#: Seconds a code from an invitation link waits (in a signed cookie) for the admin to log in.
STASH_SECONDS = 15 * 60
#: Only the Accept page reads the cookie holding a code that arrived in a link.
STASH_COOKIE_PATH = "/connections/accept/"
MAX_CODE_LENGTH = 8000


def admin_required(view):
    """Login (redirect to the login page) and staff status (403) for a console view."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("Only console admins manage connections.")
        return view(request, *args, **kwargs)

    return wrapper


def _go(request, url: str):
    """Redirect the browser: with htmx the whole page, not the dialog, goes to ``url``."""
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return HttpResponseRedirect(url)


def _connection_or_404(connection_id) -> Connection:
    try:
        return connection_get(connection_id)
    except Connection.DoesNotExist:
        raise Http404("No connection with this id on this node.") from None


@admin_required
@require_http_methods(["GET"])
def connection_detail(request, connection_id):
    """One connection: its remote node, status, last sync and error, and its read-only Basic rules
    (Basic mode's sync rules cannot be edited, as in Exalate)."""
    from sync.services.operations import connection_description

    from .project_views import project_context  # it imports this module

    connection = _connection_or_404(connection_id)
    return render(
        request,
        "connections/detail.html",
        {
            "connection": connection,
            "twins": twin_count_get(connection=connection),
            "description": connection_description(connection),  # issue 12
            **project_context(connection),
        },
    )


@admin_required
def connection_list(request):
    """The Connections tab: every connection with its remote node, type, mode, status, last sync."""
    return render(
        request,
        "connections/list.html",
        {"connections": connection_rows(), "node": node_identity_get()},
    )


# --- Initiate connection -------------------------------------------------------------------

_PREVIOUS = {"mode": "destination", "name": "mode"}


def _initiate_render(
    request, step: str, data: dict, *, error: ConnectionSetupError | None = None, **extra
):
    context = {
        "step": step,
        "data": data,
        "error": error,
        "modal": bool(request.htmx) and request.method == "GET",
        "node": node_identity_get(),
        **extra,
    }
    if request.htmx:
        return render(request, "connections/_initiate_dialog.html", context)
    return render(request, "connections/initiate.html", context)


@admin_required
@require_http_methods(["GET", "POST"])
def connection_initiate_wizard(request):
    """The Initiate connection dialog.

    Steps: ``destination`` (Destination Instance URL / I don't have a URL, checked
    against the node-information endpoint) -> ``mode`` (Choose the configuration type)
    -> ``name`` (connection name and, for a public connection, "Do you have admin
    access to the destination instance?") -> Initiate: "Yes" sends the browser to the
    destination's accept page with the invitation; "No" (and private) shows the
    invitation code; a local connection continues on this node's accept page.
    """
    if request.method == "GET":
        return _initiate_render(request, "destination", {"destination_url": "", "no_url": False})
    form = InitiateForm(request.POST)
    form.is_valid()  # every field is optional; each step checks its own below
    data = {k: v for k, v in form.cleaned_data.items()}
    step = request.POST.get("step", "destination")
    if step not in ("destination", "mode", "name"):
        step = "destination"
    if "back" in request.POST:
        return _initiate_render(request, _PREVIOUS.get(step, "destination"), data)

    if step == "destination":
        try:
            check = destination_check(
                destination_url=data["destination_url"], no_url=data["no_url"]
            )
        except ConnectionSetupError as exc:
            return _initiate_render(request, "destination", data, error=exc)
        data.update(
            destination_url=check.url,
            type=check.type,
            remote_name=check.node.name if check.node else "",
            remote_tracker=check.node.tracker if check.node else "",
            mode=data["mode"] or "basic",
        )
        return _initiate_render(request, "mode", data, modes=check.modes)

    if step == "mode":
        if data["mode"] != "basic":
            error = ConnectionSetupError(
                "Choose Basic: Visual and Script are not available yet.", field="mode"
            )
            return _initiate_render(request, "mode", data, error=error)
        if not data["name"]:
            local = short_name(node_identity_get().name, "Local")
            remote = short_name(data["remote_name"], "Remote")
            data["name"] = f"{local}_to_{remote}"
        return _initiate_render(
            request, "name", data, existing=connections_to_url_get(data["destination_url"])
        )

    # step == "name": Initiate.
    if data["type"] == Connection.Type.PUBLIC and not data["admin_access"]:
        error = ConnectionSetupError(
            "Choose whether you have admin access to the destination instance.",
            field="admin_access",
        )
        return _initiate_render(request, "name", data, error=error)
    try:
        connection, code = connection_initiate(
            destination_url=data["destination_url"],
            no_url=data["no_url"],
            mode=data["mode"] or "basic",
            name=data["name"],
            user=request.user,
        )
    except ConnectionSetupError as exc:
        back_to = "destination" if exc.field in ("destination_url", "no_url") else "name"
        return _initiate_render(request, back_to, data, error=exc)
    if connection.type == Connection.Type.LOCAL:
        request.session[SESSION_CODE] = {"code": code, "at": time.time()}
        return _go(request, reverse("connections:accept"))
    if connection.type == Connection.Type.PUBLIC and data["admin_access"] == "yes":
        return _go(
            request,
            f"{connection.remote_url}/api/node/v1/accept-invitation?{urlencode({'code': code})}",
        )
    if request.htmx:
        return _initiate_render(request, "code", data, code=code, connection=connection)
    return redirect("connections:invitation", connection_id=connection.id)


# --- Accept invitation ---------------------------------------------------------------------


def _accept_render(request, step: str, code: str, *, error=None, payload=None, project=""):
    context = {
        "step": step,
        "form": InvitationCodeForm(initial={"code": code}),
        "code": code,
        "error": error,
        "payload": payload,
        "modal": bool(request.htmx) and request.method == "GET",
        "node": node_identity_get(),
        "tracker": tracker_adapter_class_get(),
        "remote_tracker_label": _tracker_label(payload.tracker) if payload else "",
        "project": project,
    }
    if step == "confirm" and tracker_has_projects():
        try:
            context["projects"] = incoming_projects_list()
        except ConnectionSetupError as exc:
            context["projects"], context["error"] = [], error or exc
    if request.htmx:
        return render(request, "connections/_accept_dialog.html", context)
    return render(request, "connections/accept.html", context)


def _stash_cookie_name() -> str:
    # Two nodes on one host share cookies (ports do not separate them): one name per node.
    return f"{settings.SESSION_COOKIE_NAME}_invitation"


def _stash_code(request, response):
    """Keep the link's ``?code=`` in a signed, short-lived cookie on ``response`` and return it.

    A cookie, not the session: an anonymous visitor of an invitation link creates no
    session row (anyone can send such links). Codes are far below a cookie's 4 KB.
    """
    response.set_signed_cookie(
        _stash_cookie_name(),
        request.GET["code"][:MAX_CODE_LENGTH],
        salt=_stash_cookie_name(),
        max_age=STASH_SECONDS,
        path=STASH_COOKIE_PATH,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )
    return response


def _stashed_code(request) -> str:
    """The code waiting for this admin (a local connection's, or a link's), or ``""``."""
    stash = request.session.pop(SESSION_CODE, None)
    if isinstance(stash, dict) and time.time() - float(stash.get("at", 0)) < STASH_SECONDS:
        return str(stash.get("code", ""))
    return request.get_signed_cookie(
        _stash_cookie_name(), default="", salt=_stash_cookie_name(), max_age=STASH_SECONDS
    )


def _unstash(request, response):
    """Drop the link's code cookie (read once) from the browser."""
    if _stash_cookie_name() in request.COOKIES:
        response.delete_cookie(_stash_cookie_name(), path=STASH_COOKIE_PATH, samesite="Lax")
    return response


@require_GET
def invitation_link(request):
    """Where the initiating node sends the browser on "Yes, I have admin access".

    ``/api/node/v1/accept-invitation?code=...`` needs no login: it keeps the code in a
    signed cookie of this browser (for :data:`STASH_SECONDS`; no session row is created)
    and redirects to the Accept invitation page, which asks the admin to log in first when
    needed. So the code never travels on in a ``next=`` parameter and does not stay in the
    address bar.
    """
    response = redirect("connections:accept")
    if request.GET.get("code"):
        _stash_code(request, response)
    return response


@admin_required
@require_http_methods(["GET", "POST"])
def invitation_accept_wizard(request):
    """The Accept invitation dialog: paste the code -> Next -> Confirm.

    ``/connections/accept/?code=...`` is taken too (the code moves to the session and
    the browser is sent on to the page without it).
    """
    if request.method == "GET" and request.GET.get("code"):
        return _stash_code(request, redirect("connections:accept"))
    if request.method == "GET":
        code = _stashed_code(request)
        if not code:
            return _unstash(request, _accept_render(request, "code", ""))
        return _unstash(request, _accept_next(request, code))
    form = InvitationCodeForm(request.POST)
    if not form.is_valid() and "code" in form.errors:
        error = ConnectionSetupError(
            "That is not an invitation code: it is much longer than any code"
            f" ({len(request.POST.get('code', ''))} characters). Paste exactly what the other admin sent.",
            field="code",
        )
        return _accept_render(request, "code", "", error=error)
    code = form.cleaned_data.get("code", "")
    step = request.POST.get("step", "code")
    if "back" in request.POST or step not in ("code", "confirm"):
        return _accept_render(request, "code", code)
    if step == "code":
        return _accept_next(request, code)
    project = request.POST.get("project", "")[:255]
    try:
        payload = invitation_check(code=code)
        accepted_name_validate(payload)
    except ConnectionSetupError as exc:
        return _accept_render(request, "code", code, error=exc)
    try:
        connection = invitation_accept(code=code, user=request.user, project=project)
    except ConnectionSetupError as exc:
        if exc.field == "project":  # stay on "Select a project for the incoming sync"
            return _accept_render(
                request, "confirm", code, error=exc, payload=payload, project=project
            )
        return _accept_render(request, "code", code, error=exc)
    return _go(request, reverse("connections:established", args=[connection.id]))


def _tracker_label(tracker: str) -> str:
    """``ServiceNow`` for ``servicenow``: the registered adapter's display name ('' if unknown)."""
    try:
        return adapter_class(tracker).display_name or tracker
    except TrackerError:
        return tracker or ""


def _accept_next(request, code: str):
    try:
        payload = invitation_check(code=code)
        accepted_name_validate(payload)
    except ConnectionSetupError as exc:
        return _accept_render(request, "code", code, error=exc)
    return _accept_render(request, "confirm", code, payload=payload)


@admin_required
def connection_established(request, connection_id):
    """ "Connection established successfully": enter an incident number and click Exalate."""
    connection = _connection_or_404(connection_id)
    return render(
        request,
        "connections/established.html",
        {"connection": connection, "tracker": tracker_adapter_class_get()},
    )


# --- Per-connection actions ----------------------------------------------------------------


@admin_required
@require_POST
def connection_activate_view(request, connection_id):
    """Activate a deactivated connection; its queued changes then go out."""
    from sync.services import connection_activated  # issue 12: held changes go at once

    connection = _connection_or_404(connection_id)
    try:
        connection = connection_activate(connection=connection, user=request.user)
    except ConnectionSetupError as exc:
        messages.error(request, exc.message)
    else:
        held = connection_activated(connection=connection)
        messages.success(
            request,
            f"Connection {connection.name} is active."
            + (f" {held} held change(s) are on their way." if held else ""),
        )
    return redirect(_back(request))


def _back(request) -> str:
    """Where a per-connection action returns: ``next`` when it is a path here, else the list."""
    nxt = request.POST.get("next", "")
    if nxt.startswith("/connections/") and not nxt.startswith("//"):
        return nxt
    return reverse("connections:list")


@admin_required
@require_POST
def connection_deactivate_view(request, connection_id):
    """Deactivate a connection: nothing is sent, but changes stay queued."""
    connection = _connection_or_404(connection_id)
    try:
        connection_deactivate(connection=connection, user=request.user)
    except ConnectionSetupError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"Connection {connection.name} is deactivated. Changes stay queued and go out when you activate it again.",
        )
    return redirect(_back(request))


@admin_required
@require_http_methods(["GET", "POST"])
def connection_delete_view(request, connection_id):
    """GET: say what deleting does and ask; POST: delete."""
    connection = _connection_or_404(connection_id)
    if request.method == "POST":
        connection_delete(connection=connection, user=request.user)
        messages.success(request, f"Connection {connection.name} is deleted.")
        return redirect("connections:list")
    return render(request, "connections/delete_confirm.html", {"connection": connection})


@admin_required
def invitation_show(request, connection_id):
    """The invitation code of a pending connection, to copy again, with Revoke invitation."""
    connection = _connection_or_404(connection_id)
    invitation = getattr(connection, "invitation", None)
    return render(
        request,
        "connections/invitation.html",
        {
            "connection": connection,
            "invitation": invitation,
            "code": invitation.code if invitation else "",
        },
    )


@admin_required
@require_POST
def invitation_revoke_view(request, connection_id):
    """Revoke a pending invitation: its code stops working and the pending connection goes."""
    connection = _connection_or_404(connection_id)
    try:
        invitation_revoke(connection=connection, user=request.user)
    except ConnectionSetupError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"The invitation for {connection.name} is revoked: its code no longer works."
        )
    return redirect("connections:list")
