"""``serve`` supervises its children: a crashed web, worker or beat is started again, logged.

The live test runs a real node (``manage.py serve``), SIGKILLs its beat and its worker's
main process, and watches /healthz go 503 (stale heartbeat) and back to 200 once ``serve``
has started them again. Intervals are shortened through the environment.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from exalate_console.processes import ProcessGroup
from tests.live import wait_for


def test_a_crashed_child_is_restarted_with_a_growing_back_off():
    lines: list[str] = []
    group = ProcessGroup(grace=2, restarts=None, backoff=0.2, max_backoff=0.4, log=lines.append)
    crasher = group.start("crasher", [sys.executable, "-c", "import sys; sys.exit(3)"])
    steady = group.start("steady", [sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        deadline = time.monotonic() + 10
        while sum("crasher started again" in line for line in lines) < 3:
            assert group.check(), lines
            assert time.monotonic() < deadline, lines
            time.sleep(0.05)
        crashes = [line for line in lines if "crasher stopped unexpectedly" in line]
        assert "(exit 3)" in crashes[0]
        assert "starting it again in 0.2 s (crash 1 in a row)" in crashes[0]
        assert "starting it again in 0.4 s (crash 2 in a row)" in crashes[1]
        assert "starting it again in 0.4 s (crash 3 in a row)" in crashes[2]  # capped
        assert dict(group.children)["crasher"].pid != crasher.pid
        assert dict(group.children)["steady"] is steady and steady.poll() is None
    finally:
        group.stop()
    assert steady.poll() is not None


def test_without_a_restart_budget_a_crash_stops_the_group():
    lines: list[str] = []
    group = ProcessGroup(grace=2, restarts=0, log=lines.append)
    group.start("crasher", [sys.executable, "-c", "import sys; sys.exit(3)"])
    deadline = time.monotonic() + 10
    while group.check():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    group.stop()
    assert "crasher stopped unexpectedly (exit 3); stopping everything." in lines


def children(pid: int) -> dict[str, int]:
    """``{"web": pid, "worker": pid, "beat": pid}`` of a running ``serve`` process."""
    found = {}
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        for role, marker in (("web", b"gunicorn"), ("worker", b"worker"), ("beat", b"beat")):
            if marker in cmdline:
                found[role] = int(child)
    return found


def health(node) -> tuple[int, dict]:
    r = requests.get(f"{node.url}/healthz", timeout=5)
    return r.status_code, r.json()


@pytest.mark.integration
def test_serve_restarts_a_killed_beat_and_worker_and_healthz_tells(node_factory):
    node = node_factory(
        name="Supervised",
        env={"HEARTBEAT_INTERVAL": "0.5", "HEARTBEAT_STALE": "3", "SERVE_RESTART_DELAY": "5"},
    )
    assert health(node)[0] == 200
    first = children(node.proc.pid)
    assert set(first) == {"web", "worker", "beat"}, first

    for role, part in (("beat", "scheduler"), ("worker", "workers")):
        started = time.monotonic()
        subprocess.run(["kill", "-KILL", str(first[role])], check=True)
        status, body = wait_for(
            lambda part=part: (s := health(node))[0] == 503 and not s[1][part]["ok"] and s,
            timeout=15,
            what=f"/healthz saying 503 for the killed {role}",
            proc=node.proc,
            log=node.log_path,
        )
        assert body["database"]["ok"] and body["broker"]["ok"]
        assert time.monotonic() - started < 15
        wait_for(
            lambda: health(node)[0] == 200,
            timeout=40,
            what=f"/healthz 200 again after the {role} was restarted",
            proc=node.proc,
            log=node.log_path,
        )
        now = children(node.proc.pid)
        assert now[role] != first[role] and now["web"] == first["web"]
        assert node.proc.poll() is None  # the node (web included) never stopped
        log = node.log()
        assert f"{role} (celery) stopped unexpectedly (killed by SIGKILL)" in log
        assert f"{role} (celery) started again" in log
    node.stop(sig=signal.SIGTERM, timeout=90)  # a warm Celery shutdown is slow on a busy machine
    assert node.proc.returncode == 0
