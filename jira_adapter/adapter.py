"""``JiraAdapter``: the ``trackers.interface.TrackerAdapter`` of a Jira site (Cloud or Data Center).

Calls per operation (Cloud paths; DC uses ``/rest/api/2`` and ``/search``):

=====================  ===========================================================================
test_connection        serverInfo + myself + project search + attachment/meta (see ``checks``)
find_entity/get_entity issue GET (a moved issue's old key still resolves; the answer has the new key)
read_replica           issue GET ``expand=renderedFields`` (+ text properties) + comment pages + (once per process) myself
                       + the bytes of each attachment not hashed before by this process
stream_attachment      ``attachment/content/{id}?redirect=false``, streamed
create_entity          createmeta issue types + fields (cached 5 min) + issue POST with the
                       ``exalate.correlation`` property + property GET (re-PUT when missing)
update_entity          issue PUT of the given fields only (none: no request)
add_comment            comment POST (ADF on Cloud, wiki on DC)
add_attachment         attachment/meta (once) + multipart POST from a spooled, hashed copy
list_changed / find_entity_by_correlation   JQL search (see ``changes``)
=====================  ===========================================================================

Identity is the issue **id**; keys are refreshed from every read (jira-api.md §1.4).
Configuration: ``TrackerConfig.auth_method`` is ``cloud`` (e-mail + API token, Basic,
REST v3, ADF), ``dc`` (personal access token as Bearer, REST v2, wiki markup) or ''
(detected: a ``*.atlassian.net`` host or serverInfo's ``deploymentType``; Basic when an
e-mail/user name is given, else Bearer).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator

from django.conf import settings

from trackers.errors import TrackerAuthenticationError, TrackerError, TrackerNotFound
from trackers.interface import (
    EntityRef,
    SettingsFields,
    TrackerAdapter,
    TrackerConfig,
    WebhookHint,
)
from trackers.throttle import NODE as NODE_THROTTLE

from . import mapping, webhooks
from .changes import ChangeListing
from .checks import ConnectionCheck
from .client import CLOUD, DC, ApiToken, JiraClient, PersonalAccessToken, RetryPolicy
from .writes import CACHE_LOCK, HASHES, IssueWriter, remember_hash

KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,254}-[1-9][0-9]{0,17}$")
_BROWSE = re.compile(r"/browse/([A-Za-z][A-Za-z0-9_]*-\d+)")
ISSUE_FIELDS = "summary,description,issuetype,project,updated,created,attachment"
_ACCOUNTS: dict[tuple[str, str], tuple[str, float]] = {}


class JiraAdapter(ConnectionCheck, ChangeListing, IssueWriter, TrackerAdapter):
    """Reads and writes issues of one Jira site through :class:`JiraClient`. One per task."""

    tracker = "jira"
    display_name = "Jira"
    entity_label = "issue"
    key_label = "issue key"
    key_example = "TEST-1"
    has_projects = True
    #: Types passed through by Basic rules; the project decides what is created
    #: (same name if the project has it, else Task, else its default type).
    entity_types = ("incident", "task", "bug", "story", "epic", "problem", "change",
                    "service request", "improvement", "new feature")  # fmt: skip

    def __init__(self, client: JiraClient):
        self.client = client
        self.base = client.base
        self.username = client.credentials.username
        self._keys: dict[str, str] = {}
        self._attachment_meta: dict | None = None

    def __repr__(self) -> str:
        return f"JiraAdapter({self.base!r}, user={self.username!r})"

    # -- the tracker itself ----------------------------------------------------------------
    @classmethod
    def normalize_key(cls, key: str) -> str:
        """An issue key as Jira shows it: ``test-1`` → ``TEST-1`` (project part upper-cased)."""
        key = (key or "").strip()
        if "-" in key and KEY_RE.match(key):
            project, number = key.rsplit("-", 1)
            return f"{project.upper()}-{number}"
        return key

    @classmethod
    def key_problem(cls, key: str) -> str | None:
        """Why a typed text cannot be an issue key, id or ``/browse/`` link (admin words), or None."""
        key = (key or "").strip()
        if KEY_RE.match(key) or (key.isdigit() and len(key) <= 18) or _BROWSE.search(key):
            return None
        return "Enter an issue key such as TEST-1 (the project key, a dash and the issue number)."

    @classmethod
    def environment_config(cls) -> TrackerConfig | None:
        """``JIRA_INSTANCE_URL`` with ``JIRA_AUTH`` (cloud|dc|''), ``JIRA_EMAIL`` and
        ``JIRA_API_TOKEN`` (Cloud API token or DC personal access token), when set."""
        url = getattr(settings, "JIRA_INSTANCE_URL", "")
        if not url:
            return None
        return TrackerConfig(
            tracker="jira",
            instance_url=url,
            auth_method=getattr(settings, "JIRA_AUTH", ""),
            username=getattr(settings, "JIRA_EMAIL", ""),
            password=getattr(settings, "JIRA_API_TOKEN", ""),
            client_id="",
            client_secret="",
            from_env=True,
        )

    #: A Jira webhook carries the whole issue (fields, up to 20 comments): up to 1 MB.
    webhook_max_bytes = 1_000_000

    @classmethod
    def settings_fields(cls) -> SettingsFields:
        """General settings for a Jira site: Cloud (e-mail + API token) or Data Center (PAT)."""
        return SettingsFields(
            instance_url_label="Jira site URL",
            instance_url_example="https://yourcompany.atlassian.net",
            auth_methods=(
                ("cloud", "Jira Cloud (e-mail and API token)"),
                ("dc", "Jira Data Center (personal access token)"),
            ),
            username_label="E-mail",
            username_help=(
                "The integration account's e-mail (Jira Cloud). Leave empty for a Data Center "
                "personal access token. It needs Browse projects, Create issues, Add comments "
                "and Create attachments in the projects that receive mirrors."
            ),
            username_required_for=("cloud",),
            password_label="API token / personal access token",
            password_help=(
                "Jira Cloud: an API token of the e-mail's account (id.atlassian.com → Security). "
                "Data Center: a personal access token (Profile → Personal Access Tokens)."
            ),
            client_auth_methods=(),
            webhook_help=(
                "In Jira, System → WebHooks → Create a WebHook: URL {url}, a Secret (this "
                "node's webhook token, or JIRA_WEBHOOK_SECRET when set), events Issue created, "
                "updated, Comment created, updated and Attachment created. Jira signs each "
                "call with X-Hub-Signature."
            ),
        )

    @classmethod
    def authenticate_webhook(cls, headers, body: bytes, secret: str) -> None:
        """Check ``X-Hub-Signature`` (HMAC-SHA256 of the body) against ``JIRA_WEBHOOK_SECRET``
        when set, else ``secret`` (this node's webhook token). Raises ValueError (admin words)."""
        secret = getattr(settings, "JIRA_WEBHOOK_SECRET", "") or secret
        if not secret:
            raise ValueError("No webhook secret is set on this node: generate a webhook token.")
        webhooks.verify_signature(body, headers.get("X-Hub-Signature"), secret)

    @classmethod
    def parse_webhook(cls, body: bytes) -> list[WebhookHint]:
        """The issue an admin webhook announces (see :func:`jira_adapter.webhooks.parse_webhook`)."""
        return webhooks.parse_webhook(body)

    @classmethod
    def verify_webhook_signature(cls, body: bytes, signature: str | None, secret: str) -> None:
        """Check ``X-Hub-Signature`` against ``secret`` (see :func:`jira_adapter.webhooks.verify_signature`)."""
        webhooks.verify_signature(body, signature, secret)

    @classmethod
    def from_config(cls, config: TrackerConfig) -> JiraAdapter:
        """Build from General settings or the environment; timeouts and retries from
        ``JIRA_TIMEOUT`` (30 s), ``JIRA_RETRY_ATTEMPTS`` (4), ``JIRA_RETRY_MAX_SECONDS`` (60);
        the node's throttle (``trackers.throttle``) paces every request.
        Raises TrackerError / TrackerAuthenticationError when the configuration is incomplete."""
        if config.tracker and config.tracker != "jira":
            raise TrackerError(f"This node's tracker is {config.tracker!r}, not Jira.")
        url = (config.instance_url or "").strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise TrackerError("The Jira site URL is missing or does not start with https://.")
        method = (config.auth_method or "").strip().lower()
        flavour = method if method in (CLOUD, DC) else ""
        if not config.password:
            raise TrackerAuthenticationError(
                "Enter the Jira API token (Cloud) or personal access token (Data Center)."
            )
        if flavour == CLOUD and not config.username:
            raise TrackerAuthenticationError(
                "Jira Cloud needs the account's e-mail with the API token."
            )
        if flavour == DC or (not flavour and not config.username):
            credentials = PersonalAccessToken(token=config.password, username=config.username)
        else:
            credentials = ApiToken(email=config.username, token=config.password)
        retry = RetryPolicy(
            max_attempts=getattr(settings, "JIRA_RETRY_ATTEMPTS", 4),
            max_total_seconds=getattr(settings, "JIRA_RETRY_MAX_SECONDS", 60.0),
        )
        client = JiraClient(
            url, credentials=credentials, flavour=flavour,
            timeout=getattr(settings, "JIRA_TIMEOUT", 30.0), retry=retry, throttle=NODE_THROTTLE,
        )  # fmt: skip
        return cls(client)

    # -- finding ----------------------------------------------------------------------------
    def find_entity(self, key: str) -> EntityRef:
        """Look up an issue by key (``TEST-1``), id or ``/browse/`` link. A moved issue's old
        key resolves to it under its new key. Raises TrackerNotFound."""
        key = (key or "").strip()
        found = _BROWSE.search(key)
        if found:
            key = found.group(1)
        if self.key_problem(key):
            raise TrackerNotFound(self.key_problem(key) or "")
        return self._lookup(self.normalize_key(key), f"issue {self.normalize_key(key)}")

    def get_entity(self, entity_id: str) -> EntityRef:
        """Look up an issue by id (``GET …/issue/{id}``). Raises TrackerNotFound."""
        return self._lookup(str(entity_id), f"issue with id {entity_id}")

    def _lookup(self, id_or_key: str, label: str) -> EntityRef:
        try:
            issue = self.client.get(
                f"{self.client.api}/issue/{id_or_key}", fields="issuetype,project"
            )
        except TrackerNotFound:
            raise TrackerNotFound(
                f"There is no {label} on {self.base} that this account can see."
            ) from None
        return self._ref(issue)

    def _ref(self, issue: dict) -> EntityRef:
        issue_id, key = str(issue.get("id") or ""), str(issue.get("key") or "")
        self._keys[issue_id] = key
        kind = ((issue.get("fields") or {}).get("issuetype") or {}).get("name") or ""
        return EntityRef(
            id=issue_id, key=key, url=mapping.browse_url(self.base, key), entity_type=kind
        )

    def entity_url(self, entity_id: str) -> str:
        """``<site>/browse/<KEY>`` when the key was seen, else ``<site>/secure/ViewIssue.jspa?id=<id>``."""
        key = self._keys.get(str(entity_id))
        if key:
            return mapping.browse_url(self.base, key)
        return f"{self.base}/secure/ViewIssue.jspa?id={entity_id}"

    # -- reading ----------------------------------------------------------------------------
    def own_account(self) -> str:
        """The integration account's id (Cloud ``accountId``, DC ``key``), from ``/myself`` once an hour."""
        slot = (self.base, hashlib.sha256(self.client.credentials.header().encode()).hexdigest())
        with CACHE_LOCK:
            hit = _ACCOUNTS.get(slot)
        if hit and hit[1] > time.monotonic():
            return hit[0]
        account = mapping.author_id(self.client.get(f"{self.client.api}/myself"))
        with CACHE_LOCK:
            _ACCOUNTS[slot] = (account, time.monotonic() + 3600)
        return account

    def read_replica(self, entity_id: str) -> dict:
        """The replica v1 of an issue (see ``jira_adapter.mapping.issue_to_replica``).

        Attachments get their SHA-256 from this process's memory or by reading their bytes
        once (Jira reports no hash). Raises TrackerNotFound and the other tracker errors.
        """
        try:
            issue = self.client.get(
                f"{self.client.api}/issue/{entity_id}",
                fields=ISSUE_FIELDS,
                expand="renderedFields",
                properties=f"{mapping.SUMMARY_PROPERTY},{mapping.DESCRIPTION_PROPERTY}",
            )
        except TrackerNotFound:
            raise TrackerNotFound(
                f"There is no issue with id {entity_id} on {self.base} that this account can see."
            ) from None
        self._ref(issue)
        comments = self.client.comments(str(issue.get("id") or entity_id))
        own = self.own_account()
        rows = mapping.own_filtered((issue.get("fields") or {}).get("attachment") or [], own)
        hashes = {str(a.get("id")): self._sha256(str(a.get("id"))) for a in rows}
        return mapping.issue_to_replica(
            issue, comments, base=self.base, own_account=own, sha256s=hashes
        )

    def _sha256(self, attachment_id: str) -> str:
        slot = (self.base, attachment_id)
        with CACHE_LOCK:
            if slot in HASHES:
                return HASHES[slot]
        digest = hashlib.sha256()
        for chunk in self.client.download(attachment_id, chunk_size=1 << 16):
            digest.update(chunk)
        return remember_hash(slot, digest.hexdigest())

    def stream_attachment(self, attachment_id: str, chunk_size: int = 65536) -> Iterator[bytes]:
        """Yield an attachment's bytes (streamed; see :meth:`JiraClient.download`). Raises TrackerNotFound."""
        return self.client.download(attachment_id, chunk_size=chunk_size)
