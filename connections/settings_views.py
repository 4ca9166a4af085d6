"""General settings page (placeholder until built)."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def general_settings(request):
    return render(request, "console/not_built.html", {"title": "General settings", "explanation": ""})
