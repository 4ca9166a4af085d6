"""The Triggers and Bulk operations pages (issue 13).

Thin views: check method and login, validate with a form, call one service, redirect or
render. A bulk run's page re-fetches its progress part every second with htmx while the
run is open (``hx-trigger="every 1s"``; no inline script: the CSP forbids it).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import services
from .models import BulkItem, BulkRun, Trigger
from .trigger_forms import BulkConnectForm, TriggerForm


def _trigger_initial(trigger: Trigger) -> dict:
    return {
        "entity_type": trigger.entity_type,
        "query": trigger.query,
        "connection": trigger.connection_id,
        "notes": trigger.notes,
        "active": trigger.active,
    }


def _save(request, form: TriggerForm, trigger: Trigger | None):
    """Validate and save; returns (trigger, None) or (None, confirm_count or None) with form errors."""
    if not form.is_valid():
        return None, None
    data = form.cleaned_data
    try:
        saved, count = services.trigger_save(
            trigger=trigger,
            connection=data["connection"],
            query=data["query"],
            entity_type=data["entity_type"],
            notes=data["notes"],
            active=data["active"],
            confirm_all=data["confirm_all"],
            requested_by=request.user.get_username(),
        )
    except services.ConfirmAll as exc:
        form.add_error("query", str(exc))
        return None, exc.count
    except services.SyncRefused as exc:
        form.add_error("query", str(exc))
        return None, None
    messages.success(
        request,
        f"Trigger saved. {count:,} {saved.entity_type}{'' if count == 1 else 's'} match it now.",
    )
    return saved, None


@login_required
@require_http_methods(["GET", "POST"])
def triggers(request):
    """Triggers: the list, and the form that creates one (``POST``)."""
    form = TriggerForm(request.POST or None)
    confirm = None
    if request.method == "POST":
        saved, confirm = _save(request, form, None)
        if saved:
            return redirect("sync:trigger", trigger_id=saved.pk)
    return render(
        request,
        "sync/triggers/list.html",
        {
            "form": form,
            "confirm_count": confirm,
            "triggers": Trigger.objects.select_related("connection").order_by("created_at"),
        },
        status=400 if request.method == "POST" else 200,
    )


@login_required
@require_http_methods(["GET", "POST"])
def trigger_detail(request, trigger_id):
    """One trigger: edit it, see its first matches, start Bulk Exalate / Unexalate."""
    trigger = get_object_or_404(Trigger.objects.select_related("connection"), pk=trigger_id)
    form = TriggerForm(request.POST or None, initial=_trigger_initial(trigger))
    confirm = None
    if request.method == "POST":
        saved, confirm = _save(request, form, trigger)
        if saved:
            return redirect("sync:trigger", trigger_id=saved.pk)
    return render(
        request,
        "sync/triggers/detail.html",
        {
            "trigger": trigger,
            "form": form,
            "confirm_count": confirm,
            "runs": trigger.bulk_runs.all()[:10],
            "twin_count": trigger.links.count(),
        },
        status=400 if request.method == "POST" else 200,
    )


@login_required
@require_GET
def trigger_preview(request, trigger_id):
    """The preview part (htmx): the first matching incidents with links."""
    trigger = get_object_or_404(Trigger, pk=trigger_id)
    try:
        matches, error = services.trigger_preview(query=trigger.query, limit=10), ""
    except services.SyncRefused as exc:
        matches, error = [], str(exc)
    return render(
        request,
        "sync/triggers/_preview.html",
        {"matches": matches, "error": error, "trigger": trigger},
    )


@login_required
@require_POST
def trigger_active(request, trigger_id):
    """Enable or disable (``active`` = ``1`` / ``0``)."""
    trigger = get_object_or_404(Trigger, pk=trigger_id)
    active = request.POST.get("active") == "1"
    services.trigger_set_active(
        trigger=trigger, active=active, requested_by=request.user.get_username()
    )
    messages.success(
        request, "Trigger enabled." if active else "Trigger disabled: it starts nothing new."
    )
    return redirect("triggers")


@login_required
@require_POST
def trigger_delete(request, trigger_id):
    """Delete a trigger (its twins go on syncing)."""
    trigger = get_object_or_404(Trigger, pk=trigger_id)
    services.trigger_delete(trigger=trigger, requested_by=request.user.get_username())
    messages.success(request, "Trigger deleted. The incidents it exalated go on syncing.")
    return redirect("triggers")


@login_required
@require_POST
def trigger_bulk(request, trigger_id, kind):
    """Start Bulk Exalate (``kind`` = exalate) or Bulk Unexalate and go to its progress page."""
    trigger = get_object_or_404(Trigger.objects.select_related("connection"), pk=trigger_id)
    start = services.bulk_exalate_start if kind == "exalate" else services.bulk_unexalate_start
    try:
        run = start(trigger=trigger, requested_by=request.user.get_username())
    except services.SyncRefused as exc:
        messages.error(request, str(exc))
        return redirect("sync:trigger", trigger_id=trigger.pk)
    return redirect("sync:bulk-run", run_id=run.pk)


# --- bulk operations --------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def bulk(request):
    """Bulk operations: the recent runs and the Bulk Connect upload (``POST``)."""
    form = BulkConnectForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            run = services.bulk_connect_upload(
                connection=form.cleaned_data["connection"],
                data=form.read(),
                file_name=form.cleaned_data["file"].name,
                requested_by=request.user.get_username(),
            )
        except services.SyncRefused as exc:
            form.add_error("file", str(exc))
        else:
            return redirect("sync:bulk-run", run_id=run.pk)
    return render(
        request,
        "sync/bulk/index.html",
        {"form": form, "runs": BulkRun.objects.select_related("trigger", "connection")[:20]},
        status=400 if request.method == "POST" else 200,
    )


def _run_context(run: BulkRun) -> dict:
    items = BulkItem.objects.filter(run=run)
    return {
        "run": run,
        "progress": services.bulk_progress(run),
        "failures": items.filter(status=BulkItem.Status.FAILED)[:500],
        "bad": items.filter(status=BulkItem.Status.BAD)[:500],
        "valid": items.filter(status=BulkItem.Status.PENDING)[:500]
        if run.status == BulkRun.Status.PREVIEW
        else [],
        "open": run.status in (*BulkRun.OPEN,),
    }


@login_required
@require_GET
def bulk_run(request, run_id):
    """A run's own page: the live progress bar, then the result list."""
    run = get_object_or_404(BulkRun.objects.select_related("trigger", "connection"), pk=run_id)
    return render(request, "sync/bulk/run.html", _run_context(run))


