"""Bad environment values stop start-up with a message naming the variable."""

import os
import subprocess
import sys

import pytest

from tests.live import ROOT


def _check(env_overrides: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    env = os.environ.copy()
    env.pop("DATABASE_URL", None)
    env["EXALATE_VAR_DIR"] = str(tmp_path / "var")
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "not a url"),
        ("DATABASE_URL", "mysql://root@localhost/x"),
        ("DEBUG", "maybe"),
        ("CELERY_BROKER_URL", "kafka://x"),
        ("NODE_PUBLIC_URL", "ftp://example.com"),
        ("SERVICENOW_AUTH", "kerberos"),
        ("CELERY_WORKER_CONCURRENCY", "lots"),
        ("FIELD_ENCRYPTION_KEY", "short"),
    ],
)
def test_bad_environment_value_stops_start_up_naming_the_variable(name, value, tmp_path):
    result = _check({name: value}, tmp_path)
    assert result.returncode != 0
    assert name in result.stderr
    assert "Traceback" not in result.stderr


def test_good_environment_starts_and_keeps_generated_keys_under_var(tmp_path):
    result = _check({"DEBUG": "true"}, tmp_path)
    assert result.returncode == 0, result.stderr
    secret_key = tmp_path / "var" / "secret_key"
    field_key = tmp_path / "var" / "field_encryption_key"
    assert secret_key.exists() and field_key.exists()
    assert oct(secret_key.stat().st_mode & 0o777) == "0o600"
    first = secret_key.read_text()
    assert _check({}, tmp_path).returncode == 0
    assert secret_key.read_text() == first


def test_secret_can_come_from_a_file(tmp_path):
    key_file = tmp_path / "key.txt"
    key_file.write_text("from-a-file-" + "x" * 40)
    result = _check({"SECRET_KEY_FILE": str(key_file)}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "var" / "secret_key").exists()
    missing = _check({"SECRET_KEY_FILE": str(tmp_path / "nope")}, tmp_path)
    assert missing.returncode != 0 and "SECRET_KEY_FILE" in missing.stderr
