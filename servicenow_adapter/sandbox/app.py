"""The sandbox's WSGI application: Table, Attachment and OAuth endpoints of a ServiceNow instance.

See the package docstring (``servicenow_adapter.sandbox``) for what it implements and
for the control endpoints tests use (faults, users, statistics, tokens, clock).
"""

from __future__ import annotations

import html
import json
import logging
import random
import re
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qsl, quote, urlencode
from zoneinfo import ZoneInfo

from . import query as eq
from .schema import (
    DISPLAY_FIELD,
    JOURNAL_LABEL,
    MAX_LENGTH,
    PRIORITY_MATRIX,
    TABLES,
    kind_of,
    known_field,
)
from .store import CHUNK, Store, hash_password, new_sys_id

log = logging.getLogger("servicenow_adapter.sandbox")

SYS_ID = re.compile(r"^[0-9a-f]{32}$")
TABLE_PATH = re.compile(r"^/api/now(?:/(v1|v2))?/table/([^/]+)(?:/([^/]+))?/?$")
ATTACHMENT_PATH = re.compile(
    r"^/api/now(?:/(v1))?/attachment(?:/(file|upload|[^/]+))?(?:/(file))?/?$"
)
JSON_TYPE = "application/json;charset=UTF-8"

# Error bodies as instances send them (see servicenow_adapter/README and the reference note §1.7).
E_AUTH = ("User Not Authenticated", "Required to provide Auth information")
E_NOT_FOUND = ("No Record found", "Record doesn't exist or ACL restricts the record retrieval")
E_NO_RESOURCE = ("Requested URI does not represent any resource", None)
E_RIGHTS_READ = ("Insufficient rights", "Insufficient rights to query records")
E_RIGHTS_WRITE = ("Insufficient rights", "Insufficient rights to write records")
E_RATE = ("Rate limit exceeded", "Rate limit of 100 requests per hour for Table API exceeded")
E_QUOTA = (
    "Transaction cancelled: maximum execution time exceeded",
    "Transaction cancelled: maximum execution time exceeded Check logs for error trace or enable "
    "glide.rest.debug property to verify REST request processing",
)
HIBERNATING_PAGE = """<!DOCTYPE html>
<html><head><title>Instance Hibernating page</title></head>
<body><h1>Your instance is hibernating</h1>
<p>This developer instance is asleep. Sign in to the developer portal to wake it up.</p>
</body></html>"""


@dataclass
class SandboxConfig:
    """Start-up settings of one sandbox (see the management command's options)."""

    latency_ms: float = 0.0
    oauth_client_id: str = "exalate-sandbox"
    oauth_client_secret: str = "exalate-sandbox-secret"
    token_lifetime: float = 1799.0
    refresh_token_lifetime: float = 8_640_000.0
    display_tz: str = "America/Los_Angeles"
    attachment_settle_seconds: float = 1.0
    hang_seconds: float = 30.0


@dataclass
class FaultRule:
    """One injected fault; ``count`` None means until cleared. See the package docstring."""

    status: int | None = None
    retry_after: float | None = None
    rate_limit_reset: float | None = None
    count: int | None = None
    hang: bool = False
    hang_seconds: float | None = None
    html: bool = False
    quota: bool = False
    paths: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)

    def applies(self, method: str, path: str) -> bool:
        if self.paths and not any(path.startswith(p) for p in self.paths):
            return False
        return not self.methods or method in self.methods


class Faults:
    """Fault settings changed at run time through ``/sandbox/faults`` (thread-safe)."""

    def __init__(self, base_latency_ms: float):
        self.lock = threading.Lock()
        self.base_latency_ms = base_latency_ms
        self.latency_ms = base_latency_ms
        self.rule: FaultRule | None = None
        self.generation = 0

    def set(self, data: dict) -> None:
        """Replace the fault settings from a control request's JSON (raises ValueError)."""

        def _list(value) -> list[str]:
            if not value:
                return []
            items = value.split(",") if isinstance(value, str) else list(value)
            return [str(v).strip() for v in items if str(v).strip()]

        unknown = set(data) - {
            "latency_ms", "status", "retry_after", "rate_limit_reset", "count", "hang",
            "hang_seconds", "html", "quota", "paths", "methods",
        }  # fmt: skip
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        rule = FaultRule(
            status=int(data["status"]) if data.get("status") is not None else None,
            retry_after=float(data["retry_after"]) if data.get("retry_after") is not None else None,
            rate_limit_reset=float(data["rate_limit_reset"])
            if data.get("rate_limit_reset") is not None
            else None,
            count=int(data["count"]) if data.get("count") is not None else None,
            hang=bool(data.get("hang")),
            hang_seconds=float(data["hang_seconds"]) if data.get("hang_seconds") else None,
            html=bool(data.get("html")),
            quota=bool(data.get("quota")),
            paths=_list(data.get("paths")),
            methods=[m.upper() for m in _list(data.get("methods"))],
        )
        if rule.status is not None and not 100 <= rule.status <= 599:
            raise ValueError("status must be an HTTP status between 100 and 599")
        with self.lock:
            self.latency_ms = float(data.get("latency_ms", self.base_latency_ms))
            active = rule.status is not None or rule.hang or rule.html or rule.quota
            self.rule = rule if active else None
            self.generation += 1

    def clear(self) -> None:
        with self.lock:
            self.latency_ms = self.base_latency_ms
            self.rule = None
            self.generation += 1

    def take(self, method: str, path: str) -> FaultRule | None:
        """The fault to apply to this request, counting it down; None for a normal answer."""
        with self.lock:
            rule = self.rule
            if rule is None or not rule.applies(method, path):
                return None
            if rule.count is not None:
                if rule.count <= 0:
                    return None
                rule.count -= 1
            return rule

    def state(self) -> dict:
        with self.lock:
            rule = self.rule
            return {
                "latency_ms": self.latency_ms,
                "fault": None if rule is None else {k: v for k, v in rule.__dict__.items()},
            }


