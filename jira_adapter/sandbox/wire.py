"""What the Jira sandbox says on the wire: the request it reads, responses, the error envelope.

Werkzeug does the HTTP plumbing; this module adds Jira's shapes on top: the envelope
``{"errorMessages": [...], "errors": {field: message}}`` (reference note §9.1), the
non-envelope 401 bodies (§6.1), the headers a site sends, and Jira's date format
(``2026-03-02T09:15:44.120-0800``: milliseconds, offset without a colon, in the caller's
time zone).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from werkzeug.wrappers import Request, Response

JSON_TYPE = "application/json;charset=UTF-8"
CHUNK = 64 * 1024

# Messages a site sends (reference note §1.2, §9.3, §5.3, §3.3, §2.1).
M_ISSUE_404 = "Issue does not exist or you do not have permission to see it."
M_TOO_LONG = "The entered text is too long. It exceeds the allowed limit of 32,767 characters."
M_INVALID_INPUT = "INVALID_INPUT"
M_NOT_ADF = "Operation value must be an Atlassian Document"
M_NOT_STRING = "Operation value must be a string"
M_BAD_ADF = "The field value is not valid Atlassian Document Format (ADF) content."
M_SEARCH_GONE = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)
TEXT_LIMIT = 32767


class HttpError(Exception):
    """An error answer: ``status``, the envelope's ``messages`` and field ``errors``, extra headers.

    ``body`` (bytes) and ``content_type`` replace the envelope when set (401 pages, XSRF).
    """

    def __init__(
        self,
        status: int,
        messages: list[str] | str | None = None,
        errors: dict[str, str] | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
        content_type: str = JSON_TYPE,
    ):
        if isinstance(messages, str):
            messages = [messages]
        self.status, self.messages, self.errors = status, list(messages or []), dict(errors or {})
        self.headers, self.body, self.content_type = headers or [], body, content_type
        super().__init__(f"{status} {self.messages} {self.errors}")


def field_error(field: str, message: str, status: int = 400) -> HttpError:
    """A 400 whose envelope names one field (``errorMessages`` stays empty, as Jira sends it)."""
    return HttpError(status, [], {field: message})


class JiraRequest(Request):
    """A Werkzeug request plus ``site_url`` (``scheme://host[:port]``, the base of every ``self``).

    Form parts have no count limit below Jira's own (61 files are refused by the handler).
    """

    max_form_memory_size = 10 * 1024 * 1024
    max_form_parts = 5000

    def __init__(self, environ: dict):
        super().__init__(environ)
        host = (
            environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME')}:{environ.get('SERVER_PORT')}"
        )
        self.site_url = f"{environ.get('wsgi.url_scheme', 'http')}://{host}"
        self.user: dict | None = None  # set by the app after authentication

    def payload(self):
        """The JSON body; raises a 400 envelope when it is missing or not JSON."""
        raw = self.get_data()
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise HttpError(
                400, ["Unexpected character in the request body: it is not valid JSON."]
            ) from None

    def int_arg(self, name: str, default: int) -> int:
        """A whole-number query parameter; a 400 naming it when it is not one."""
        value = self.args.get(name)
        if value in (None, ""):
            return default
        try:
            return int(value)
        except ValueError:
            raise HttpError(400, [f"Parameter '{name}' must be a number."]) from None

    def csv_arg(self, name: str) -> list[str]:
        """Comma lists, also repeated: ``?fields=a,b&fields=c`` → ``["a", "b", "c"]``."""
        out: list[str] = []
        for value in self.args.getlist(name):
            out += [v.strip() for v in value.split(",") if v.strip()]
        return out


def site_headers() -> list[tuple[str, str]]:
    """Headers every answer of a site carries."""
    return [
        ("Server", "AtlassianEdge"),
        ("Cache-Control", "no-cache, no-store, no-transform"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-AREQUESTID", datetime.now().strftime("%H%Mx%f")),
    ]


def respond(status: int, headers: list[tuple[str, str]], body: Iterable[bytes]) -> Response:
    """A Werkzeug response with exactly ``headers`` plus the site headers."""
    resp = Response(body, status=status, headers=headers + site_headers())
    resp.automatically_set_content_length = False
    return resp


def json_response(status: int, body, headers: list[tuple[str, str]] | None = None) -> Response:
    """``body`` as UTF-8 JSON with ``Content-Type`` and ``Content-Length``."""
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    hdrs = [("Content-Type", JSON_TYPE), ("Content-Length", str(len(data)))]
    return respond(status, hdrs + (headers or []), [data])


def empty_response(status: int = 204, headers: list[tuple[str, str]] | None = None) -> Response:
    """An answer without a body (204 on edit, delete)."""
    return respond(status, headers or [], [b""])


def error_response(exc: HttpError) -> Response:
    """The answer for an :class:`HttpError`: the envelope, or its own body."""
    if exc.body is not None:
        hdrs = [("Content-Type", exc.content_type), ("Content-Length", str(len(exc.body)))]
        return respond(exc.status, hdrs + exc.headers, [exc.body])
    return json_response(
        exc.status, {"errorMessages": exc.messages, "errors": exc.errors}, exc.headers
    )


def unauthorized(flavour: str) -> HttpError:
    """The 401 a site sends for missing or wrong credentials: never the envelope (§6.1).

    Cloud: ``{"message": ..., "status-code": 401}``; DC: a login-required HTML page. Both
    carry ``X-Seraph-LoginReason``.
    """
    headers = [("X-Seraph-LoginReason", "AUTHENTICATED_FAILED")]
    if flavour == "dc":
        page = b"<html><head><title>Unauthorized (401)</title></head><body><h1>Unauthorized (401)</h1><p>Login Required</p></body></html>"
        return HttpError(401, body=page, content_type="text/html;charset=UTF-8", headers=headers)
    body = json.dumps(
        {"message": "Client must be authenticated to access this resource.", "status-code": 401}
    ).encode()
    return HttpError(
        401, body=body, headers=headers + [("WWW-Authenticate", 'Basic realm="protected-area"')]
    )


def jira_time(ms: int, tz: str = "UTC") -> str:
    """Epoch milliseconds as Jira writes them: ``2026-03-02T09:15:44.120+0000`` in zone ``tz``."""
    moment = datetime.fromtimestamp(ms / 1000, ZoneInfo(tz))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}" + moment.strftime("%z")


def rendered_time(ms: int, now_ms: int, tz: str = "UTC") -> str:
    """A date as ``renderedFields`` shows it: "Just now", or ``24/Feb/21 2:19 PM`` with no zone (§1.2)."""
    if 0 <= now_ms - ms < 60_000:
        return "Just now"
    moment = datetime.fromtimestamp(ms / 1000, ZoneInfo(tz))
    return moment.strftime("%d/%b/%y %I:%M %p").replace(" 0", " ")
