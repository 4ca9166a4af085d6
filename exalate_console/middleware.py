"""Console access: every page needs a logged-in admin, whatever its view forgets.

Paths under ``/api/`` authenticate themselves (DRF tokens for automation, signed JWTs
between nodes); ``/login/``, ``/healthz`` and static files are open. Everything else
redirects anonymous visitors to the login page and refuses (403) users who are not
staff: a console user who is not an admin has no business here.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponseForbidden

OPEN_PREFIXES = ("/login/", "/logout/", "/healthz", "/api/", "/static/")


class ConsoleAccessMiddleware:
    """Require an authenticated staff user on every console page (see module docstring)."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.open_prefixes = OPEN_PREFIXES + ("/" + settings.STATIC_URL.lstrip("/"),)

    def __call__(self, request):
        path = request.path_info
        if not path.startswith(self.open_prefixes):
            user = request.user
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not user.is_staff:
                return HttpResponseForbidden(
                    "This console is for administrators: your user is not an admin of this node."
                )
        return self.get_response(request)
