"""A small supervisor for the processes of ``serve`` and ``demo``: start, watch, stop together."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence


class ProcessGroup:
    """Children started together and stopped together (SIGTERM, then SIGKILL after ``grace`` s).

    ``run_until_signal()`` returns 0 after Ctrl-C / SIGTERM, or 1 when a child exits on its own
    and the ``restarts`` budget (how many crashed children may be started again) is spent.

    With ``own_sessions=True`` each child (and whatever it starts) runs in a process group
    of its own, so stopping signals the whole tree and the SIGKILL escalation leaves no
    orphan behind (``demo`` uses this for its ``serve`` children). Without it, children
    share our group, so whoever stops *us* with ``killpg`` also stops them (``serve``).
    """

    def __init__(
        self, *, grace: float = 10.0, own_sessions: bool = False, restarts: int = 0, log=print
    ):
        self.children: list[tuple[str, subprocess.Popen]] = []
        self._specs: dict[int, tuple[Sequence[str], dict | None, dict]] = {}
        self.grace = grace
        self.own_sessions = own_sessions
        self.restarts_left = restarts
        self.log = log

    def start(
        self, label: str, args: Sequence[str], *, env: dict[str, str] | None = None, **popen
    ) -> subprocess.Popen:
        proc = subprocess.Popen(list(args), env=env, start_new_session=self.own_sessions, **popen)
        self.children.append((label, proc))
        self._specs[id(proc)] = (args, env, popen)
        return proc

    def _restart(self, index: int) -> bool:
        """Start child ``index`` again if the restart budget allows; True when restarted."""
        if self.restarts_left <= 0:
            return False
        self.restarts_left -= 1
        label, old = self.children[index]
        args, env, popen = self._specs.pop(id(old))
        self.log(f"{label} stopped unexpectedly (exit {old.returncode}); starting it again.")
        proc = subprocess.Popen(list(args), env=env, start_new_session=self.own_sessions, **popen)
        self.children[index] = (label, proc)
        self._specs[id(proc)] = (args, env, popen)
        return True

    def wait_http(self, url: str, *, timeout: float = 60.0) -> bool:
        """Poll ``url`` until it answers (any status below 500) or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p.poll() is not None for _, p in self.children):
                return False
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback URL we built
                    if resp.status < 500:
                        return True
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    return True
            except OSError:
                pass
            time.sleep(0.2)
        return False

    def run_until_signal(self) -> int:
        """Block until SIGINT/SIGTERM or a child's exit, then stop all; returns the exit code."""
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        code = 0
        while not stopping:
            for label, proc in self.children:
                if proc.poll() is not None:
                    self.log(
                        f"{label} stopped unexpectedly (exit {proc.returncode}); stopping everything."
                    )
                    stopping, code = True, 1
                    break
            time.sleep(0.3)
        self.stop()
        return code

    def _signal(self, proc: subprocess.Popen, sig: int, *, group: bool = False) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group and self.own_sessions:
                os.killpg(proc.pid, sig)
            elif proc.poll() is None:
                proc.send_signal(sig)

    def stop(self) -> None:
        """SIGTERM every child, which stops its own children gracefully; after ``grace`` s,
        SIGKILL (its whole process group with own_sessions)."""
        for _, proc in self.children:
            self._signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for _, proc in self.children:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL, group=True)
                proc.wait()
        if self.own_sessions:  # an exited child may have left members of its group behind
            for _, proc in self.children:
                self._signal(proc, signal.SIGKILL, group=True)
