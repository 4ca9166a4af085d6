"""Authentication to a ServiceNow instance: Basic, or OAuth 2 through ``/oauth_token.do``.

OAuth: password grant, then refresh_token grant (ServiceNow docs "OAuth API request
parameters"). Tokens are shared by all clients of one process for the same instance and
credentials. :class:`Authentication` is a mixin of ``ServiceNowClient`` (it uses
``self.session``, ``self.base``, ``self.timeout``, ``self.calls`` and ``self.credentials``).
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from dataclasses import dataclass, field

import requests

from trackers.errors import TrackerAuthenticationError, TrackerUnreachable

from . import errors


@dataclass
class _Token:
    access: str = ""
    refresh: str = ""
    expires_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


_TOKENS: dict[tuple[str, str, str, str], _Token] = {}
_TOKENS_LOCK = threading.Lock()


class OAuthCredentials:
    """OAuth 2 password-grant credentials; the token is cached per process for these credentials."""

    def __init__(self, *, client_id: str, client_secret: str, username: str, password: str):
        self.client_id, self.client_secret = client_id, client_secret
        self.username, self.password = username, password

    def __repr__(self) -> str:
        return f"OAuthCredentials(client_id={self.client_id!r}, username={self.username!r})"

    def token_slot(self, instance_url: str) -> _Token:
        fingerprint = hashlib.sha256(f"{self.password}\0{self.client_secret}".encode()).hexdigest()
        key = (instance_url, self.client_id, self.username, fingerprint)
        with _TOKENS_LOCK:
            return _TOKENS.setdefault(key, _Token())


class BasicCredentials:
    """User name and password sent with every request (Basic authentication, UTF-8)."""

    def __init__(self, *, username: str, password: str):
        self.username, self.password = username, password

    def __repr__(self) -> str:
        return f"BasicCredentials(username={self.username!r})"

    def header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


class Authentication:
    """The ``Authorization`` header for each request, fetching and refreshing OAuth tokens."""

    def _authorization(self) -> str:
        if isinstance(self.credentials, BasicCredentials):
            return self.credentials.header()
        slot = self.credentials.token_slot(self.base)
        with slot.lock:
            if not slot.access or slot.expires_at <= time.time() + 30:
                self._oauth_fetch(slot, use_refresh=bool(slot.refresh))
            return f"Bearer {slot.access}"

    def _oauth_refresh(self, used_header: str) -> None:
        """After a 401 with a bearer token: refresh it once (unless another thread already did)."""
        slot = self.credentials.token_slot(self.base)
        with slot.lock:
            if f"Bearer {slot.access}" == used_header:
                self._oauth_fetch(slot, use_refresh=bool(slot.refresh))

    def _oauth_fetch(self, slot: _Token, *, use_refresh: bool) -> None:
        """Get a token: refresh_token grant when we have one (falling back to the password grant)."""
        creds: OAuthCredentials = self.credentials  # type: ignore[assignment]
        form = {"client_id": creds.client_id, "client_secret": creds.client_secret}
        if use_refresh:
            answer = self._token_request(
                {**form, "grant_type": "refresh_token", "refresh_token": slot.refresh}
            )
            if answer is not None:
                slot.access = answer["access_token"]
                slot.refresh = answer.get("refresh_token") or slot.refresh
                slot.expires_at = time.time() + float(answer.get("expires_in") or 1800)
                return
        answer = self._token_request(
            {
                **form,
                "grant_type": "password",
                "username": creds.username,
                "password": creds.password,
            }
        )
        if answer is None:
            slot.access, slot.refresh, slot.expires_at = "", "", 0.0
            raise TrackerAuthenticationError(
                "ServiceNow refused the OAuth token request: check the client id, client secret, "
                "user name and password.",
                status=401,
            )
        slot.access = answer["access_token"]
        slot.refresh = answer.get("refresh_token", "")
        slot.expires_at = time.time() + float(answer.get("expires_in") or 1800)

    def _token_request(self, form: dict) -> dict | None:
        """POST /oauth_token.do (form-encoded); the token JSON, or None when the grant is refused."""
        what = "POST /oauth_token.do"
        try:
            self.calls += 1
            response = self.session.post(
                f"{self.base}/oauth_token.do",
                data=form,
                headers={"Accept": "application/json"},
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise TrackerUnreachable(
                f"Could not reach {self.base} for an OAuth token: {errors.failure_reason(exc)}"
            ) from None
        if response.status_code in (400, 401, 403):
            return None
        payload = errors.parse_json(response)
        if response.status_code >= 300:
            raise errors.error_for(response, payload, what)
        if not isinstance(payload, dict) or "access_token" not in payload:
            raise errors.NotATrackerInstance(f"The answer to {what} carries no access_token.")
        return payload
