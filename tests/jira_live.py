"""The Jira sandbox as a real process for integration tests (``python -m jira_adapter.sandbox``)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from jira_adapter.adapter import JiraAdapter
from jira_adapter.client import ApiToken, JiraClient, PersonalAccessToken, RetryPolicy
from tests.live import ROOT, free_port, wait_for


def sandbox_installed() -> bool:
    """True once ``jira_adapter/sandbox`` can be run with ``python -m``."""
    try:
        return importlib.util.find_spec("jira_adapter.sandbox.__main__") is not None
    except ImportError:
        return False


FAST = RetryPolicy(max_attempts=4, max_total_seconds=10, base_delay=0.05, max_delay=0.2)
EMAIL, TOKEN = "sync-bot@example.com", "sandbox-token"


class JiraSandbox:
    """One sandbox process (``flavour`` cloud or dc, seeded ``demo``) on its own port and SQLite file."""

    def __init__(self, workdir, flavour: str, *extra: str):
        self.flavour, self.port = flavour, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"jira-{flavour}.log"
        args = [sys.executable, "-m", "jira_adapter.sandbox", "--port", str(self.port), "--flavour",
                flavour, "--seed", "demo", "--db", str(workdir / f"jira-{flavour}.sqlite3"), *extra]  # fmt: skip
        env = {**os.environ, "EXALATE_VAR_DIR": str(workdir / "var")}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)  # fmt: skip
        wait_for(
            self._ready,
            timeout=30,
            what=f"Jira sandbox on {self.url}",
            proc=self.proc,
            log=self.log_path,
        )

    def _ready(self) -> bool:
        return requests.get(f"{self.url}/sandbox/stats", timeout=2).status_code == 200

    def adapter(self, email: str = EMAIL, token: str = TOKEN) -> JiraAdapter:
        creds = (
            ApiToken(email=email, token=token)
            if self.flavour == "cloud"
            else PersonalAccessToken(token=token)
        )
        return JiraAdapter(
            JiraClient(self.url, credentials=creds, flavour=self.flavour, retry=FAST, timeout=10)
        )

    def control(self, what: str, body: dict | None = None, method: str = "POST"):
        r = requests.request(method, f"{self.url}/sandbox/{what}", json=body, timeout=5)
        r.raise_for_status()
        return r.json()

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=15)


def xfail_unescaped_wiki(sandbox: JiraSandbox) -> None:
    """Jira renders ``\\*`` as ``*`` (its notation's escape); xfail where the sandbox does not yet."""
    if sandbox.flavour != "dc":
        return
    if not hasattr(sandbox, "wiki_escapes"):
        client = sandbox.adapter().client
        _, made = client.request("POST", "/rest/api/2/issue", json_body={"fields": {
            "project": {"key": "TEST"}, "issuetype": {"name": "Task"}, "summary": "probe",
            "description": "a \\*b\\* \\[c\\]"}})  # fmt: skip
        rendered = client.get(f"/rest/api/2/issue/{made['id']}", expand="renderedFields")
        sandbox.wiki_escapes = "\\" not in rendered["renderedFields"]["description"]
    if not sandbox.wiki_escapes:
        pytest.xfail(
            "the Jira sandbox's wiki renderer keeps the \\ of escaped characters (Jira drops it)"
        )


def create(adapter: JiraAdapter, project="TEST", entity_type="incident", correlation="", **kw):
    return adapter.create_entity(
        summary=kw.pop("summary", "INC0010001: Mail down\nsince 8"),
        description=kw.pop(
            "description", "Reported by *Beth*.\n\n[code]<ul><li>relay</li></ul>[/code]"
        ),
        entity_type=entity_type,
        correlation_id=correlation or f"corr-{time.monotonic_ns()}",
        correlation_display="Exalate INC0010001",
        project=project,
    )
