"""The sandbox's WSGI application and its router.

:class:`SandboxApp` holds one instance's state (store, faults, statistics) and routes
each request: ``/sandbox/…`` to the control endpoints (:mod:`.control`, never counted or
faulted); everything else is counted, delayed by the configured latency, answered by an
injected fault (:mod:`.faults`) if one applies, and otherwise matched against
:data:`URLS` (Werkzeug routing): the OAuth token endpoint (:mod:`.auth`), the pages
(:mod:`.pages`), the Table API (:mod:`.table_api`) and the Attachment API
(:mod:`.attachment_api`). An unknown path is ServiceNow's 400 "Requested URI does not
represent any resource"; an unexpected error is a 500 envelope with the trace in the log.

See the package docstring (``servicenow_adapter.sandbox``) for what it implements and
for the control endpoints tests use.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from werkzeug.exceptions import NotFound
from werkzeug.routing import Map, Rule

from .attachment_api import attachment_request
from .auth import authenticate, oauth_token
from .control import control
from .faults import Faults, fault_response
from .pages import incident_list_page, record_page
from .store import Store
from .table_api import table_request
from .wire import (
    E_NO_RESOURCE,
    HttpError,
    SandboxRequest,
    SandboxResponse,
    error_response,
    html_response,
)

log = logging.getLogger("servicenow_adapter.sandbox")


@dataclass
class SandboxConfig:
    """Start-up settings of one sandbox (see the management command's options).

    Seconds unless named ``_ms``; ``display_tz`` is the time zone of display values.
    """

    latency_ms: float = 0.0
    oauth_client_id: str = "exalate-sandbox"
    oauth_client_secret: str = "exalate-sandbox-secret"
    token_lifetime: float = 1799.0
    refresh_token_lifetime: float = 8_640_000.0
    display_tz: str = "America/Los_Angeles"
    attachment_settle_seconds: float = 1.0
    hang_seconds: float = 30.0
    #: ``com.glide.attachment.max_size`` in bytes (None: no limit); changed at run time via /sandbox/limits
    max_attachment_bytes: int | None = None
    #: stop the clock on the second the sandbox starts (``--freeze-clock``)
    freeze_clock: bool = False
    #: a ``/sandbox/faults`` JSON applied at start (``--fault``, ``--retry-after``, ``--hibernate``)
    fault: dict | None = None


def _table(app, req, table, version="", sys_id=None):
    return table_request(app, req, authenticate(app, req), version, table, sys_id)


def _attachment(app, req, version="", first=None, second=None):
    return attachment_request(app, req, authenticate(app, req), first, second)


def _favicon(app, req):
    return html_response(200, "")


def _rule(path: str, handler, *, exact: bool = False) -> Rule:
    # API paths take an optional trailing slash, as the instance does; pages do not.
    return Rule(path, endpoint=handler, strict_slashes=exact)


#: Every path outside ``/sandbox/``; each endpoint is a function ``(app, request, **values)``.
URLS = Map(
    [
        _rule("/oauth_token.do", oauth_token, exact=True),
        _rule("/nav_to.do", record_page, exact=True),
        _rule("/incident.do", record_page, exact=True),
        _rule("/", incident_list_page, exact=True),
        _rule("/favicon.ico", _favicon, exact=True),
        _rule("/api/now/table/<table>", _table),
        _rule("/api/now/table/<table>/<sys_id>", _table),
        _rule("/api/now/<any(v1, v2):version>/table/<table>", _table),
        _rule("/api/now/<any(v1, v2):version>/table/<table>/<sys_id>", _table),
        _rule("/api/now/attachment", _attachment),
        _rule("/api/now/attachment/<first>", _attachment),
        _rule("/api/now/attachment/<first>/<any(file):second>", _attachment),
        _rule("/api/now/<any(v1):version>/attachment", _attachment),
        _rule("/api/now/<any(v1):version>/attachment/<first>", _attachment),
        _rule("/api/now/<any(v1):version>/attachment/<first>/<any(file):second>", _attachment),
    ],
    merge_slashes=False,
)


class SandboxApp:
    """A WSGI callable serving one sandbox instance from ``store``.

    ``faults`` are the run-time fault settings, ``stats`` counts API requests by
    ``METHOD /path`` (sys_ids as ``{sys_id}``) plus ``total``, ``display_tz`` is the
    time zone of display values.
    """

    def __init__(self, store: Store, config: SandboxConfig | None = None):
        self.store = store
        self.config = config or SandboxConfig()
        self.faults = Faults(self.config.latency_ms)
        if self.config.fault:
            self.faults.set(dict(self.config.fault))
        self.max_attachment_bytes = self.config.max_attachment_bytes
        if self.config.freeze_clock:
            store.frozen_at = store.now()
        self.stats: Counter[str] = Counter()
        self.stats_lock = threading.Lock()
        self.display_tz = ZoneInfo(self.config.display_tz)

    def __call__(self, environ, start_response):
        request = SandboxRequest(environ)
        try:
            response = self.handle(request)
        except HttpError as exc:
            response = error_response(exc.status, exc.error, exc.headers)
        except Exception:  # noqa: BLE001 - an instance answers 500, the log keeps the trace
            log.error(
                "sandbox error on %s %s:\n%s", request.method, request.path, traceback.format_exc()
            )
            response = error_response(500, ("Internal Server Error", None))
        if request.method == "HEAD":  # also a POST overridden to HEAD: headers only
            response.response = []
        return response(environ, start_response)

    def handle(self, req: SandboxRequest) -> SandboxResponse:
        """Route one request (see the module docstring); raises ``HttpError`` for error answers."""
        path = req.path
        if path.startswith("/sandbox/"):
            return control(self, req)
        self._count(req)
        fault = self.faults.take(req.method, path)
        latency = self.faults.latency_ms
        if latency > 0:
            time.sleep(latency / 1000.0)
        if fault is not None:
            return fault_response(self.faults, fault, hang_seconds=self.config.hang_seconds)
        if path.startswith("//"):  # Werkzeug's matcher would fold the leading slashes
            raise HttpError(400, E_NO_RESOURCE)
        try:
            handler, values = URLS.bind("sandbox").match(path, method=req.method)
        except NotFound:
            raise HttpError(400, E_NO_RESOURCE) from None
        return handler(self, req, **values)

    def _count(self, req: SandboxRequest) -> None:
        route = re.sub(r"/[0-9a-f]{32}(?=/|$)", "/{sys_id}", req.path)
        with self.stats_lock:
            self.stats[f"{req.method} {route}"] += 1
            self.stats["total"] += 1
