"""What the sandbox says on the wire: the request it reads, the responses and error envelopes.

Werkzeug does the HTTP plumbing (headers, query string, body stream, multipart forms,
the WSGI response); this module adds what an instance does on top: the
``X-HTTP-Method-Override`` header, the headers every answer carries, the JSON
envelope ``{"error": {"message", "detail"}, "status": "failure"}`` with the bodies
instances send (see ``servicenow_adapter/README.md`` and the reference note §1.7), and
status lines with ServiceNow's reason phrases.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from urllib.parse import parse_qsl

from werkzeug.wrappers import Request, Response

from .store import CHUNK, new_sys_id

SYS_ID = re.compile(r"^[0-9a-f]{32}$")
JSON_TYPE = "application/json;charset=UTF-8"

# Error bodies as instances send them: (message, detail).
E_AUTH = ("User Not Authenticated", "Required to provide Auth information")
E_NOT_FOUND = ("No Record found", "Record doesn't exist or ACL restricts the record retrieval")
E_NO_RESOURCE = ("Requested URI does not represent any resource", None)
E_RIGHTS_READ = ("Insufficient rights", "Insufficient rights to query records")
E_RIGHTS_WRITE = ("Insufficient rights", "Insufficient rights to write records")

STATUS_TEXT = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    409: "Conflict", 413: "Payload Too Large", 415: "Unsupported Media Type",
    429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}  # fmt: skip


class HttpError(Exception):
    """An error answer: ``status`` plus ServiceNow's ``(message, detail)`` and extra headers."""

    def __init__(self, status: int, error: tuple[str, str | None], headers: list | None = None):
        super().__init__(error[0])
        self.status, self.error, self.headers = status, error, headers or []


class SandboxRequest(Request):
    """A Werkzeug request with the few things an instance reads differently.

    ``method`` honours ``X-HTTP-Method-Override`` on a POST; ``path`` is ``PATH_INFO`` as
    the server gave it (Werkzeug would fold a leading ``//`` into ``/``; an instance
    does not); ``params`` holds the first value of each query parameter;
    ``instance_url`` is ``scheme://host[:port]`` from the ``Host`` header, the base of
    every link and ``Location`` the sandbox answers with. Form parts have no size or
    count limit (the sandbox never had one).
    """

    max_form_memory_size = None
    max_form_parts = None

    def __init__(self, environ: dict):
        super().__init__(environ)
        override = self.headers.get("X-HTTP-Method-Override", "").upper()
        if self.method == "POST" and override:
            self.method = override
        raw_path = environ.get("PATH_INFO", "") or "/"
        try:
            self.path = raw_path.encode("latin-1").decode("utf-8")
        except UnicodeError:
            self.path = raw_path
        self.params: dict[str, str] = dict(self.args.items())
        host = (
            environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME')}:{environ.get('SERVER_PORT')}"
        )
        self.instance_url = f"{environ.get('wsgi.url_scheme', 'http')}://{host}"

    def chunks(self) -> Iterator[bytes]:
        """The request body in chunks of at most ``CHUNK`` bytes (chunked bodies decoded by the server)."""
        stream = self.stream
        while chunk := stream.read(CHUNK):
            yield chunk

    def payload(self):
        """The JSON body (``{}`` when empty); raises ``HttpError`` 400 when it is not JSON."""
        raw = self.get_data()
        try:
            return json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise HttpError(
                400, ("Exception while reading request", "The payload is not valid JSON.")
            ) from None

    def form_fields(self, *, keep_blank_values: bool = False) -> dict[str, str]:
        """The body read as a URL-encoded form whatever its Content-Type; the last value of a name wins."""
        body = self.get_data().decode("utf-8", "replace")
        return dict(parse_qsl(body, keep_blank_values=keep_blank_values))


class SandboxResponse(Response):
    """A Werkzeug response that sends exactly the headers it is given.

    No default ``Content-Type`` and no automatic ``Content-Length``: each answer lists
    its own, as the sandbox's recorded shapes need.
    """

    default_mimetype = None
    automatically_set_content_length = False


def respond(status: int, headers: list[tuple[str, str]], body: Iterable[bytes]) -> SandboxResponse:
    """A response with ServiceNow's status line (``"201 Created"``; unknown codes: ``"418 Status"``)."""
    return SandboxResponse(
        body, status=f"{status} {STATUS_TEXT.get(status, 'Status')}", headers=headers
    )


def common_headers() -> list[tuple[str, str]]:
    """The headers every API answer of an instance carries (fresh transaction id and session cookie)."""
    return [
        ("Server", "ServiceNow"),
        ("X-Is-Logged-In", "true"),
        ("X-Transaction-ID", new_sys_id()[:12]),
        ("Cache-Control", "no-cache,no-store,must-revalidate,max-age=-1"),
        ("Pragma", "no-store,no-cache"),
        ("Expires", "0"),
        ("Set-Cookie", f"JSESSIONID={new_sys_id().upper()}; Path=/; HttpOnly"),
    ]


def json_response(status: int, body, headers: list | None = None) -> SandboxResponse:
    """``body`` as UTF-8 JSON with ``Content-Type``, ``Content-Length``, the common headers and ``headers``."""
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    hdrs = [("Content-Type", JSON_TYPE), ("Content-Length", str(len(data)))]
    return respond(status, hdrs + common_headers() + (headers or []), [data])


def error_response(
    status: int, error: tuple[str, str | None], headers: list | None = None
) -> SandboxResponse:
    """The instance's error envelope for ``(message, detail)``."""
    body = {"error": {"message": error[0], "detail": error[1]}, "status": "failure"}
    return json_response(status, body, headers)


def html_response(status: int, text: str) -> SandboxResponse:
    """An HTML page (no common headers: pages are not API answers)."""
    data = text.encode("utf-8")
    return respond(
        status,
        [("Content-Type", "text/html;charset=UTF-8"), ("Content-Length", str(len(data)))],
        [data],
    )


def empty_response(status: int, headers: list[tuple[str, str]] | None = None) -> SandboxResponse:
    """An answer without a body: ``headers`` then the common headers (no ``Content-Length`` unless given)."""
    return respond(status, (headers or []) + common_headers(), [b""])
