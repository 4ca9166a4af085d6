"""Console pages of the sync engine: exalate, the live status page, Entity sync status, Errors, Sync queue.

Thin views (house style): check method and login, fetch through a selector, validate with
a form, call one service, then redirect or render. Status parts are re-fetched by htmx
every second or two (``hx-trigger="every …"``), so the pages update live without a
single-page app.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from connections.models import Connection

from . import selectors, services
from .forms import ExalateForm, ExalateNumberForm, TwinLookupForm
from .models import SyncError, SyncEvent


def _twin_context(twin) -> dict:
    return {
        "twin": twin,
        "twin_errors": selectors.twin_open_errors(twin),
        "pending_retry": selectors.twin_pending_retry(twin),
    }


@login_required
@require_POST
def connection_exalate(request, connection_id):
    """``POST /connections/<uuid>/exalate/`` with ``number``: exalate and go to the live status page."""
    connection = get_object_or_404(Connection, pk=connection_id)
    form = ExalateNumberForm(request.POST)
    if form.is_valid():
        try:
            exalate = services.entity_exalate(
                connection=connection,
                key=form.cleaned_data["number"],
                requested_by=request.user.get_username(),
            )
        except services.SyncRefused as exc:
            form.add_error("number", str(exc))
        else:
            return redirect("sync:exalate-status", request_id=exalate.pk)
    bound = ExalateForm({"connection": connection.pk, "number": request.POST.get("number", "")})
    bound.is_valid()
    for error in form.errors.get("number", []):
        if error not in bound.errors.get("number", []):
            bound.add_error("number", error)
    return render(
        request,
        "sync/entity_status.html",
        _entity_status_context(request, exalate_form=bound),
        status=400,
    )


@login_required
@require_POST
def entity_exalate(request):
    """``POST /entity-sync-status/exalate/``: the Entity sync status form (connection + number)."""
    form = ExalateForm(request.POST)
    if form.is_valid():
        try:
            exalate = services.entity_exalate(
                connection=form.cleaned_data["connection"],
                key=form.cleaned_data["number"],
                requested_by=request.user.get_username(),
            )
        except services.SyncRefused as exc:
            form.add_error("number", str(exc))
        else:
            return redirect("sync:exalate-status", request_id=exalate.pk)
    return render(
        request,
        "sync/entity_status.html",
        _entity_status_context(request, exalate_form=form),
        status=400,
    )


def _entity_status_context(request, *, exalate_form=None) -> dict:
    lookup = TwinLookupForm(request.GET or None)
    query = lookup.cleaned_data.get("q", "") if lookup.is_valid() else ""
    return {
        "exalate_form": exalate_form or ExalateForm(),
        "lookup_form": lookup,
        "query": query,
        "twins": selectors.twin_search(query=query),
        "webhook": selectors.webhook_info(request),
    }


@login_required
@require_GET
def entity_status(request):
    """Entity sync status: exalate an incident, look twins up by number, see their status."""
    return render(request, "sync/entity_status.html", _entity_status_context(request))


@login_required
@require_GET
def exalate_status(request, request_id):
    """The live status page of one exalate request, then of its twin (links to both incidents)."""
    return render(request, "sync/exalate_status.html", _exalate_context(request_id))


@login_required
@require_GET
def exalate_status_part(request, request_id):
    """The part of the status page that htmx re-fetches."""
    return render(request, "sync/_exalate_status.html", _exalate_context(request_id))


def _exalate_context(request_id) -> dict:
    exalate = selectors.exalate_request_get(request_id)
    return {"exalate": exalate, **(_twin_context(exalate.twin) if exalate.twin else {})}


@login_required
@require_GET
def twin_detail(request, twin_id):
    """One twin: live status, links, open errors, last sent and received replicas, latest events."""
    twin = selectors.twin_get(twin_id)
    return render(
        request,
        "sync/twin_detail.html",
        {**_twin_context(twin), "events": selectors.twin_events(twin)},
    )


@login_required
@require_GET
def twin_status_part(request, twin_id):
    """The part of the twin page that htmx re-fetches."""
    twin = selectors.twin_get(twin_id)
    return render(request, "sync/_twin_status.html", _twin_context(twin))


@login_required
@require_POST
def twin_retry(request, twin_id):
    """Retry a twin in Error: its failed events go back to the queue."""
    twin = selectors.twin_get(twin_id)
    services.twin_retry(twin=twin)
    messages.success(
        request, f"{twin.local_key or twin.remote_key or 'The twin'} is queued for another attempt."
    )
    return redirect(_safe_next(request) or reverse("sync:twin", args=[twin.pk]))


def _safe_next(request) -> str:
    nxt = request.POST.get("next", "")
    return nxt if nxt.startswith("/") and not nxt.startswith("//") else ""


@login_required
@require_GET
def errors(request):
    """Errors: connection-level and entity-level errors with Retry and Resolve; long retries as warnings."""
    return render(
        request,
        "sync/errors.html",
        {
            "connection_errors": selectors.errors_open(level=SyncError.Level.CONNECTION),
            "entity_errors": selectors.errors_open(level=SyncError.Level.ENTITY),
            "retrying": selectors.retrying_events(),
        },
    )


@login_required
@require_POST
def error_retry(request, error_id):
    """Retry on the Errors page: resolve the error and queue the failed work again."""
    error = get_object_or_404(SyncError.objects.select_related("connection", "twin"), pk=error_id)
    services.error_retry(error=error)
    messages.success(request, "Resolved; the failed work is queued again.")
    return redirect(_safe_next(request) or reverse("sync:errors"))


@login_required
@require_POST
def error_resolve(request, error_id):
    """Resolve on the Errors page: mark the error resolved without retrying."""
    error = get_object_or_404(SyncError, pk=error_id)
    services.error_resolve(error=error)
    messages.success(request, "Resolved without retrying.")
    return redirect("sync:errors")


@login_required
@require_GET
def queue(request):
    """Sync queue: outgoing and incoming events with status, attempts, next attempt and last error."""
    direction = request.GET.get("direction", SyncEvent.Direction.OUT)
    if direction not in SyncEvent.Direction.values:
        direction = SyncEvent.Direction.OUT
    status = request.GET.get("status", "")
    if status not in SyncEvent.Status.values:
        status = ""
    return render(
        request,
        "sync/queue.html",
        {
            "direction": direction,
            "status": status,
            "statuses": SyncEvent.Status.choices,
            "events": selectors.queue_events(direction=direction, status=status),
            "counts": selectors.queue_counts(),
        },
    )
