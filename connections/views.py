"""Connections pages. (General settings live in settings_views.py.)"""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from .settings_views import general_settings  # noqa: F401  (re-exported for urls.py)


@login_required
def connection_list(request):
    return render(
        request,
        "console/not_built.html",
        {"title": "Connections", "explanation": "The Connections tab is being built."},
    )
