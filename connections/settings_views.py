"""General settings: this node's Exalate URL and its tracker instance, with Test connection."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from trackers.registry import adapter_classes

from . import settings_services
from .selectors import (
    node_identity_get,
    node_settings_get,
    settings_locked_fields,
    tracker_adapter_class_get,
)
from .settings_forms import GeneralSettingsForm


@login_required
@require_http_methods(["GET", "POST"])
def general_settings(request):
    """GET shows the form; POST ``action=test`` tests the entered values (saves nothing),
    ``action=save`` tests them and saves only when the test succeeds, ``action=rotate-webhook``
    makes a new inbound webhook token and shows it once."""
    stored = node_settings_get()
    locked = settings_locked_fields()
    new_webhook_token = None
    test_result = None
    if request.method == "POST":
        action = request.POST.get("action", "save")
        tracker = _chosen_tracker(request.POST.get("tracker", ""), stored)
        if action == "rotate-webhook":
            new_webhook_token = settings_services.webhook_token_rotate(user=request.user)
            form = GeneralSettingsForm(stored=stored, locked=locked, initial=_initial(stored))
        elif action == "switch":  # another tracker chosen: its fields and labels, nothing checked
            initial = {k: v for k, v in request.POST.items() if k in _initial(stored)}
            form = GeneralSettingsForm(
                stored=stored, locked=locked, initial=initial, tracker=tracker
            )
        else:
            form = GeneralSettingsForm(request.POST, stored=stored, locked=locked, tracker=tracker)
            if form.is_valid():
                data = dict(form.cleaned_data)
                config = settings_services.tracker_config_from_form(data=data, stored=stored)
                if locked.get("instance_url"):
                    from .selectors import tracker_config_get

                    config = tracker_config_get()
                ok, message, rights = settings_services.tracker_connection_test(config=config)
                test_result = {"ok": ok, "message": message, "rights": rights}
                if action == "test":
                    pass  # shown on the page only: the values tested are not the saved ones
                elif ok:
                    settings_services.node_settings_update(
                        data=data, locked=locked, user=request.user
                    )
                    settings_services.node_settings_record_test(ok=ok, message=message)
                    messages.success(
                        request, f"Settings saved. Test connection succeeded: {message}"
                    )
                    return redirect("connections:general-settings")
                else:
                    test_result["message"] = (
                        f"{message} Nothing was saved: the settings stay as they were."
                    )
    else:
        form = GeneralSettingsForm(stored=stored, locked=locked, initial=_initial(stored))
    return render(
        request,
        "console/general_settings.html",
        {
            "form": form,
            "stored": stored,
            "identity": node_identity_get(),
            "locked": locked,
            "test_result": test_result,
            "new_webhook_token": new_webhook_token,
            "webhook_url": _webhook_url(request),
            "webhook_help": form.spec.webhook_help.replace("{url}", _webhook_url(request)),
        },
    )


def _chosen_tracker(posted: str, stored) -> str:
    """The tracker the form is for: the posted one when an adapter is registered for it."""
    return posted if posted in adapter_classes() else stored.tracker


def _initial(stored) -> dict:
    return {
        "name": stored.name,
        "public_url": stored.public_url,
        "tracker": stored.tracker,
        "instance_url": stored.instance_url,
        "auth_method": stored.auth_method,
        "username": stored.username,
        "client_id": stored.client_id,
    }


def _webhook_url(request) -> str:
    base = node_identity_get().public_url or request.build_absolute_uri("/").rstrip("/")
    return f"{base}/api/webhooks/{tracker_adapter_class_get().tracker}/"
