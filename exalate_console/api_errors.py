"""One error shape for the whole API: ``{"error": "<one sentence>"}`` (plus ``"fields"``).

Set as ``REST_FRAMEWORK["EXCEPTION_HANDLER"]``; ``json_error_or_page`` gives the same
shape for 400/404/500 answers Django itself makes under ``/api/``.
"""

from __future__ import annotations

from django.http import JsonResponse
from django.shortcuts import render
from rest_framework.views import exception_handler

_PAGE_MESSAGES = {
    400: "The request could not be read (too large or malformed).",
    403: "You are not allowed to do that.",
    404: "There is nothing at this address.",
    500: "Something went wrong on this node. The error was logged; nothing was half-applied.",
}


def _flatten(data) -> str:
    if isinstance(data, str):
        return data
    if isinstance(data, list):
        return " ".join(_flatten(item) for item in data)
    if isinstance(data, dict):
        if "error" in data and isinstance(data["error"], str):
            return data["error"]
        if "detail" in data:
            return _flatten(data["detail"])
        return " ".join(
            f"{key}: {_flatten(value)}" if key != "non_field_errors" else _flatten(value)
            for key, value in data.items()
        )
    return str(data)


def error_exception_handler(exc, context):
    """DRF's handler, with the body reshaped to ``{"error": "<one sentence>"}``.

    Field errors keep their detail under ``"fields"``.
    """
    response = exception_handler(exc, context)
    if response is not None:
        data = response.data
        body = {"error": _flatten(data)}
        if isinstance(data, dict) and "error" not in data and "detail" not in data:
            body["fields"] = data
        response.data = body
    return response


def json_error_or_page(request, status: int):
    """``{"error": ...}`` with ``status`` for paths under /api/, else the console's error page."""
    message = _PAGE_MESSAGES[status]
    if request.path.startswith("/api/"):
        return JsonResponse({"error": message}, status=status)
    return render(
        request, "console/error.html", {"status": status, "message": message}, status=status
    )


def handler400(request, exception=None):
    return json_error_or_page(request, 400)


def handler403(request, exception=None):
    return json_error_or_page(request, 403)


def handler404(request, exception=None):
    return json_error_or_page(request, 404)


def handler500(request):
    return json_error_or_page(request, 500)
