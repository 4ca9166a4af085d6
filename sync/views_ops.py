"""Console pages for operating the sync: Errors, Sync queue, Clean-up tools, Dashboard,
and the connection page's rename and live check (issue 12).

Thin views: a selector reads, a form or parser checks the input (nonsense is said, never
half-applied), one service writes. The Sync queue's filters re-fetch only the table with
htmx (``hx-get`` on change), so they apply at once; without JavaScript the Filter button
does the same with a full page.
"""

from __future__ import annotations

import csv
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from connections.models import Connection

from . import dashboard, selectors, services
from .forms import CleanupForm, RenameForm
from .models import SyncError, Twin


def _connection_or_404(connection_id) -> Connection:
    connection = Connection.objects.filter(pk=connection_id).first()
    if connection is None:
        raise Http404("No connection with this id on this node.")
    return connection


# --- Errors ----------------------------------------------------------------------------


@login_required
@require_GET
def errors(request):
    """Errors: node, connection and entity errors (impact, message, failing event, first and
    last time, how often), Resolve / Resolve and retry on one or many; paused connections."""
    return render(
        request,
        "sync/errors.html",
        {
            "node_errors": selectors.error_rows(level=SyncError.Level.NODE),
            "connection_errors": selectors.error_rows(level=SyncError.Level.CONNECTION),
            "entity_errors": selectors.error_rows(level=SyncError.Level.ENTITY),
            "paused": selectors.paused_connections(),
            "retrying": selectors.retrying_events(),
        },
    )


def _safe_next(request) -> str:
    nxt = request.POST.get("next", "")
    return nxt if nxt.startswith("/") and not nxt.startswith("//") else ""


@login_required
@require_POST
def error_retry(request, error_id):
    """Resolve and retry on the Errors page: resolve the error and queue the failed work again."""
    error = get_object_or_404(SyncError.objects.select_related("connection", "twin"), pk=error_id)
    services.errors_resolve(
        error_ids=[error.pk], retry=True, requested_by=request.user.get_username()
    )
    messages.success(request, "Resolved; the failed work is queued again.")
    return redirect(_safe_next(request) or reverse("sync:errors"))


@login_required
@require_POST
def error_resolve(request, error_id):
    """Resolve on the Errors page: set the failed change aside without retrying."""
    error = get_object_or_404(SyncError, pk=error_id)
    services.errors_resolve(error_ids=[error.pk], requested_by=request.user.get_username())
    messages.success(request, "Resolved without retrying: the failed change is set aside.")
    return redirect(_safe_next(request) or reverse("sync:errors"))


@login_required
@require_POST
def errors_bulk(request):
    """Resolve, or Resolve and retry, the selected errors (``error`` ids, ``action``)."""
    action = request.POST.get("action", "")
    ids = [int(i) for i in request.POST.getlist("error") if i.isdigit() and len(i) < 19]
    if action not in ("resolve", "retry"):
        messages.error(request, "Choose Resolve or Resolve and retry.")
    elif not ids:
        messages.error(request, "Select at least one error first.")
    else:
        done = services.errors_resolve(
            error_ids=ids, retry=action == "retry", requested_by=request.user.get_username()
        )
        word = "resolved and queued again" if action == "retry" else "resolved"
        messages.success(request, f"{done} error(s) {word}.")
    return redirect("sync:errors")


# --- Sync queue ------------------------------------------------------------------------


def _queue_context(request) -> dict:
    flt, problems = selectors.queue_filter_parse(request.GET)
    page = selectors.queue_page(
        tab=flt.tab,
        connection_id=flt.connection_id,
        key=flt.key,
        status=flt.status,
        before=flt.before,
    )
    params = {
        k: v
        for k, v in (
            ("tab", flt.tab),
            ("connection", flt.connection_id),
            ("key", flt.key),
            ("status", flt.status),
        )
        if v
    }
    return {
        "flt": flt,
        "problems": problems,
        "rows": page["rows"],
        "next_url": f"?{urlencode({**params, 'before': page['next_before']})}"
        if page["next_before"]
        else "",
        "first_url": f"?{urlencode(params)}" if flt.before else "",
        "tabs": selectors.TABS,
        "statuses": selectors.STATUSES,
        "connections": selectors.light_connections(),
        "paused": selectors.paused_connections(),
        "deactivated": selectors.light_connections(status=Connection.Status.DEACTIVATED),
    }


@login_required
@require_GET
def queue(request):
    """Sync queue: four tabs; event, status in words, connection, twin (both keys), attempts,
    next attempt (only when planned), last error. Filters apply at once (htmx); keyset pages."""
    context = _queue_context(request)
    if request.htmx and request.htmx.target == "queue-results":
        return render(request, "sync/_queue_results.html", context)
    return render(request, "sync/queue.html", context)


# --- Clean-up tools --------------------------------------------------------------------


@login_required
@require_GET
def cleanup(request):
    """Clean-up tools: unexalate one incident or a whole connection at once, after downloading
    the connection's local ↔ remote mapping as CSV."""
    rows = [
        {
            "connection": c,
            "twins": Twin.objects.filter(connection=c).filter(services.live_twins()).count(),
        }
        for c in Connection.objects.exclude(status=Connection.Status.PENDING).order_by("name")
    ]
    return render(request, "sync/cleanup.html", {"rows": rows, "form": CleanupForm()})


