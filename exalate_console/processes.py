"""A small supervisor for the processes of ``serve`` and ``demo``: start, watch, restart, stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class _Child:
    label: str
    args: Sequence[str]
    env: dict | None
    popen: dict
    proc: subprocess.Popen
    started: float = field(default_factory=time.monotonic)
    failures: int = 0  # crashes in a row, each within ``stable_after`` s of its start
    restart_at: float | None = None  # when a crashed child is due to start again


def describe_exit(returncode: int) -> str:
    """``exit 3`` or ``killed by SIGKILL`` for a child's return code."""
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
    return f"exit {returncode}"


class ProcessGroup:
    """Children started together, restarted when they die, and stopped together.

    Stopping sends SIGTERM, then SIGKILL after ``grace`` s. ``run_until_signal()`` returns 0
    after Ctrl-C / SIGTERM, or 1 when a child exits on its own and may not be restarted.

    ``restarts`` is how many times crashed children may be started again in all: ``None``
    for always (``serve``), 0 for never (``demo``: one node stopping stops the demo). A
    crashed child is started again after a back-off: ``backoff`` s, doubling for each crash
    in a row up to ``max_backoff`` s; a child that ran ``stable_after`` s counts afresh.
    Each crash and restart is logged through ``log``.

    With ``own_sessions=True`` each child (and whatever it starts) runs in a process group
    of its own, so stopping signals the whole tree and the SIGKILL escalation leaves no
    orphan behind (``demo`` uses this for its ``serve`` children). Without it, children
    share our group, so whoever stops *us* with ``killpg`` also stops them (``serve``).
    """

    def __init__(
        self,
        *,
        grace: float = 10.0,
        own_sessions: bool = False,
        restarts: int | None = 0,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        stable_after: float = 60.0,
        log=print,
    ):
        self._children: list[_Child] = []
        self.grace = grace
        self.own_sessions = own_sessions
        self.restarts_left = restarts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.stable_after = stable_after
        self.log = log

    @property
    def children(self) -> list[tuple[str, subprocess.Popen]]:
        """``(label, process)`` of each child, the current process after a restart."""
        return [(c.label, c.proc) for c in self._children]

    def _spawn(self, args: Sequence[str], env: dict | None, popen: dict) -> subprocess.Popen:
        return subprocess.Popen(list(args), env=env, start_new_session=self.own_sessions, **popen)

    def start(
        self, label: str, args: Sequence[str], *, env: dict[str, str] | None = None, **popen
    ) -> subprocess.Popen:
        """Start a child called ``label`` (for the log) and watch it from now on."""
        proc = self._spawn(args, env, popen)
        self._children.append(_Child(label, args, env, popen, proc))
        return proc

    def _may_restart(self) -> bool:
        if self.restarts_left is None:
            return True
        if self.restarts_left <= 0:
            return False
        self.restarts_left -= 1
        return True

    def check(self) -> bool:
        """One look at every child: schedule crashed ones for a restart, start those due.

        Returns False when a child exited and may not be restarted (the group should stop).
        """
        now = time.monotonic()
        for child in self._children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restart_at = None
                    child.proc = self._spawn(child.args, child.env, child.popen)
                    child.started = time.monotonic()
                    self.log(f"{child.label} started again (pid {child.proc.pid}).")
                continue
            if child.proc.poll() is None:
                continue
            how = describe_exit(child.proc.returncode)
            if not self._may_restart():
                self.log(f"{child.label} stopped unexpectedly ({how}); stopping everything.")
                return False
            ran = now - child.started
            child.failures = 1 if ran >= self.stable_after else child.failures + 1
            delay = min(self.backoff * 2 ** (child.failures - 1), self.max_backoff)
            child.restart_at = now + delay
            self.log(
                f"{child.label} stopped unexpectedly ({how}) after {ran:.0f} s;"
                f" starting it again in {delay:g} s (crash {child.failures} in a row)."
            )
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
        """Watch the children (see :meth:`check`) until SIGINT/SIGTERM, then stop all.

        Returns 0 after a signal, 1 when a child exited and could not be restarted.
        """
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        code = 0
        while not stopping:
            if not self.check():
                code = 1
                break
            time.sleep(0.2)
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
