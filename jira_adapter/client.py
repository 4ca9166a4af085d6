"""A thin client of the Jira REST API: Cloud (``/rest/api/3``) and Data Center (``/rest/api/2``).

Why not a library (jira-api.md §11; both read at the versions pinned there): ``jira``
(pycontribs 3.10.5) defaults to REST v2 without ADF, retries POST on 429/503 and
connection errors (duplicate comments), waits ``min(60, 2·Retry-After)·[0.5, 1]`` (less
than asked), reads one page of comments, and uploads only from a seekable file;
``atlassian-python-api`` 5.0.5's ``Jira`` is v2-first, builds multipart bodies in memory,
returns attachment bytes whole, and its urllib3 ``Retry`` uses ``allowed_methods=None``
(POST retried). This client is requests plus the project's own retry loop (as
``servicenow_adapter.client``) and ``requests_toolbelt``'s streaming multipart encoder.

Retries: GET, PUT and search are retried on transient errors with exponential backoff and
jitter, never sooner than ``Retry-After`` (``trackers.retry_after``); a create (POST) only
when Jira surely did not process it (connection refused, 429). Redirects are never
followed with credentials to another host.

Throttle: with a :class:`trackers.throttle.Throttle` (the adapter passes the node's), each
try takes one of the site's slots and tokens, shared by every process of the node, and
gives them back when the answer is read (a download holds its slot until the stream is
closed). Jira Cloud's 429 (burst and cost-based limits) slows the node down for everyone
and its ``Retry-After`` holds every request; a wait beyond the retry budget raises
``InstanceBusy`` (transient, with ``retry_after``).
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import requests

from trackers.errors import (
    NotATrackerInstance,
    TrackerError,
    TrackerNotFound,
    TrackerUnreachable,
    TransientTrackerError,
)
from trackers.http import NO_RETRY, RetryPolicy
from trackers.throttle import Lease, Throttle

from . import errors

log = logging.getLogger(__name__)

CLOUD, DC = "cloud", "dc"
COMMENT_PAGE = 100


class ApiToken:
    """Jira Cloud: the account's e-mail and an API token, sent as Basic authentication."""

    def __init__(self, *, email: str, token: str):
        self.username, self._token = email, token

    def header(self) -> str:
        """The ``Authorization`` header value."""
        raw = f"{self.username}:{self._token}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def __repr__(self) -> str:
        return f"ApiToken(email={self.username!r})"


class PersonalAccessToken:
    """Jira Data Center 8.14+: a personal access token, sent as ``Bearer``."""

    def __init__(self, *, token: str, username: str = ""):
        self.username, self._token = username, token

    def header(self) -> str:
        """The ``Authorization`` header value."""
        return f"Bearer {self._token}"

    def __repr__(self) -> str:
        return "PersonalAccessToken()"