class _Echo:
    def write(self, value):
        return value


@login_required
@require_GET
def cleanup_mapping_csv(request, connection_id):
    """The connection's twins as CSV (streamed): local number and sys_id, remote number and
    sys_id, status, last synchronized. A connection without twins is said, not downloaded."""
    connection = _connection_or_404(connection_id)
    if not Twin.objects.filter(connection=connection).filter(services.live_twins()).exists():
        messages.error(
            request, f"{connection.name} syncs no incident: there is no mapping to download."
        )
        return redirect("sync:cleanup")
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(
            [
                "local_number",
                "local_sys_id",
                "remote_number",
                "remote_sys_id",
                "status",
                "last_synced_at",
            ]
        )
        for row in selectors.twin_mapping_rows(connection):
            *head, synced = row
            yield writer.writerow(
                [*(_csv_safe(v) for v in head), synced.isoformat() if synced else ""]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="mapping-{connection.pk}.csv"'
    return response


def _csv_safe(value: str) -> str:
    """A value a spreadsheet will not run as a formula (``=``, ``+``, ``-``, ``@`` first)."""
    value = str(value or "")
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@login_required
@require_POST
def cleanup_unexalate_all(request, connection_id):
    """Unexalate every twin of a connection at once (the queue is skipped)."""
    connection = _connection_or_404(connection_id)
    if request.POST.get("confirm") != connection.name:
        messages.error(
            request,
            f"Type the connection's name, {connection.name}, to unexalate all its incidents.",
        )
        return redirect("sync:cleanup")
    ended = services.connection_unexalate_all(
        connection=connection, requested_by=request.user.get_username()
    )
    messages.success(request, f"{ended} incident(s) unexalated on {connection.name}.")
    return redirect("sync:cleanup")


@login_required
@require_POST
def cleanup_unexalate_one(request):
    """Unexalate one incident (by number) on a connection, at once."""
    form = CleanupForm(request.POST)
    if form.is_valid():
        connection = form.cleaned_data["connection"]
        key = form.cleaned_data["number"]
        twin = (
            Twin.objects.filter(connection=connection, local_key=key)
            .filter(services.live_twins())
            .first()
        )
        if twin is None:
            form.add_error("number", f"{key} is not exalated on {connection.name}.")
        else:
            try:
                services.twin_unexalate(
                    twin=twin, at_once=True, requested_by=request.user.get_username()
                )
            except services.SyncRefused as exc:
                form.add_error("number", str(exc))
            else:
                messages.success(request, f"{key} is unexalated on {connection.name}.")
                return redirect("sync:cleanup")
    rows = [
        {
            "connection": c,
            "twins": Twin.objects.filter(connection=c).filter(services.live_twins()).count(),
        }
        for c in Connection.objects.exclude(status=Connection.Status.PENDING).order_by("name")
    ]
    return render(request, "sync/cleanup.html", {"rows": rows, "form": form}, status=400)


# --- Dashboard -------------------------------------------------------------------------


@login_required
@require_GET
def landing(request):
    """``/`` and where a login lands: the Dashboard once a connection exists (one that is not
    pending: an invitation not yet accepted syncs nothing), else Getting started.

    A ``?next=`` that stays on this site (a path, checked with Django's
    ``url_has_allowed_host_and_scheme``) wins, as on the login page; anything else is ignored.
    """
    nxt = request.GET.get("next", "")
    if nxt and url_has_allowed_host_and_scheme(
        nxt, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(nxt)
    if Connection.objects.exclude(status=Connection.Status.PENDING).exists():
        return redirect("sync:dashboard")
    return redirect("getting-started")


@login_required
@require_GET
def dashboard_view(request):
    """Dashboard: incidents under sync per connection, activity by day / week / month (an SVG
    chart drawn here), open errors by level, queue depth and the oldest waiting event.
    Without any connection yet, Getting started is the better first page."""
    if not Connection.objects.exists():
        return redirect("getting-started")
    period = request.GET.get("period", "day")
    if period not in dashboard.PERIODS:
        messages.error(request, f"“{period[:20]}” is not a period: showing days.")
        period = "day"
    return render(request, "sync/dashboard.html", dashboard.dashboard_data(period=period))


# --- Connection page: rename, live check -----------------------------------------------


@login_required
@require_POST
def connection_rename(request, connection_id):
    """Rename a connection and set its description (connection page)."""
    connection = _connection_or_404(connection_id)
    form = RenameForm(request.POST)
    if form.is_valid():
        try:
            services.connection_rename(
                connection=connection,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                requested_by=request.user.get_username(),
            )
        except services.SyncRefused as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, "Name and description saved.")
    else:
        for errs in form.errors.values():
            for e in errs:
                messages.error(request, e)
    return redirect("connections:detail", connection_id=connection.pk)


@login_required
@require_GET
def connection_check(request, connection_id):
    """The live check of the remote node (htmx part of the connection page)."""
    connection = _connection_or_404(connection_id)
    return render(
        request,
        "connections/_remote_check.html",
        {"connection": connection, "check": services.connection_check(connection=connection)},
    )
