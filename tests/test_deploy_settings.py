"""The README's production settings make ``manage.py check --deploy`` clean, and they take effect.

The values are read from the README's Production section itself, so the two cannot drift.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from tests.live import ROOT


def readme_production_env() -> dict[str, str]:
    """The ``NAME=value`` lines of the first ``sh`` block in README.md's Production section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Production\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return dict(line.split("=", 1) for line in block.split("\n") if "=" in line)


def run_check(env_overrides: dict[str, str], tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECURE_", "DJANGO_"))}
    env.pop("DATABASE_URL", None)
    env.update(
        EXALATE_VAR_DIR=str(tmp_path / "var"),
        SECRET_KEY=secrets.token_urlsafe(50),
        FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode(),
    )
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_is_clean_with_the_readme_production_settings(tmp_path):
    env = readme_production_env()
    assert {"SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_PROXY_SSL_HEADER"} <= set(env)
    result = run_check(env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_warns_without_them(tmp_path):
    result = run_check({}, tmp_path)
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr


def test_a_bad_proxy_header_stops_start_up_naming_the_variable(tmp_path):
    result = run_check({"SECURE_PROXY_SSL_HEADER": "X Forwarded Proto"}, tmp_path)
    assert result.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.django_db
def test_behind_the_proxy_https_is_enforced_except_for_healthz(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.ALLOWED_HOSTS = ["exalate.example.com"]
    plain = client.get("/login/", HTTP_HOST="exalate.example.com")
    assert plain.status_code == 301
    assert plain["Location"] == "https://exalate.example.com/login/"
    secure = client.get("/login/", HTTP_HOST="exalate.example.com", HTTP_X_FORWARDED_PROTO="https")
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    health = client.get("/healthz", HTTP_HOST="exalate.example.com")
    assert health.status_code in (200, 503)  # answered over plain HTTP, not redirected


def test_every_page_has_a_content_security_policy_without_inline_script(client, db):
    policy = client.get("/login/")["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