@login_required
@require_GET
def bulk_run_part(request, run_id):
    """The progress part htmx re-fetches every second while the run is open."""
    run = get_object_or_404(BulkRun.objects.select_related("trigger", "connection"), pk=run_id)
    return render(request, "sync/bulk/_progress.html", _run_context(run))


@login_required
@require_POST
def bulk_run_cancel(request, run_id):
    """Cancel: the run stops before its next item."""
    run = get_object_or_404(BulkRun, pk=run_id)
    services.bulk_cancel(run=run, requested_by=request.user.get_username())
    messages.success(request, "Cancelled: the run stops before its next item.")
    return redirect("sync:bulk-run", run_id=run.pk)


@login_required
@require_POST
def bulk_connect_confirm(request, run_id):
    """Confirm a Bulk Connect preview: link the valid rows only."""
    run = get_object_or_404(BulkRun, pk=run_id)
    try:
        services.bulk_connect_confirm(run=run, requested_by=request.user.get_username())
    except services.SyncRefused as exc:
        messages.error(request, str(exc))
    return redirect("sync:bulk-run", run_id=run.pk)


@login_required
@require_GET
def bulk_connect_result(request, run_id):
    """The run's rows and what became of each, as CSV."""
    run = get_object_or_404(BulkRun, pk=run_id, kind=BulkRun.Kind.CONNECT)
    response = HttpResponse(
        services.bulk_connect_result_csv(run), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="bulk-connect-{run.pk}.csv"'
    return response
