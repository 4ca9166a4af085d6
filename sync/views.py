"""Console pages of the sync engine: exalate, the live status page, Entity sync status, twins.

Thin views (house style): check method and login, fetch through a selector, validate with
a form, call one service, then redirect or render. Status parts are re-fetched by htmx
every second or two (``hx-trigger="every …"``), so the pages update live without a
single-page app. Errors, Sync queue, Clean-up tools, Dashboard: ``sync.views_ops``.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from connections.models import Connection
from connections.selectors import tracker_adapter_class_get

from . import selectors, services
from .forms import ConnectForm, ExalateForm, ExalateNumberForm, TwinLookupForm, UnexalateForm
from .services.remote_errors import twin_problem
from .services.unexalate import twin_pending_changes


def _twin_context(twin) -> dict:
    ending = selectors.twin_ending(twin)
    return {
        "twin": twin,
        "twin_errors": selectors.twin_open_errors(twin),
        "pending_retry": selectors.twin_pending_retry(twin),
        "problem": twin_problem(twin),
        "ending": ending,
        "pending": twin_pending_changes(twin.pk) if ending and not ending.ended_at else None,
    }


def _safe_next(request) -> str:
    nxt = request.POST.get("next", "")
    return nxt if nxt.startswith("/") and not nxt.startswith("//") else ""


def _status_url(key: str = "") -> str:
    url = reverse("sync:entity-status")
    return f"{url}?{urlencode({'q': key})}" if key else url


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


@login_required
@require_POST
def entity_connect(request):
    """``POST /entity-sync-status/connect/``: link a local incident to an existing remote one."""
    form = ConnectForm(request.POST)
    if form.is_valid():
        try:
            twin = services.entity_connect(
                connection=form.cleaned_data["connection"],
                local_key=form.cleaned_data["local_key"],
                remote_key=form.cleaned_data["remote_key"],
                requested_by=request.user.get_username(),
            )
        except services.SyncRefused as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request,
                f"{twin.local_key} is connected to {twin.remote_key}; the first sync updates "
                f"{twin.remote_key} with this side's values.",
            )
            return redirect("sync:twin", twin_id=twin.pk)
    return render(
        request,
        "sync/entity_status.html",
        _entity_status_context(request, connect_form=form),
        status=400,
    )


def _entity_status_context(request, *, exalate_form=None, connect_form=None) -> dict:
    tracker = tracker_adapter_class_get()  # once per page: it reads the node's settings
    lookup = TwinLookupForm(request.GET or None, tracker=tracker)
    query = lookup.cleaned_data.get("q", "") if lookup.is_valid() else ""
    before = request.GET.get("before", "")
    before_id = int(before) if before.isdigit() and len(before) < 19 else None
    twins, next_before = selectors.twin_page(query=query, before=before_id)
    return {
        "exalate_form": exalate_form or ExalateForm(initial={"number": query}, tracker=tracker),
        "connect_form": connect_form or ConnectForm(initial={"local_key": query}, tracker=tracker),
        "lookup_form": lookup,
        "query": query,
        "lookup": selectors.entity_lookup(query),
        "twins": twins,
        "next_before": next_before,
        "paged": before_id is not None,
        "bad_page": bool(before) and before_id is None,
        "webhook": selectors.webhook_info(request, tracker=tracker),
        "search_example": _search_example(tracker.key_example or "INC0010005"),
    }


def _search_example(key: str) -> dict:
    """What the search help shows for ``key`` (INC0010005): the whole key, a start of it
    (INC001) and an end (10005: the number without its prefix and leading zeros)."""
    end = re.sub(r"^\D*0*", "", key) or key[-3:]
    return {"key": key, "start": key[: max(1, len(key) - len(end) + 1)], "end": end}


@login_required
@require_GET
def entity_status(request):
    """Entity sync status: look an incident up by number or sys_id (one row per connection,
    with Exalate and Connect where it is not twinned), and the recent twins, paged."""
    context = _entity_status_context(request)
    if request.htmx and request.GET.get("part") == "twins":
        return render(request, "sync/_twin_rows.html", context)
    return render(request, "sync/entity_status.html", context)


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
    """One twin: live status, links, what is wrong in words, Unexalate / Exalate again,
    the last sent and received replicas, latest events."""
    twin = selectors.twin_get(twin_id)
    return render(
        request,
        "sync/twin_detail.html",
        {
            **_twin_context(twin),
            "events": selectors.twin_events(twin),
            "unexalate_form": UnexalateForm(),
            "local_json": selectors.replica_pretty(twin.last_sent_replica),
            "remote_json": selectors.replica_pretty(twin.last_received_replica),
        },
    )


@login_required
@require_GET
def twin_status_part(request, twin_id):
    """The part of the twin page that htmx re-fetches."""
    twin = selectors.twin_get(twin_id)
    return render(request, "sync/_twin_status.html", _twin_context(twin))


@login_required
@require_GET
def twin_replica(request, twin_id, side):
    """Show local replica (the last sent) or remote replica (the last received), escaped."""
    if side not in ("local", "remote"):
        raise Http404("Choose the local or the remote replica.")
    twin = selectors.twin_get(twin_id)
    replica = twin.last_sent_replica if side == "local" else twin.last_received_replica
    return render(
        request,
        "sync/twin_replica.html",
        {"twin": twin, "side": side, "replica_json": selectors.replica_pretty(replica)},
    )


@login_required
@require_POST
def twin_retry(request, twin_id):
    """Retry a twin in Error: its failed events go back to the queue."""
    twin = selectors.twin_get(twin_id)
    services.twin_retry(twin=twin, requested_by=request.user.get_username())
    messages.success(
        request, f"{twin.local_key or twin.remote_key or 'The twin'} is queued for another attempt."
    )
    return redirect(_safe_next(request) or reverse("sync:twin", args=[twin.pk]))


@login_required
@require_POST
def twin_unexalate(request, twin_id):
    """Unexalate: stop syncing the twin on both nodes (after its queue drains, or at once)."""
    twin = selectors.twin_get(twin_id)
    form = UnexalateForm(request.POST)
    form.is_valid()
    at_once = form.cleaned_data.get("at_once", False)
    label = twin.local_key or twin.remote_key or "The twin"
    try:
        twin = services.twin_unexalate(
            twin=twin, at_once=at_once, requested_by=request.user.get_username()
        )
    except services.SyncRefused as exc:
        messages.error(request, str(exc))
        return redirect("sync:twin", twin_id=twin.pk)
    ending = selectors.twin_ending(twin)
    if ending and ending.ended_at:
        messages.success(
            request,
            f"{label} is unexalated: it no longer syncs on {twin.connection.name}, and the "
            "other node ends its twin too. It can be exalated again as a new mirror.",
        )
        return redirect(_status_url(ending.local_key or label))
    out, inc = twin_pending_changes(twin.pk)
    messages.success(
        request,
        f"{label} will be unexalated once its queue drains ({out} outgoing and {inc} incoming "
        "change(s) to go).",
    )
    return redirect("sync:twin", twin_id=twin.pk)


@login_required
@require_POST
def twin_exalate_again(request, twin_id):
    """A twin whose mirror is gone: unexalate it at once and exalate the incident again,
    which makes a new mirror (a new twin) on the other side."""
    twin = selectors.twin_get(twin_id)
    ending = selectors.twin_ending(twin)
    key = (ending.local_key if ending and ending.ended_at else twin.local_key) or ""
    if not key:
        messages.error(
            request,
            "This twin has no incident on this node to exalate: exalate it from the other node.",
        )
        return redirect("sync:twin", twin_id=twin.pk)
    try:
        if not (ending and ending.ended_at):
            services.twin_unexalate(
                twin=twin, at_once=True, requested_by=request.user.get_username()
            )
        exalate = services.entity_exalate(
            connection=twin.connection, key=key, requested_by=request.user.get_username()
        )
    except services.SyncRefused as exc:
        messages.error(request, str(exc))
        return redirect(_status_url(key))
    messages.success(
        request, f"{key} is unexalated and exalated again: a new mirror is on its way."
    )
    return redirect("sync:exalate-status", request_id=exalate.pk)