class HttpError(Exception):
    """An error answer: status plus ServiceNow's (message, detail)."""

    def __init__(self, status: int, error: tuple[str, str | None], headers: list | None = None):
        super().__init__(error[0])
        self.status, self.error, self.headers = status, error, headers or []


class Request:
    """The parts of a WSGI request the sandbox reads."""

    def __init__(self, environ: dict):
        self.environ = environ
        method = environ.get("REQUEST_METHOD", "GET").upper()
        override = environ.get("HTTP_X_HTTP_METHOD_OVERRIDE", "").upper()
        self.method = override if method == "POST" and override else method
        raw_path = environ.get("PATH_INFO", "") or "/"
        try:
            self.path = raw_path.encode("latin-1").decode("utf-8")
        except UnicodeError:
            self.path = raw_path
        self.query_string = environ.get("QUERY_STRING", "")
        self.params: dict[str, str] = {}
        for key, value in parse_qsl(self.query_string, keep_blank_values=True):
            self.params.setdefault(key, value)
        host = (
            environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME')}:{environ.get('SERVER_PORT')}"
        )
        self.base_url = f"{environ.get('wsgi.url_scheme', 'http')}://{host}"

    def header(self, name: str) -> str:
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            return self.environ.get(key, "") or ""
        return self.environ.get(f"HTTP_{key}", "") or ""

    def chunks(self) -> Iterator[bytes]:
        """The request body in chunks (chunked transfer encoding is decoded by the server)."""
        stream = self.environ.get("wsgi.input")
        if stream is None:
            return
        length = self.environ.get("CONTENT_LENGTH")
        remaining = int(length) if length and length.isdigit() else None
        while remaining is None or remaining > 0:
            size = CHUNK if remaining is None else min(CHUNK, remaining)
            chunk = stream.read(size)
            if not chunk:
                break
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk

    def body(self) -> bytes:
        return b"".join(self.chunks())

    def json(self):
        raw = self.body()
        try:
            return json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise HttpError(
                400, ("Exception while reading request", "The payload is not valid JSON.")
            ) from None


Response = tuple[int, list[tuple[str, str]], Iterable[bytes]]

_PAGE_CSS = (
    "body{font:15px system-ui,sans-serif;margin:2rem;color:#1d2733} pre{white-space:pre-wrap;font:inherit}"
    " .meta{color:#5f6b7a;font-size:.9em} dt{font-weight:600} table{border-collapse:collapse}"
    " td,th{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #d9dee5}"
)
STATUS_TEXT = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    409: "Conflict", 413: "Payload Too Large", 415: "Unsupported Media Type",
    429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}  # fmt: skip


def _common_headers() -> list[tuple[str, str]]:
    return [
        ("Server", "ServiceNow"),
        ("X-Is-Logged-In", "true"),
        ("X-Transaction-ID", new_sys_id()[:12]),
        ("Cache-Control", "no-cache,no-store,must-revalidate,max-age=-1"),
        ("Pragma", "no-store,no-cache"),
        ("Expires", "0"),
        ("Set-Cookie", f"JSESSIONID={new_sys_id().upper()}; Path=/; HttpOnly"),
    ]


def json_response(status: int, body, headers: list | None = None) -> Response:
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    hdrs = [("Content-Type", JSON_TYPE), ("Content-Length", str(len(data)))]
    return status, hdrs + _common_headers() + (headers or []), [data]


def error_response(
    status: int, error: tuple[str, str | None], headers: list | None = None
) -> Response:
    body = {"error": {"message": error[0], "detail": error[1]}, "status": "failure"}
    return json_response(status, body, headers)


def html_response(status: int, text: str) -> Response:
    data = text.encode("utf-8")
    return (
        status,
        [("Content-Type", "text/html;charset=UTF-8"), ("Content-Length", str(len(data)))],
        [data],
    )