class JiraClient:
    """HTTP client of one Jira site. ``flavour`` is ``cloud`` or ``dc``, or '' to detect it
    once from ``/rest/api/2/serverInfo`` (``deploymentType``). ``throttle``: the node's
    :class:`trackers.throttle.Throttle` (None: no limits). Not thread-safe."""

    def __init__(
        self,
        base: str,
        *,
        credentials: ApiToken | PersonalAccessToken,
        flavour: str = "",
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        throttle: Throttle | None = None,
    ):
        self.base = base.rstrip("/")
        self.credentials = credentials
        self._flavour = flavour if flavour in (CLOUD, DC) else ""
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.session = session or requests.Session()
        self.session.trust_env = False
        self.calls = 0
        self.throttle = throttle

    def __repr__(self) -> str:
        return f"JiraClient({self.base!r}, {self.credentials!r}, flavour={self._flavour!r})"

    @property
    def flavour(self) -> str:
        """``cloud`` or ``dc``: explicit, a ``*.atlassian.net`` host, or serverInfo's deploymentType."""
        if not self._flavour:
            host = (urlsplit(self.base).hostname or "").lower()
            if host.endswith((".atlassian.net", ".jira.com")):
                self._flavour = CLOUD
            else:
                try:
                    info = self.server_info()
                except (TrackerNotFound, NotATrackerInstance):
                    info = {}
                if info.get("deploymentType"):
                    self._flavour = CLOUD if info["deploymentType"] == "Cloud" else DC
                else:  # serverInfo hidden: only Cloud has REST v3
                    try:
                        self.request("GET", "/rest/api/3/myself", retry=NO_RETRY)
                        self._flavour = CLOUD
                    except (TrackerNotFound, NotATrackerInstance):
                        self._flavour = DC
        return self._flavour

    @property
    def api(self) -> str:
        """``/rest/api/3`` on Cloud, ``/rest/api/2`` on Data Center."""
        return "/rest/api/3" if self.flavour == CLOUD else "/rest/api/2"

    # -- the request loop ---------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json_body: Any = None,
        body: Callable[[], tuple[Any, dict]] | None = None,
        headers: dict | None = None,
        stream: bool = False,
        idempotent: bool | None = None,
        retry: RetryPolicy | None = None,
        authenticated: bool = True,
    ) -> tuple[requests.Response, Any]:
        """Send one request with auth, timeout and retries; returns (response, parsed JSON or None).

        ``path`` is absolute on the site (``/rest/api/3/issue``). ``body`` builds (data,
        headers) afresh for each try (a multipart stream). ``idempotent`` defaults to True for
        GET/PUT/DELETE. Raises the ``trackers.errors`` types (see ``jira_adapter.errors``).
        """
        policy = retry or self.retry
        idempotent = (
            method in ("GET", "HEAD", "PUT", "DELETE") if idempotent is None else idempotent
        )
        what = f"{method} {path}"
        started, attempt = time.monotonic(), 0
        while True:
            attempt += 1
            sent = {"Accept": "application/json", **(headers or {})}
            if authenticated:
                sent["Authorization"] = self.credentials.header()
            data = None
            if body is not None:
                data, extra = body()
                sent.update(extra)
            not_processed = False
            lease = self._lease(what, policy, started, attempt)
            try:
                self.calls += 1
                response = self.session.request(
                    method, f"{self.base}{path}", params=params, json=json_body, data=data,
                    headers=sent, timeout=self.timeout, stream=stream, allow_redirects=False,
                )  # fmt: skip
            except requests.RequestException as exc:
                not_processed = errors.not_sent(exc)
                error: TrackerError = TrackerUnreachable(
                    f"Could not reach Jira at {self.base} ({what}): {errors.failure_reason(exc)}"
                )
            else:
                try:
                    payload = self._check(response, what, stream=stream)
                    if stream and lease is not None:
                        lease.hold(response)  # the slot is held until the stream is closed
                        lease = None
                    return response, payload
                except TrackerError as exc:
                    response.close()
                    error = exc
                    not_processed = response.status_code == 429
                    if response.status_code == 429 and self.throttle is not None:
                        self.throttle.too_fast(self.base, getattr(exc, "retry_after", None))
            finally:
                if lease is not None:
                    lease.release()
            if not isinstance(error, TransientTrackerError):
                raise error
            if not (idempotent or not_processed) or attempt >= policy.max_attempts:
                raise error
            wait = policy.delay(attempt, error.retry_after)
            if time.monotonic() - started + wait > policy.max_total_seconds:
                raise error
            log.info("Jira %s: %s; retry %d in %.2fs", what, error.message, attempt, wait)
            time.sleep(wait)

    def _lease(self, what: str, policy: RetryPolicy, started: float, attempt: int) -> Lease | None:
        """A slot and a token for one try (None without a throttle), waiting at most what is
        left of the retry budget (a Retry-After only when another try is allowed). Raises
        ``InstanceBusy``."""
        if self.throttle is None:
            return None
        left = max(0.0, policy.max_total_seconds - (time.monotonic() - started))
        return self.throttle.acquire(
            self.base, budget=left, busy_budget=left if attempt < policy.max_attempts else 0.0,
            ttl=self.timeout + 5, label="Jira", what=what,
        )  # fmt: skip

    def _check(self, response: requests.Response, what: str, *, stream: bool):
        status = response.status_code
        if 200 <= status < 300:
            if stream or status == 204 or not response.content:
                return None
            try:
                return errors.parse_json(response)
            except errors.NonJSONAnswer as exc:
                raise errors.NonJSONAnswer(
                    f"{self.base} {exc.message} on {what}: is this the address of a Jira site?",
                    status=status,
                ) from None
        if 300 <= status < 400 and not stream:
            raise NotATrackerInstance(
                f"{self.base} redirected {what} to {response.headers.get('Location', '?')} "
                "(a login page or a wrong URL?).",
                status=status,
            )
        if 300 <= status < 400:
            return None  # a stream's redirect: the caller follows it
        try:
            payload = errors.parse_json(response)
        except errors.NonJSONAnswer as exc:
            if status >= 500 or status == 429:
                payload = None
            elif status == 401:
                payload = None  # Jira's 401 is often a page, not the envelope
            else:
                raise errors.NonJSONAnswer(
                    f"{self.base} {exc.message} on {what}: is this the address of a Jira site?",
                    status=status,
                ) from None
        raise errors.error_for(response, payload, what, site=self.base)

    def get(self, path: str, **params) -> Any:
        """GET ``path`` with query ``params``; the parsed JSON."""
        return self.request("GET", path, params=params or None)[1]

    # -- reading -----------------------------------------------------------------------------
    def server_info(self) -> dict:
        """``GET /rest/api/2/serverInfo`` (no authentication needed): baseUrl, version, deploymentType."""
        _, payload = self.request("GET", "/rest/api/2/serverInfo", authenticated=False)
        if not isinstance(payload, dict) or not ("version" in payload or "baseUrl" in payload):
            raise NotATrackerInstance(
                f"{self.base} answered /rest/api/2/serverInfo without Jira's server information: "
                "is this the address of a Jira site?"
            )
        if not self._flavour and payload.get("deploymentType"):
            self._flavour = CLOUD if payload["deploymentType"] == "Cloud" else DC
        return payload

    def paged(self, path: str, key: str, *, page: int = 50, **params) -> Iterator[dict]:
        """Every item of a ``startAt``/``maxResults`` list under ``key`` (``values`` also accepted).

        Stops at ``isLast``, at ``total``, or on an empty page — never on a short page alone.
        """
        start = 0
        for _ in range(10_000):
            payload = self.get(path, startAt=start, maxResults=page, **params)
            if isinstance(payload, list):  # DC's non-paged lists
                yield from payload
                return
            items = payload.get(key, payload.get("values", [])) if isinstance(payload, dict) else []
            yield from items
            start += len(items)
            total = payload.get("total")
            if not items or payload.get("isLast") or (isinstance(total, int) and start >= total):
                return

    def search(
        self, jql: str, *, fields: list[str], properties: list[str] = (), reconcile: list[str] = ()
    ) -> Iterator[dict]:
        """Issues matching ``jql``: Cloud ``POST /rest/api/3/search/jql`` paged by ``nextPageToken``
        (up to 50 ``reconcile`` ids read-after-write), DC ``POST /rest/api/2/search`` by ``startAt``."""
        if self.flavour == CLOUD:
            token = None
            for _ in range(100_000):
                request = {"jql": jql, "fields": list(fields), "maxResults": 100}
                if properties:
                    request["properties"] = list(properties)
                if reconcile:
                    request["reconcileIssues"] = [
                        int(i) for i in list(reconcile)[:50] if i.isdigit()
                    ]
                if token:
                    request["nextPageToken"] = token
                _, payload = self.request(
                    "POST", "/rest/api/3/search/jql", json_body=request, idempotent=True
                )
                yield from payload.get("issues") or []
                token = payload.get("nextPageToken")
                if payload.get("isLast", not token) or not token:
                    return
            return
        start = 0
        for _ in range(100_000):
            request = {"jql": jql, "fields": list(fields), "startAt": start, "maxResults": 100}
            if properties:
                request["properties"] = list(properties)
            _, payload = self.request(
                "POST", "/rest/api/2/search", json_body=request, idempotent=True
            )
            issues = payload.get("issues") or []
            yield from issues
            start += len(issues)
            if not issues or start >= int(payload.get("total") or 0):
                return

    def comments(self, issue_id: str) -> list[dict]:
        """Every comment of an issue, oldest first, with ``renderedBody``: the comment endpoint paged
        on ``startAt`` (never the list embedded in the issue, which search cuts at 20)."""
        return list(
            self.paged(
                f"{self.api}/issue/{issue_id}/comment",
                "comments",
                page=COMMENT_PAGE,
                orderBy="created",
                expand="renderedBody",
            )  # fmt: skip
        )

    # -- attachments -------------------------------------------------------------------------
    def download(self, attachment_id: str, *, chunk_size: int) -> Iterator[bytes]:
        """Yield an attachment's bytes. Cloud: ``content/{id}?redirect=false``; DC: the
        metadata's ``content`` servlet URL on this site. A redirect to another host is
        followed without credentials."""
        if self.flavour == CLOUD:
            path = f"/rest/api/3/attachment/content/{attachment_id}"
            response, _ = self.request("GET", path, params={"redirect": "false"}, stream=True,
                                       headers={"Accept": "*/*"})  # fmt: skip
        else:
            meta = self.get(f"/rest/api/2/attachment/{attachment_id}")
            content = urlsplit(str(meta.get("content") or ""))
            path = content.path or f"/secure/attachment/{attachment_id}/"
            if content.query:
                path += f"?{content.query}"
            response, _ = self.request("GET", path, stream=True, headers={"Accept": "*/*"})
        if 300 <= response.status_code < 400:
            location = response.headers.get("Location", "")
            response.close()
            same_host = urlsplit(location).netloc in ("", urlsplit(self.base).netloc)
            # Back to this site: one more request on its limits (another host is not Jira's).
            lease = (
                self._lease(f"GET {path}", self.retry, time.monotonic(), 1) if same_host else None
            )
            try:
                response = self.session.get(
                    location if urlsplit(location).netloc else f"{self.base}{location}",
                    headers={"Authorization": self.credentials.header()} if same_host else {},
                    stream=True, timeout=self.timeout,
                )  # fmt: skip
            except requests.RequestException as exc:
                if lease is not None:
                    lease.release()
                raise TrackerUnreachable(
                    f"Download of attachment {attachment_id} failed: {errors.failure_reason(exc)}"
                ) from None
            if lease is not None:
                lease.hold(response)
            if response.status_code != 200:
                response.close()
                raise TransientTrackerError(
                    f"Download of attachment {attachment_id} was answered {response.status_code}.",
                    status=response.status_code,
                )
        return _iter_body(response, chunk_size, attachment_id)


def _iter_body(response: requests.Response, chunk_size: int, attachment_id: str) -> Iterator[bytes]:
    try:
        yield from response.iter_content(chunk_size=chunk_size)
    except requests.RequestException as exc:
        raise TransientTrackerError(
            f"Download of attachment {attachment_id} broke off: {errors.failure_reason(exc)}"
        ) from None
    finally:
        response.close()
