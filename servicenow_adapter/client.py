"""A typed client for the ServiceNow Table, journal (``sys_journal_field``) and Attachment APIs.

One :class:`ServiceNowClient` talks to one instance over one ``requests.Session``.
Every call has a timeout, no cookies are kept (a session cookie would serialise
parallel requests on one node and can get them dropped with 202), and failures become
the tracker errors of ``trackers.errors`` (see ``servicenow_adapter.errors``).

Retries: transient errors are retried with exponential backoff and jitter, waiting what
``Retry-After`` or ``X-RateLimit-Reset`` asks when given, bounded by
:class:`RetryPolicy` in attempts and total seconds. Reads are retried on every transient
error; writes only when the instance certainly did not process them (connection
refused, 429, the hibernation page), so a retry never adds a second comment or
incident; an upload from a stream is never replayed. After the budget the last
``TransientTrackerError`` is raised with its ``retry_after`` for the caller's queue.

Throttle: with the node's :class:`trackers.throttle.Throttle` (the adapter passes it),
each request (each try) first takes a slot and a token for the instance, shared by every
process of the node, and gives them back when its answer is read (a streamed download
holds its slot until the stream is closed). A 429 slows the node down for everyone and
its ``Retry-After`` holds every request; a wait beyond the retry budget raises
``InstanceBusy`` at once (transient, with ``retry_after``).

Authentication: Basic (user name and password, UTF-8), or OAuth 2 through
``POST /oauth_token.do`` (password grant, then refresh_token grant; ServiceNow docs
"OAuth API request parameters"). Tokens are shared by all clients of one process for
the same instance and credentials. A 401 triggers one refresh and one retry; a second
401 is a ``TrackerAuthenticationError``.
"""

from __future__ import annotations

import http.cookiejar
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import requests

from trackers.errors import (
    TrackerError,
    TrackerUnreachable,
    TransientTrackerError,
)
from trackers.http import NO_RETRY, RetryPolicy
from trackers.throttle import Lease, Throttle

from . import errors
from . import query as q
from .attachment_calls import AttachmentCalls
from .auth import Authentication, BasicCredentials, OAuthCredentials

__all__ = ["NO_RETRY", "BasicCredentials", "OAuthCredentials", "RetryPolicy", "ServiceNowClient"]

log = logging.getLogger(__name__)

SYS_ID = re.compile(r"^[0-9a-f]{32}$")
DEFAULT_PAGE_SIZE = 500
MIN_PAGE_SIZE = 10


@dataclass
class Page:
    """One page of a list: ``rows``; ``total`` from X-Total-Count (None when absent); ``has_next`` from Link."""

    rows: list[dict]
    total: int | None
    has_next: bool


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    def set_ok(self, cookie, request):  # noqa: D102 - refuse every cookie
        return False


