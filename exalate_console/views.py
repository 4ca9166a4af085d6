"""Base views: the Getting started page, pages not yet built, and the health check."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection as db_connection
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from connections.selectors import node_settings_get, tracker_config_get


@login_required
def getting_started(request):
    """The landing page: what to do first, in order."""
    node = node_settings_get()
    return render(
        request,
        "console/getting_started.html",
        {"node": node, "tracker_from_env": tracker_config_get().from_env},
    )


def not_built(title: str, explanation: str):
    """Return a login-protected view that says plainly that ``title`` is not built yet."""

    @login_required
    def view(request):
        return render(
            request,
            "console/not_built.html",
            {"title": title, "explanation": explanation},
        )

    return view


def login_locked_out(request, original_response=None, credentials=None):
    """The login page's answer (HTTP 429) while django-axes locks this user name + address out.

    Says why, for how long (``LOGIN_LOCKOUT_MINUTES``) and how an admin lifts it.
    """
    from django.conf import settings

    minutes = settings.AXES_COOLOFF_TIME.total_seconds() / 60
    wait = f"{minutes:g} minute{'s' if minutes != 1 else ''}"
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    context = {"wait": wait, "username": username[:150]}
    return render(request, "registration/locked_out.html", context, status=429)


@never_cache
@require_GET
def healthz(request):
    """Database, broker, scheduler and worker health as JSON, without login.

    Returns ``{"status": "ok"|"error", "database": {"ok"}, "broker": {"ok"},
    "scheduler": {"ok", "seconds_since_heartbeat"}, "workers": {"ok", "alive",
    "seconds_since_heartbeat"}}`` with HTTP 200 when all are ok and 503 otherwise: the
    database or broker does not answer, or the scheduler's (beat) or every worker's
    heartbeat is older than ``HEARTBEAT_STALE`` seconds (see ``exalate_console.heartbeats``).
    Errors name only an exception class: connection strings are never shown.
    """
    from exalate_console.celery import app
    from exalate_console.heartbeats import heartbeat_status

    result = {"database": {"ok": True}, "broker": {"ok": True}}
    try:
        with db_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not reachable"
        result["database"] = {"ok": False, "error": exc.__class__.__name__}
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:
        result["broker"] = {"ok": False, "error": exc.__class__.__name__}
    if result["database"]["ok"]:
        try:
            result.update(heartbeat_status())
        except Exception as exc:  # e.g. not migrated yet
            unknown = {"ok": False, "error": exc.__class__.__name__}
            result.update(scheduler=unknown, workers=unknown)
    else:
        unknown = {"ok": False, "error": "database unreachable"}
        result.update(scheduler=unknown, workers=unknown)
    ok = all(part["ok"] for part in result.values())
    result["status"] = "ok" if ok else "error"
    return JsonResponse(result, status=200 if ok else 503)