class SandboxApp:
    """A WSGI callable serving one sandbox instance from ``store``."""

    def __init__(self, store: Store, config: SandboxConfig | None = None):
        self.store = store
        self.config = config or SandboxConfig()
        self.faults = Faults(self.config.latency_ms)
        self.stats: Counter[str] = Counter()
        self.stats_lock = threading.Lock()
        self.display_tz = ZoneInfo(self.config.display_tz)

    # -- WSGI ------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            status, headers, body = self.handle(request)
        except HttpError as exc:
            status, headers, body = error_response(exc.status, exc.error, exc.headers)
        except Exception:  # noqa: BLE001 - an instance answers 500, the log keeps the trace
            log.error(
                "sandbox error on %s %s:\n%s", request.method, request.path, traceback.format_exc()
            )
            status, headers, body = error_response(500, ("Internal Server Error", None))
        start_response(f"{status} {STATUS_TEXT.get(status, 'Status')}", headers)
        if request.method == "HEAD":
            return []
        return body

    def handle(self, req: Request) -> Response:
        path = req.path
        if path.startswith("/sandbox/"):
            return self.control(req)
        self._count(req)
        fault = self.faults.take(req.method, path)
        latency = self.faults.latency_ms
        if latency > 0:
            time.sleep(latency / 1000.0)
        if fault is not None:
            return self.apply_fault(fault)
        if path == "/oauth_token.do":
            return self.oauth_token(req)
        if path in ("/nav_to.do", "/incident.do"):
            return self.record_page(req)
        if path == "/":
            return self.incident_list_page(req)
        if path == "/favicon.ico":
            return html_response(200, "")
        match = TABLE_PATH.match(path)
        if match:
            user = self.authenticate(req)
            version, table, sys_id = match.groups()
            return self.table(req, user, version or "", table, sys_id)
        match = ATTACHMENT_PATH.match(path)
        if match:
            user = self.authenticate(req)
            return self.attachment(req, user, match.group(2), match.group(3))
        raise HttpError(400, E_NO_RESOURCE)

    def _count(self, req: Request) -> None:
        route = re.sub(r"/[0-9a-f]{32}(?=/|$)", "/{sys_id}", req.path)
        with self.stats_lock:
            self.stats[f"{req.method} {route}"] += 1
            self.stats["total"] += 1

    def apply_fault(self, rule: FaultRule) -> Response:
        if rule.hang:
            generation = self.faults.generation
            deadline = time.monotonic() + (rule.hang_seconds or self.config.hang_seconds)
            while time.monotonic() < deadline and self.faults.generation == generation:
                time.sleep(0.05)
        if rule.html:
            return html_response(rule.status or 200, HIBERNATING_PAGE)
        if rule.quota:
            return error_response(rule.status or 500, E_QUOTA)
        status = rule.status
        if status is None:
            return error_response(503, ("Service Unavailable", "The sandbox was told to hang"))
        headers: list[tuple[str, str]] = []
        if status == 429:
            if rule.retry_after is not None or rule.rate_limit_reset is not None:
                headers = [
                    ("X-RateLimit-Limit", "100"),
                    ("X-RateLimit-Rule", "d4ac3fd2c0a8010e0016b3b9d6ee1a07"),
                ]
                if rule.retry_after is not None:
                    headers.append(("Retry-After", f"{rule.retry_after:g}"))
                reset = time.time() + (
                    rule.rate_limit_reset
                    if rule.rate_limit_reset is not None
                    else rule.retry_after or 0
                )
                headers.append(("X-RateLimit-Reset", str(int(reset + 0.999))))
            return error_response(429, E_RATE, headers)
        if status == 202:
            return 202, [("Content-Length", "0")] + _common_headers(), [b""]
        if status == 401:
            return error_response(401, E_AUTH, [("WWW-Authenticate", 'Basic realm="Service-now"')])
        if status == 403:
            return error_response(403, E_RIGHTS_READ)
        if status == 404:
            return error_response(404, E_NOT_FOUND)
        if status < 400:
            return json_response(status, {"result": []})
        return error_response(
            status, (STATUS_TEXT.get(status, "Error"), f"Injected fault {status}")
        )

    # -- authentication -------------------------------------------------------------------------
    def authenticate(self, req: Request) -> dict:
        """The calling sys_user from Basic or Bearer authorization; raises 401 otherwise."""
        import base64

        header = req.header("Authorization")
        scheme, _, credentials = header.partition(" ")
        user = None
        if scheme.lower() == "basic":
            try:
                name, _, password = base64.b64decode(credentials).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                name, password = "", ""
            user = self.store.authenticate(name, password)
        elif scheme.lower() == "bearer":
            found = self.store.token_lookup(credentials.strip(), "access")
            if found:
                user = self.store.user(found[0])
        if user is None:
            raise HttpError(401, E_AUTH, [("WWW-Authenticate", 'Basic realm="Service-now"')])
        return user

    def rights(self, user: dict, table: str) -> str:
        """``allow``, ``deny`` (403) or ``hide`` (rows silently left out) for this user and table.

        ``hide:<encoded query>`` hides only the rows matching the query; it counts as ``allow``
        here and is applied by :meth:`visible`.
        """
        value = (user.get("_acl") or {}).get(table, "allow")
        return "allow" if value.startswith("hide:") else value

    def visible(self, user: dict, table: str, rows: list[dict]) -> list[dict]:
        """Rows this user may see: a ``hide:<query>`` ACL removes matching rows after paging."""
        value = (user.get("_acl") or {}).get(table, "allow")
        if not value.startswith("hide:"):
            return rows
        hidden = eq.parse(value[5:], lambda n: known_field(table, n))
        return [r for r in rows if not eq.evaluate(hidden, self.field_getter(table, r))]

    def oauth_token(self, req: Request) -> Response:
        """``POST /oauth_token.do``: password and refresh_token grants (form-encoded)."""
        denied = (401, {"error_description": "access_denied", "error": "server_error"})
        if req.method != "POST":
            return error_response(405, ("Method not Supported", None))
        form = dict(parse_qsl(req.body().decode("utf-8", "replace"), keep_blank_values=True))
        cfg = self.config
        if (
            form.get("client_id") != cfg.oauth_client_id
            or form.get("client_secret") != cfg.oauth_client_secret
        ):
            return json_response(*denied)
        grant = form.get("grant_type")
        if grant == "password":
            user = self.store.authenticate(form.get("username", ""), form.get("password", ""))
            if user is None:
                return json_response(*denied)
            current = self.store.token_current(user["user_name"], cfg.oauth_client_id)
            if current:
                access, left = current
            else:
                access = self.store.token_issue(
                    "access", user["user_name"], cfg.oauth_client_id, cfg.token_lifetime
                )
                left = cfg.token_lifetime
            refresh = self.store.token_issue(
                "refresh", user["user_name"], cfg.oauth_client_id, cfg.refresh_token_lifetime
            )
            body = {"access_token": access, "refresh_token": refresh, "scope": "useraccount",
                    "token_type": "Bearer", "expires_in": int(left)}  # fmt: skip
            return json_response(200, body)
        if grant == "refresh_token":
            found = self.store.token_lookup(form.get("refresh_token", ""), "refresh")
            if not found or found[1] != cfg.oauth_client_id:
                return json_response(*denied)
            access = self.store.token_issue(
                "access", found[0], cfg.oauth_client_id, cfg.token_lifetime
            )
            body = {"access_token": access, "scope": "useraccount", "token_type": "Bearer",
                    "expires_in": int(cfg.token_lifetime)}  # fmt: skip
            return json_response(200, body)
        return json_response(
            400, {"error_description": "unsupported_grant_type", "error": "server_error"}
        )

    # -- rendering ---------------------------------------------------------------------------
    def settle(self, table: str, row: dict) -> dict:
        """An uploaded attachment turns from ``pending`` to ``available`` a moment later."""
        if table != "sys_attachment" or row.get("state") != "pending":
            return row
        if "_uploaded_at" in row:  # wall-clock seconds: sys_created_on is cut to whole seconds
            age = time.time() - float(row["_uploaded_at"])
        else:
            created = datetime.strptime(row["sys_created_on"], "%Y-%m-%d %H:%M:%S")
            age = (self.store.now() - created.replace(tzinfo=UTC)).total_seconds()
        if age < self.config.attachment_settle_seconds:
            return row
        with self.store.lock:
            fresh = self.store.get(table, row["sys_id"])
            if fresh and fresh.get("state") == "pending":
                fresh.update(state="available", sys_mod_count="1", sys_updated_by="system")
                self.store.put(table, fresh)
                return fresh
        return fresh or row

    def local_time(self, value: str) -> str:
        if not value:
            return ""
        moment = datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        return moment.astimezone(self.display_tz).strftime("%Y-%m-%d %H:%M:%S")

    def display_of(self, table: str, sys_id: str) -> str:
        if table == "sys_user_group" and sys_id == "global":
            return "global"
        row = self.store.get(table, sys_id)
        return row.get(DISPLAY_FIELD.get(table, "sys_id"), "") if row else ""

    def journal_history(self, sys_id: str, element: str) -> str:
        elements = (
            ("comments", "work_notes") if element == "comments_and_work_notes" else (element,)
        )
        rows = [r for r in self.store.rows("sys_journal_field")
                if r.get("element_id") == sys_id and r.get("element") in elements]  # fmt: skip
        rows.sort(key=lambda r: (r["sys_created_on"], r["sys_id"]), reverse=True)
        parts = []
        for r in rows:
            user = self.store.user(r.get("sys_created_by", ""))
            who = user.get("name") if user else r.get("sys_created_by", "")
            label = JOURNAL_LABEL.get(r["element"], r["element"])
            parts.append(
                f"{self.local_time(r['sys_created_on'])} - {who} ({label})\n{r['value']}\n\n"
            )
        return "".join(parts)

    def render_value(self, table, row, name, mode, exclude_links, base, version):
        head, _, tail = name.partition(".")
        kind = kind_of(table, head)
        raw = row.get(head, "")
        if tail:
            target = kind.split(":", 1)[1]
            ref = self.store.get(target, raw) if raw else None
            return (
                self.render_value(target, ref, tail, mode, exclude_links, base, version)
                if ref
                else ""
            )
        if table == "sys_attachment" and name == "download_link":
            raw = f"{base}/api/now/attachment/{row['sys_id']}/file"
        if kind == "journal":
            shown = self.journal_history(row["sys_id"], name) if mode != "false" else ""
            return {"display_value": shown, "value": ""} if mode == "all" else shown
        if isinstance(kind, str) and kind.startswith("reference:"):
            target = kind.split(":", 1)[1]
            if not raw:
                return {"display_value": "", "value": ""} if mode == "all" else ""
            link = f"{base}/api/now{'/' + version if version else ''}/table/{target}/{raw}"
            shown = self.display_of(target, raw)
            if mode == "false":
                return raw if exclude_links else {"link": link, "value": raw}
            if mode == "true":
                return shown if exclude_links else {"display_value": shown, "link": link}
            out = {"display_value": shown, "value": raw}
            if not exclude_links:
                out["link"] = link
            return out
        if mode == "false":
            return raw
        if isinstance(kind, tuple):
            shown = kind[1].get(raw, raw)
        elif kind == "datetime":
            shown = self.local_time(raw)
        elif kind == "integer" and raw.lstrip("-").isdigit():
            shown = f"{int(raw):,}"
        else:
            shown = raw
        return {"display_value": shown, "value": raw} if mode == "all" else shown

    def render(
        self, req: Request, table: str, row: dict, version: str, fields_param: str | None = None
    ) -> dict:
        mode = (req.params.get("sysparm_display_value") or "false").lower()
        mode = mode if mode in ("true", "false", "all") else "false"
        exclude = (req.params.get("sysparm_exclude_reference_link") or "").lower() == "true"
        raw_fields = req.params.get("sysparm_fields") if fields_param is None else fields_param
        names = [f.strip() for f in (raw_fields or "").split(",") if f.strip()]
        names = [n for n in names if known_field(table, n)] if names else list(TABLES[table])
        row = self.settle(table, row)
        return {
            n: self.render_value(table, row, n, mode, exclude, req.base_url, version) for n in names
        }

    # -- Table API ---------------------------------------------------------------------------
    def field_getter(self, table: str, row: dict):
        def get(name: str) -> str | None:
            head, _, tail = name.partition(".")
            value = row.get(head)
            if table == "sys_attachment" and head == "state":
                value = self.settle(table, row).get("state")
            if not tail:
                return value
            target = str(kind_of(table, head)).split(":", 1)[1]
            ref = self.store.get(target, value) if value else None
            return ref.get(tail) if ref else None

        return get

    def select(
        self, req: Request, table: str, default_limit: int
    ) -> tuple[list[dict], int, int, int]:
        """Rows of one page: (page, total, offset, limit). Applies query, order and paging."""
        text = req.params.get("sysparm_query")
        if text is not None:
            parsed = eq.parse(text, lambda n: known_field(table, n))
        else:
            # The documented name/value filter form: ?active=true&number=INC0010001
            conds = [[eq.Condition(k, "=", v)] for k, v in req.params.items()
                     if not k.startswith("sysparm_") and known_field(table, k)]  # fmt: skip
            parsed = eq.Query(groups=[conds] if conds else [])
        try:
            limit = int(req.params.get("sysparm_limit") or default_limit)
            offset = int(req.params.get("sysparm_offset") or 0)
        except ValueError:
            raise HttpError(
                400, ("Invalid parameter", "sysparm_limit and sysparm_offset must be whole numbers")
            ) from None
        if offset < 0 or limit < 0:
            raise HttpError(400, ("Invalid parameter", "sysparm_offset must not be negative"))
        rows = [
            r for r in self.store.rows(table) if eq.evaluate(parsed, self.field_getter(table, r))
        ]
        if parsed.order:
            for name, desc in reversed(parsed.order):
                rows.sort(
                    key=lambda r, n=name: eq.compare_key(self.field_getter(table, r)(n) or ""),
                    reverse=desc,
                )
        else:
            random.shuffle(rows)  # an instance promises no order: flush out clients that assume one
        return rows[offset : offset + limit], len(rows), offset, limit

    def page_headers(
        self, req: Request, total: int, offset: int, limit: int
    ) -> list[tuple[str, str]]:
        headers = []
        if (req.params.get("sysparm_no_count") or "").lower() != "true":
            headers.append(("X-Total-Count", str(total)))
        if (
            req.params.get("sysparm_suppress_pagination_header") or ""
        ).lower() != "true" and limit > 0:

            def link(off: int, rel: str) -> str:
                params = dict(req.params, sysparm_limit=str(limit), sysparm_offset=str(off))
                return (
                    f'<{req.base_url}{req.path}?{urlencode(params, quote_via=quote)}>;rel="{rel}"'
                )

            last = max(0, ((total - 1) // limit) * limit) if total else 0
            links = [
                link(0, "first"),
                link(offset - limit, "prev"),
            ]  # prev even at offset 0: as recorded
            if offset + limit < total:
                links.append(link(offset + limit, "next"))
            links.append(link(last, "last"))
            headers.append(("Link", ",".join(links)))
        return headers

    def table(
        self, req: Request, user: dict, version: str, table: str, sys_id: str | None
    ) -> Response:
        if table not in TABLES:
            raise HttpError(400, (f"Invalid table {table}", None))
        rights = self.rights(user, table)
        if req.method in ("GET", "HEAD"):
            if rights == "deny":
                raise HttpError(403, E_RIGHTS_READ)
            if sys_id is None:
                page, total, offset, limit = self.select(req, table, 10000)
                page = [] if rights == "hide" else self.visible(user, table, page)
                if version == "v1" and total == 0:
                    raise HttpError(404, E_NOT_FOUND)
                body = {"result": [self.render(req, table, r, version) for r in page]}
                return json_response(200, body, self.page_headers(req, total, offset, limit))
            row = self.store.get(table, sys_id)
            if row is None or rights == "hide" or not self.visible(user, table, [row]):
                raise HttpError(404, E_NOT_FOUND)
            return json_response(200, {"result": self.render(req, table, row, version)})
        if rights != "allow":
            raise HttpError(403, E_RIGHTS_WRITE)
        if req.method == "POST" and sys_id is None:
            values = req.json()
            if isinstance(values, list):  # one record only: extra ones are ignored
                values = values[0] if values else {}
            if not isinstance(values, dict):
                raise HttpError(400, ("Exception while reading request", "Expected a JSON object."))
            row = self.write(table, None, values, user)
            location = f"{req.base_url}/api/now/table/{table}/{row['sys_id']}"
            if req.header("X-no-response-body").lower() == "true":
                return (
                    201,
                    [("Location", location), ("Content-Length", "0")] + _common_headers(),
                    [b""],
                )
            return json_response(
                201, {"result": self.render(req, table, row, version)}, [("Location", location)]
            )
        if sys_id is None:
            raise HttpError(405, ("Method not Supported", f"{req.method} needs a sys_id"))
        existing = self.store.get(table, sys_id)
        if existing is None:
            raise HttpError(404, E_NOT_FOUND)
        if req.method in ("PUT", "PATCH"):
            values = req.json()
            if not isinstance(values, dict):
                raise HttpError(400, ("Exception while reading request", "Expected a JSON object."))
            row = self.write(table, existing, values, user)
            if req.header("X-no-response-body").lower() == "true":
                return 200, [("Content-Length", "0")] + _common_headers(), [b""]
            return json_response(200, {"result": self.render(req, table, row, version)})
        if req.method == "DELETE":
            self.delete_record(table, sys_id)
            return 204, _common_headers(), [b""]
        raise HttpError(405, ("Method not Supported", None))

    def write(self, table: str, existing: dict | None, values: dict, user: dict) -> dict:
        """Insert (``existing`` None) or update a record the way an instance does.

        Unknown fields are ignored; ``sys_*`` fields are not writable (except ``sys_id`` on
        insert); journal fields append ``sys_journal_field`` rows; ``sys_mod_count``,
        ``sys_updated_on`` and ``sys_updated_by`` change when anything changed. Incidents
        get a number, a computed priority, ``active`` from the state, and the data policy
        that Resolved/Closed need ``close_code`` and ``close_notes`` (403 otherwise).
        """
        now, who = self.store.now_text(), user["user_name"]
        with self.store.lock:
            creating = existing is None
            if existing is not None:  # re-read under the lock: a concurrent write may have landed
                existing = self.store.get(table, existing["sys_id"]) or existing
            row = dict(existing or {})
            if creating:
                row = {name: "" for name in TABLES[table] if kind_of(table, name) != "journal"}
                proposed = str(values.get("sys_id") or "")
                row.update(sys_id=proposed if SYS_ID.match(proposed) else new_sys_id(),
                           sys_created_on=now, sys_created_by=who, sys_mod_count="0")  # fmt: skip
                if table == "incident":
                    row.update(state="1", impact="3", urgency="3", severity="3", active="true",
                               opened_at=now, opened_by=user["sys_id"], sys_class_name="incident",
                               sys_domain="global", sys_domain_path="/", reassignment_count="0",
                               reopen_count="0", contact_type="")  # fmt: skip
            changed, journals = False, []
            for name, value in values.items():
                kind = kind_of(table, name)
                if (
                    kind is None
                    or name in ("sys_id",)
                    or (name.startswith("sys_") and name != "sys_tags")
                ):
                    continue
                if isinstance(value, dict):
                    value = value.get("value", "")
                value = (
                    ""
                    if value is None
                    else ("true" if value is True else "false" if value is False else str(value))
                )
                if kind == "journal":
                    if value.strip():
                        journals.append(
                            ("comments" if name == "comments_and_work_notes" else name, value)
                        )
                    continue
                limit = MAX_LENGTH.get((table, name))
                if limit:
                    value = value[:limit]
                if row.get(name, "") != value:
                    row[name] = value
                    changed = True
            if table == "incident":
                if creating and not row.get("number"):
                    row["number"] = self.store.next_number()
                row["task_effective_number"] = row["number"]
                row["incident_state"] = row["state"]
                row["priority"] = PRIORITY_MATRIX.get((row["impact"], row["urgency"]), "5")
                row["active"] = "false" if row["state"] in ("6", "7", "8") else "true"
                if row["state"] in ("6", "7") and not (
                    row.get("close_code") and row.get("close_notes")
                ):
                    raise HttpError(403, ("Operation Failed", "Data Policy Exception: \n\tThe following "
                                          "fields are mandatory: Resolution code, Resolution notes\n"))  # fmt: skip
                if row["state"] == "6" and not row.get("resolved_at"):
                    row.update(resolved_at=now, resolved_by=user["sys_id"])
                if row["state"] == "7" and not row.get("closed_at"):
                    row.update(closed_at=now, closed_by=user["sys_id"])
            if creating or changed or journals:
                if not creating:
                    row["sys_mod_count"] = str(int(row.get("sys_mod_count") or 0) + 1)
                row.update(sys_updated_on=now, sys_updated_by=who)
                self.store.put(table, row)
            for element, text in journals:
                self.store.put("sys_journal_field", {
                    "sys_id": new_sys_id(), "element_id": row["sys_id"], "element": element,
                    "name": table, "value": text, "sys_created_on": now, "sys_created_by": who,
                    "sys_updated_on": now, "sys_updated_by": who, "sys_mod_count": "0", "sys_tags": "",
                })  # fmt: skip
            if table == "sys_user" and "password" in values:
                row["_password"] = hash_password(str(values["password"]))
                self.store.put(table, row)
        return row

    def delete_record(self, table: str, sys_id: str) -> None:
        with self.store.lock:
            self.store.delete(table, sys_id)
            if table == "incident":
                for r in self.store.find("sys_journal_field", element_id=sys_id):
                    self.store.delete("sys_journal_field", r["sys_id"])
                for r in self.store.find("sys_attachment", table_sys_id=sys_id):
                    self.store.delete("sys_attachment", r["sys_id"])

    # -- Attachment API ----------------------------------------------------------------------
    def attachment(
        self, req: Request, user: dict, first: str | None, second: str | None
    ) -> Response:
        rights = self.rights(user, "sys_attachment")
        if first is None:
            if req.method not in ("GET", "HEAD"):
                raise HttpError(405, ("Method not Supported", None))
            if rights == "deny":
                raise HttpError(403, E_RIGHTS_READ)
            page, total, offset, limit = self.select(req, "sys_attachment", 1000)
            page = [] if rights == "hide" else self.visible(user, "sys_attachment", page)
            body = {"result": [self.render(req, "sys_attachment", r, "") for r in page]}
            return json_response(200, body, self.page_headers(req, total, offset, limit))
        if first in ("file", "upload"):
            if req.method != "POST":
                raise HttpError(405, ("Method not Supported", None))
            if rights != "allow":
                raise HttpError(403, E_RIGHTS_WRITE)
            return self.upload(req, user, multipart=first == "upload")
        if not SYS_ID.match(first):
            raise HttpError(400, E_NO_RESOURCE)
        row = self.store.get("sys_attachment", first)
        if rights == "deny":
            raise HttpError(403, E_RIGHTS_READ)
        if row is None or rights == "hide":
            raise HttpError(404, E_NOT_FOUND)
        if second == "file":
            if req.method not in ("GET", "HEAD"):
                raise HttpError(405, ("Method not Supported", None))
            meta = self.render(req, "sys_attachment", row, "", "")
            name = row["file_name"]
            ascii_name = name.encode("ascii", "replace").decode().replace('"', "")
            headers = [
                ("Content-Type", row.get("content_type") or "application/octet-stream"),
                ("Content-Length", row.get("size_bytes") or "0"),
                (
                    "Content-Disposition",
                    f"attachment;filename=\"{ascii_name}\";filename*=UTF-8''{quote(name)}",
                ),
                ("X-Attachment-Metadata", json.dumps(meta, ensure_ascii=True)),
            ] + _common_headers()
            return 200, headers, self.store.read_blob(first)
        if req.method in ("GET", "HEAD"):
            return json_response(200, {"result": self.render(req, "sys_attachment", row, "")})
        if req.method == "DELETE":
            if rights != "allow":
                raise HttpError(403, E_RIGHTS_WRITE)
            self.store.delete("sys_attachment", first)
            return 204, _common_headers(), [b""]
        raise HttpError(405, ("Method not Supported", None))

    def upload(self, req: Request, user: dict, *, multipart: bool) -> Response:
        """``POST /api/now/attachment/file`` (raw body) or ``/upload`` (multipart form)."""
        if multipart:
            ctype = req.header("Content-Type")
            if not ctype.startswith("multipart/form-data"):
                raise HttpError(
                    400, ("Failed to create the attachment", "Expected multipart/form-data")
                )
            message = BytesParser(policy=HTTP).parsebytes(
                f"Content-Type: {ctype}\r\n\r\n".encode("latin-1") + req.body()
            )
            form, file_part = {}, None
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if part.get_filename():
                    file_part = part
                elif name:
                    form[name] = (
                        part.get_content().strip() if part.get_content_maintype() == "text" else ""
                    )
            if file_part is None:
                raise HttpError(
                    400, ("Failed to create the attachment", "No file part in the form")
                )
            table_name, table_sys_id = form.get("table_name", ""), form.get("table_sys_id", "")
            file_name, content_type = file_part.get_filename(), file_part.get_content_type()
            chunks: Iterable[bytes] = [file_part.get_payload(decode=True) or b""]
        else:
            table_name = req.params.get("table_name", "")
            table_sys_id = req.params.get("table_sys_id", "")
            file_name = req.params.get("file_name", "")
            content_type = req.header("Content-Type")
            chunks = req.chunks()
            missing = [n for n, v in (("table_name", table_name), ("table_sys_id", table_sys_id),
                                      ("file_name", file_name)) if not v]  # fmt: skip
            if missing:
                raise HttpError(
                    400,
                    ("Failed to create the attachment", f"Missing parameter: {', '.join(missing)}"),
                )
            if not content_type:
                raise HttpError(
                    400, ("Failed to create the attachment", "Content-Type header is required")
                )
        if table_name not in TABLES or self.store.get(table_name, table_sys_id) is None:
            raise HttpError(
                404, ("Invalid table or record", f"{table_name} {table_sys_id} does not exist")
            )
        sys_id = new_sys_id()
        size, digest = self.store.put_blob(sys_id, chunks)
        now, who = self.store.now_text(), user["user_name"]
        row = {
            "sys_id": sys_id, "table_name": table_name, "table_sys_id": table_sys_id,
            "file_name": file_name, "content_type": content_type, "size_bytes": str(size),
            "size_compressed": str(size), "compressed": "true", "hash": digest,
            "chunk_size_bytes": "700000", "state": "pending", "download_link": "",
            "image_width": "", "image_height": "", "average_image_color": "",
            "sys_created_on": now, "sys_created_by": who, "sys_updated_on": now,
            "sys_updated_by": who, "sys_mod_count": "0", "sys_tags": "",
            "_uploaded_at": time.time(),
        }  # fmt: skip
        self.store.put("sys_attachment", row)
        location = f"{req.base_url}/api/now/attachment/{sys_id}/file"
        return json_response(
            201,
            {"result": self.render(req, "sys_attachment", row, "", "")},
            [("Location", location)],
        )

    # -- the record page (the instance's UI link) ----------------------------------------------
    def incident_list_page(self, req: Request) -> Response:
        """``/``: the newest incidents (by ``sys_updated_on``) with links to their record pages."""
        e = html.escape
        rows = sorted(
            self.store.find("incident"),
            key=lambda r: (r.get("sys_updated_on", ""), r["sys_id"]),
            reverse=True,
        )[:200]
        items = "".join(
            f'<tr><td><a href="/incident.do?sys_id={e(r["sys_id"])}">{e(r["number"])}</a></td>'
            f"<td>{e(r.get('short_description', ''))}</td><td>{e(r.get('sys_updated_on', ''))}</td>"
            f"<td>{e(r.get('sys_updated_by', ''))}</td></tr>"
            for r in rows
        )
        page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Incidents | ServiceNow sandbox</title>
<style>{_PAGE_CSS}</style></head>
<body><h1>Incidents</h1><p class="meta">ServiceNow sandbox on {e(req.base_url)}: the REST API is under
<code>/api/now/</code> (basic authentication). Newest first.</p>
<table><tr><th>Number</th><th>Short description</th><th>Updated (UTC)</th><th>Updated by</th></tr>{items}</table>
</body></html>"""
        return html_response(200, page)

    def record_comment(self, req: Request, sys_id: str) -> Response:
        """``POST /incident.do?sys_id=…`` (form ``comment``, ``user_name``): add a public comment
        as one of the sandbox's agents, the way a person would in the instance's form."""
        row = self.store.get("incident", sys_id) if SYS_ID.match(sys_id) else None
        form = dict(parse_qsl(req.body().decode("utf-8", "replace")))
        user = self.store.user(form.get("user_name", ""))
        text = form.get("comment", "").strip()
        if row is None or user is None or not text:
            return html_response(
                400,
                "<!DOCTYPE html><title>Bad request</title><p>Pick an agent and write a comment.</p>",
            )
        self.write("incident", row, {"comments": text}, user)
        return 303, [("Location", f"/incident.do?sys_id={sys_id}")] + _common_headers(), [b""]

    def record_page(self, req: Request) -> Response:
        """``/nav_to.do?uri=incident.do?sys_id=…`` and ``/incident.do?sys_id=…``: a plain HTML form view."""
        sys_id = req.params.get("sys_id", "")
        if req.method == "POST" and req.path == "/incident.do":
            return self.record_comment(req, sys_id)
        if req.path == "/nav_to.do":
            target = req.params.get("uri", "")
            page, _, qs = target.partition("?")
            if page.lstrip("/") != "incident.do":
                return html_response(
                    404, "<!DOCTYPE html><title>Not found</title><p>Unknown page.</p>"
                )
            sys_id = dict(parse_qsl(qs)).get("sys_id", "")
        row = self.store.get("incident", sys_id) if SYS_ID.match(sys_id) else None
        if row is None:
            return html_response(
                404, "<!DOCTYPE html><title>Record not found</title><h1>Record not found</h1>"
            )
        e = html.escape
        comments = sorted(self.store.find("sys_journal_field", element_id=sys_id, element="comments"),
                          key=lambda r: (r["sys_created_on"], r["sys_id"]))  # fmt: skip
        files = sorted(
            self.store.find("sys_attachment", table_sys_id=sys_id),
            key=lambda r: r["sys_created_on"],
        )

        def author(user_name: str) -> str:
            user = self.store.user(user_name)
            return (user or {}).get("name") or user_name

        items = "".join(
            f'<li class="comment" id="c-{r["sys_id"]}"><span class="meta">{e(r["sys_created_on"])} – '
            f"{e(author(r['sys_created_by']))}</span><pre>{e(r['value'])}</pre></li>"
            for r in comments
        )
        attachments = "".join(f'<li class="attachment">{e(r["file_name"])}</li>' for r in files)
        agents = "".join(
            f'<option value="{e(u["user_name"])}">{e(u.get("name") or u["user_name"])}</option>'
            for u in sorted(
                self.store.find("sys_user"), key=lambda u: u["user_name"] != "beth.anglin"
            )
        )
        page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(row["number"])} | Incident | ServiceNow sandbox</title>
<style>{_PAGE_CSS}</style></head>
<body><p><a href="/">All incidents</a></p><h1 id="number">{e(row["number"])}</h1>
<dl><dt>Short description</dt><dd id="short_description">{e(row.get("short_description", ""))}</dd>
<dt>Description</dt><dd><pre id="description">{e(row.get("description", ""))}</pre></dd>
<dt>State</dt><dd id="state">{e(TABLES["incident"]["state"][1].get(row.get("state", ""), ""))}</dd></dl>
<h2>Additional comments</h2><ul id="comments">{items}</ul>
<form method="post" action="/incident.do?sys_id={e(sys_id)}"><label>Add a comment as
<select name="user_name">{agents}</select></label><br><textarea name="comment" rows="3" cols="70"></textarea><br>
<button type="submit">Post comment</button></form>
<h2>Attachments</h2><ul id="attachments">{attachments}</ul>
<p class="meta">sys_id {e(sys_id)}</p></body></html>"""
        return html_response(200, page)

    # -- control endpoints (tests) ------------------------------------------------------------
    def control(self, req: Request) -> Response:
        path, method = req.path.rstrip("/"), req.method
        try:
            if path == "/sandbox/faults":
                if method == "POST":
                    self.faults.set(req.json())
                elif method == "DELETE":
                    self.faults.clear()
                return json_response(200, self.faults.state())
            if path == "/sandbox/stats":
                with self.stats_lock:
                    snapshot = dict(self.stats)
                    if method == "DELETE":
                        self.stats.clear()
                return json_response(200, snapshot)
            if path == "/sandbox/users":
                if method == "POST":
                    return json_response(200, self.user_upsert(req.json()))
                return json_response(200, [
                    {k: v for k, v in u.items() if not k.startswith("_")} | {"acl": u.get("_acl") or {}}
                    for u in self.store.rows("sys_user")
                ])  # fmt: skip
            if path == "/sandbox/tokens/expire" and method == "POST":
                data = req.json() or {}
                return json_response(
                    200, {"expired": self.store.tokens_expire(data.get("kind", "access"))}
                )
            if path == "/sandbox/clock":
                if method == "POST":
                    self.store.clock_offset = float((req.json() or {}).get("offset_seconds", 0))
                return json_response(
                    200, {"now": self.store.now_text(), "offset_seconds": self.store.clock_offset}
                )
        except (ValueError, TypeError, AttributeError) as exc:
            raise HttpError(400, ("Invalid sandbox control request", str(exc))) from None
        raise HttpError(404, ("Unknown sandbox control endpoint", path))

    def user_upsert(self, data: dict) -> dict:
        """Create or change a sys_user: ``user_name`` plus any of ``password``, ``name``, ``active``, ``acl``."""
        if not isinstance(data, dict) or not data.get("user_name"):
            raise ValueError("user_name is required")
        with self.store.lock:
            row = self.store.user(data["user_name"])
            if row is None:
                now = self.store.now_text()
                row = {name: "" for name in TABLES["sys_user"]}
                row.update(sys_id=new_sys_id(), user_name=data["user_name"], active="true",
                           sys_created_on=now, sys_created_by="admin", sys_updated_on=now,
                           sys_updated_by="admin", sys_mod_count="0")  # fmt: skip
            if "name" in data:
                row["name"] = str(data["name"])
            if "active" in data:
                row["active"] = "true" if data["active"] in (True, "true") else "false"
            if "password" in data:
                row["_password"] = hash_password(str(data["password"]))
            if "acl" in data:
                acl = data["acl"] or {}
                bad = {
                    v
                    for v in acl.values()
                    if v not in ("allow", "deny", "hide") and not str(v).startswith("hide:")
                }
                if bad:
                    raise ValueError("acl values must be allow, deny, hide or hide:<encoded query>")
                row["_acl"] = dict(acl)
            self.store.put("sys_user", row)
        return {k: v for k, v in row.items() if not k.startswith("_")} | {
            "acl": row.get("_acl") or {}
        }