class ServiceNowClient(AttachmentCalls, Authentication):
    """HTTP client of one ServiceNow instance.

    ``instance_url``: ``https://<instance>.service-now.com`` (no trailing slash needed).
    ``credentials``: :class:`BasicCredentials` or :class:`OAuthCredentials`.
    ``timeout``: seconds for connecting and for each read. ``page_size``: rows per list
    request. ``calls`` counts the HTTP requests sent (retries and token requests included).
    ``throttle``: a :class:`trackers.throttle.Throttle` (``busy`` is its older name); each
    request then holds one of the instance's slots and tokens, shared by every client and
    process of the node, and after a 429 with ``Retry-After`` no request goes out until
    then (None: no limits, for tests of one client).
    Not thread-safe: use one client per thread (tokens are still shared).
    """

    def __init__(
        self,
        instance_url: str,
        *,
        credentials: BasicCredentials | OAuthCredentials,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        session: requests.Session | None = None,
        throttle: Throttle | None = None,
        busy: Throttle | None = None,
    ):
        self.base = instance_url.rstrip("/")
        self.credentials = credentials
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.page_size = page_size
        self.session = session or requests.Session()
        self.session.cookies.set_policy(_NoCookies())
        self.session.trust_env = False
        self.calls = 0
        self.throttle = throttle if throttle is not None else busy

    def __repr__(self) -> str:
        return f"ServiceNowClient({self.base!r}, {self.credentials!r})"

    # -- the request loop -------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json_body: Any = None,
        data: Any = None,
        headers: dict | None = None,
        stream: bool = False,
        idempotent: bool | None = None,
        replayable: bool = True,
        retry: RetryPolicy | None = None,
        retry_cancelled: bool = True,
    ) -> tuple[requests.Response, Any]:
        """Send one API request with auth, timeout and retries; returns (response, parsed JSON).

        ``path`` starts with ``/api/now``. JSON is parsed unless ``stream`` is set (then
        None is returned and the caller reads the body). ``idempotent`` defaults to True for
        GET/HEAD; ``replayable`` False (a body from a stream) disables all retries.
        Raises the ``trackers.errors`` errors described in ``servicenow_adapter.errors``.
        """
        policy = retry or self.retry
        idempotent = method in ("GET", "HEAD") if idempotent is None else idempotent
        what = f"{method} {path}"
        started = time.monotonic()
        attempt, refreshed = 0, False
        while True:
            attempt += 1
            sent_headers = {"Accept": "application/json", **(headers or {})}
            not_processed = False
            lease = self._lease(what, policy, started, attempt)
            try:
                sent_headers["Authorization"] = self._authorization()
                try:
                    self.calls += 1
                    response = self.session.request(
                        method,
                        f"{self.base}{path}",
                        params=params,
                        json=json_body,
                        data=data,
                        headers=sent_headers,
                        timeout=self.timeout,
                        stream=stream,
                        allow_redirects=False,
                    )
                except requests.RequestException as exc:
                    not_processed = errors.not_sent(exc)
                    error: TrackerError = TrackerUnreachable(
                        f"Could not reach the ServiceNow instance {self.base} ({what}): {errors.failure_reason(exc)}"
                    )
                else:
                    if (
                        response.status_code == 401
                        and isinstance(self.credentials, OAuthCredentials)
                        and not refreshed
                        and replayable
                    ):
                        refreshed = True
                        response.close()
                        self._oauth_refresh(sent_headers["Authorization"])
                        attempt -= 1
                        continue
                    try:
                        payload = self._check(response, what, method=method, stream=stream)
                        if stream and lease is not None:
                            lease.hold(response)  # the slot is held until the stream is closed
                            lease = None
                        return response, payload
                    except TrackerError as exc:
                        response.close()
                        error = exc
                        not_processed = response.status_code == 429 or (
                            isinstance(exc, errors.NonJSONAnswer) and exc.hibernating
                        )
                        if response.status_code == 429 and self.throttle is not None:
                            retry_after = getattr(exc, "retry_after", None)
                            self.throttle.too_fast(self.base, retry_after)
            finally:
                if lease is not None:
                    lease.release()
            if not isinstance(error, TransientTrackerError):
                raise error
            if isinstance(error, errors.TransactionCancelled) and not retry_cancelled:
                raise error
            if (
                not replayable
                or not (idempotent or not_processed)
                or attempt >= policy.max_attempts
            ):
                raise error
            wait = policy.delay(attempt, error.retry_after)
            if time.monotonic() - started + wait > policy.max_total_seconds:
                raise error
            log.info("ServiceNow %s: %s; retry %d in %.2fs", what, error.message, attempt, wait)
            time.sleep(wait)

    def _lease(self, what: str, policy: RetryPolicy, started: float, attempt: int) -> Lease | None:
        """A slot and a token for one request (None without a throttle).

        Waits at most what is left of the retry budget; a Retry-After is waited out only when
        another attempt is allowed. Raises ``InstanceBusy`` (transient, with ``retry_after``).
        """
        if self.throttle is None:
            return None
        left = max(0.0, policy.max_total_seconds - (time.monotonic() - started))
        return self.throttle.acquire(
            self.base,
            budget=left,
            busy_budget=left if attempt < policy.max_attempts else 0.0,
            ttl=self.timeout + 5,
            label="ServiceNow",
            what=what,
        )

    def _check(self, response: requests.Response, what: str, *, method: str, stream: bool):
        status = response.status_code
        if 200 <= status < 300:
            if status == 202 and method in ("GET", "HEAD") and not response.content:
                raise TransientTrackerError(
                    f"ServiceNow queued {what} (202 with no content): too many requests on one session",
                    status=202,
                )
            if stream or method == "HEAD" or status == 204 or not response.content:
                return None
            return errors.parse_json(response)
        if 300 <= status < 400:
            raise errors.NonJSONAnswer(
                f"The instance redirected {what} to {response.headers.get('Location', '?')} "
                "(a login page or a wrong URL?).",
                status=status,
            )
        try:
            payload = errors.parse_json(response)
        except errors.NonJSONAnswer as exc:
            if status == 404 or (400 <= status < 500 and status != 429 and not exc.hibernating):
                raise errors.NotATrackerInstance(
                    f"{self.base} answered {what} with {status} and a non-JSON page: "
                    "is this the address of a ServiceNow instance?",
                    status=status,
                ) from None
            raise
        raise errors.error_for(response, payload, what)

    def _result(self, method: str, path: str, **kw):
        response, payload = self.request(method, path, **kw)
        return errors.result_of(payload, response, f"{method} {path}"), response

    # -- Table API ---------------------------------------------------------------------------
    def table_get(
        self, table: str, sys_id: str, *, fields: Iterable[str] = (), display_value: str = "false"
    ) -> dict:
        """``GET /api/now/table/{table}/{sys_id}``: one record as a dict of raw strings.

        References are bare sys_ids (``sysparm_exclude_reference_link=true``); date-times
        are UTC ``YYYY-MM-DD HH:MM:SS``. Raises TrackerNotFound (404, also for a
        malformed sys_id), TrackerPermissionError, TrackerAuthenticationError, transient errors.
        """
        _check_sys_id(sys_id)
        result, _ = self._result(
            "GET",
            f"/api/now/table/{table}/{sys_id}",
            params=_read_params(fields, display_value),
        )
        if not isinstance(result, dict):
            raise errors.NotATrackerInstance(
                f"GET /api/now/table/{table}/{sys_id} did not return one record."
            )
        return result

    def table_page(
        self,
        table: str,
        *,
        query: str,
        fields: Iterable[str] = (),
        limit: int,
        offset: int = 0,
        display_value: str = "false",
        path: str | None = None,
    ) -> Page:
        """One ``GET /api/now/table/{table}`` page: ``sysparm_query``, ``sysparm_limit``, ``sysparm_offset``.

        ``path`` overrides the endpoint (the Attachment API lists with the same paging).
        Returns a :class:`Page`. A transaction cancelled for running too long raises
        ``errors.TransactionCancelled`` without retrying (the caller asks for less).
        """
        params = _read_params(fields, display_value)
        params.update(sysparm_query=query, sysparm_limit=str(limit), sysparm_offset=str(offset))
        endpoint = path or f"/api/now/table/{table}"
        result, response = self._result("GET", endpoint, params=params, retry_cancelled=False)
        if not isinstance(result, list):
            raise errors.NotATrackerInstance(f"GET {endpoint} did not return a list.")
        total_header = response.headers.get("X-Total-Count", "").strip()
        total = int(total_header) if total_header.isdigit() else None
        has_next = 'rel="next"' in response.headers.get("Link", "")
        return Page(rows=result, total=total, has_next=has_next)

    def table_list(
        self,
        table: str,
        *,
        query: str,
        fields: Iterable[str] = (),
        order: tuple[str, ...] = ("sys_updated_on", "sys_id"),
        display_value: str = "false",
        path: str | None = None,
        page_size: int | None = None,
    ) -> list[dict]:
        """Every row matching ``query``, read page by page in a total order.

        ``order`` fields are appended as ``ORDERBY`` terms (default
        ``ORDERBYsys_updated_on^ORDERBYsys_id``), since an instance has no default order
        and offset paging without one skips and repeats rows. Paging stops when the
        offset reaches ``X-Total-Count`` (or, without it, when the ``Link`` header has no
        ``next`` and a page is empty), never on a short page: ACLs remove rows after
        the limit is applied. A cancelled transaction halves the page size and retries.
        """
        fields = list(fields)
        full_query = q.join(query, q.order_by(*order))
        limit = page_size or self.page_size
        offset, rows = 0, []
        while True:
            try:
                page = self.table_page(
                    table, query=full_query, fields=fields, limit=limit, offset=offset,
                    display_value=display_value, path=path,
                )  # fmt: skip
            except errors.TransactionCancelled:
                if limit <= MIN_PAGE_SIZE:
                    raise
                limit = max(MIN_PAGE_SIZE, limit // 2)
                continue
            rows.extend(page.rows)
            offset += limit
            if page.total is not None:
                if offset >= page.total:
                    return rows
            elif not page.rows and not page.has_next:
                return rows

    def table_create(self, table: str, values: dict, *, fields: Iterable[str] = ()) -> dict:
        """``POST /api/now/table/{table}``: create one record; returns it (201).

        Not retried unless the instance surely did not process it. Raises
        TrackerBadRequest (400), TrackerPermissionError (403: ACL or data policy), others.
        """
        result, _ = self._result(
            "POST",
            f"/api/now/table/{table}",
            params=_read_params(fields, "false"),
            json_body=values,
            headers={"Content-Type": "application/json"},
        )
        return result

    def table_update(
        self, table: str, sys_id: str, values: dict, *, fields: Iterable[str] = ()
    ) -> dict:
        """``PATCH /api/now/table/{table}/{sys_id}``: change only the fields given; returns the record.

        Writing a journal field (``comments``, ``work_notes``) appends an entry. Raises
        TrackerNotFound (404), TrackerPermissionError (403, e.g. a data policy), others.
        """
        _check_sys_id(sys_id)
        result, _ = self._result(
            "PATCH",
            f"/api/now/table/{table}/{sys_id}",
            params=_read_params(fields, "false"),
            json_body=values,
            headers={"Content-Type": "application/json"},
        )
        return result

    def table_delete(self, table: str, sys_id: str) -> None:
        """``DELETE /api/now/table/{table}/{sys_id}`` (204). Raises TrackerNotFound when it is gone."""
        _check_sys_id(sys_id)
        self.request("DELETE", f"/api/now/table/{table}/{sys_id}", idempotent=True)

    # -- journal ------------------------------------------------------------------------------
    def journal_list(
        self, element_id: str, *, elements: tuple[str, ...] = ("comments",)
    ) -> list[dict]:
        """``GET /api/now/table/sys_journal_field`` rows of one record, oldest first.

        Query ``element_id=<sys_id>^element=comments`` (or ``elementIN…``), ordered by
        ``sys_created_on`` then ``sys_id`` (entries in one second need the tie-breaker).
        Rows: ``sys_id``, ``element``, ``element_id``, ``value``, ``sys_created_on`` (UTC),
        ``sys_created_by`` (user_name). An ACL can make this an empty list, not an error.
        """
        _check_sys_id(element_id)
        element_term = (
            q.term("element", "=", elements[0])
            if len(elements) == 1
            else q.term("element", "IN", q.in_list(elements))
        )
        return self.table_list(
            "sys_journal_field",
            query=q.join(q.term("element_id", "=", element_id), element_term),
            fields=("sys_id", "element", "element_id", "value", "sys_created_on", "sys_created_by"),
            order=("sys_created_on", "sys_id"),
        )

    def users_by_name(self, user_names: Iterable[str]) -> dict[str, str]:
        """``GET /api/now/table/sys_user`` for these user_names: {user_name: display name}."""
        names = sorted({n for n in user_names if n and "," not in n})
        if not names:
            return {}
        rows = self.table_list(
            "sys_user",
            query=q.term("user_name", "IN", q.in_list(names)),
            fields=("user_name", "name"),
            order=("user_name", "sys_id"),
        )
        return {r.get("user_name", ""): r.get("name", "") for r in rows if r.get("user_name")}


def _read_params(fields: Iterable[str], display_value: str) -> dict:
    params = {"sysparm_display_value": display_value, "sysparm_exclude_reference_link": "true"}
    fields = list(fields)
    if fields:
        params["sysparm_fields"] = ",".join(fields)
    return params


def _check_sys_id(sys_id: str) -> None:
    from trackers.errors import TrackerNotFound

    if not isinstance(sys_id, str) or not SYS_ID.match(sys_id):
        raise TrackerNotFound(
            f"{sys_id!r} is not a ServiceNow sys_id (32 lowercase hex characters)."
        )
