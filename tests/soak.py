"""The soak test: N incidents synced both ways through failures, then counted (issue 11).

Run by ``make soak N=1000`` (``benchmarks/soak.py``) and, smaller, by the ``slow`` test
``tests/test_soak.py`` that ``.ci/run`` runs with N=100 against PostgreSQL and Redis.

What it does, all on 127.0.0.1 (tests/live.py: two ServiceNow sandboxes, two nodes run
as ``manage.py serve`` -- web, worker and beat under serve's supervisor):

1. Creates N incidents, half in sandbox A and half in sandbox B, each with a public
   comment and an attachment written by a person (not the nodes' integration user), and
   exalates each from its own node.
2. From then until the queues have drained, both sandboxes answer about 10 % of API
   requests with a fault: 503, 500, 502, 429 (``Retry-After: 1``) or a hang longer than
   the nodes' ServiceNow timeout, in turn (``/sandbox/faults``; every couple of seconds
   the injector arms as many faulted requests as 10 % of the requests it saw meanwhile).
3. Meanwhile a writer adds, on both sides of every pair, a comment, an attachment and a
   second comment (three rounds), and the chaos script, one step every ``gap`` seconds:
   SIGKILLs each node's worker processes (the Celery main process and its pool children)
   three times and each node's scheduler (beat) once -- serve must restart them --, takes
   node B down (SIGKILL of the whole node) for ``peer_down`` seconds, and, on PostgreSQL,
   restarts the database once: every connection of both nodes' databases is terminated
   and new ones are refused for 10 s, which is what a database restart looks like to the
   nodes (the shared PostgreSQL server itself is not restarted: other databases on it are
   left alone). On SQLite the database step is skipped (and the report says so).
4. Waits until both nodes' queues have drained (no open event, no queued exalate request,
   no twin waiting for a scan, every twin Synchronized; twice in a row), clears the
   faults, and reads both sandboxes.

The counts, all of which must be 0: duplicate incidents (more than one incident for one
original in a sandbox), missing mirrors, lost and doubled comments (a comment not on the
other side, or more than once on either side), lost, doubled and corrupted attachments
(not on the other side; more than once; other bytes -- SHA-256 -- than the original), order
breaks (a pair whose comments from one side are in another order on the other side),
twins in Error. Also printed: how long the queues took to drain after the last write
and the last chaos step, and how many faults were injected out of how many requests.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.live import LiveNode, LiveSandbox, link_nodes, wait_for

PERSON = ("soak.person", "soak-person-pw", "Soak Person")
FAULT_KINDS = (
    {"status": 503},
    {"status": 500},
    {"status": 429, "retry_after": 1},
    {"status": 502},
    {"hang": True},
)
#: The queue figures read straight from a node's database (a ``manage.py shell`` per poll
#: would take seconds on a loaded machine and blur the drain time).
STATUS_SQL = {
    "open_events": "SELECT COUNT(*) FROM sync_syncevent WHERE status IN ('queued', 'in_progress', 'sent')",
    "error_events": "SELECT COUNT(*) FROM sync_syncevent WHERE status = 'error'",
    "twins": "SELECT COUNT(*) FROM sync_twin",
    "not_synchronized": "SELECT COUNT(*) FROM sync_twin WHERE status <> 'synchronized'",
    "error_twins": "SELECT COUNT(*) FROM sync_twin WHERE status = 'error'",
    "scans": "SELECT COUNT(*) FROM sync_twin WHERE scan_requested > scan_done",
    "exalate_queued": "SELECT COUNT(*) FROM sync_exalaterequest WHERE status = 'queued'",
    "exalate_errors": "SELECT COUNT(*) FROM sync_exalaterequest WHERE status = 'error'",
    "attachments_pending": "SELECT COUNT(*) FROM sync_attachmentstate WHERE state = 'pending'",
    "attachment_warnings": "SELECT COUNT(*) FROM sync_attachmentstate"
    " WHERE state IN ('refused', 'too_large', 'skipped')",
    "open_errors": "SELECT COUNT(*) FROM sync_syncerror WHERE resolved_at IS NULL",
}


@dataclass
class SoakResult:
    """What a soak run found; ``ok`` when every count is 0 and the queues drained."""

    n: int
    counts: dict[str, int]
    drain_seconds: float | None
    total_seconds: float
    faults_injected: int
    requests_seen: int
    chaos: list[str]
    notes: list[str] = field(default_factory=list)
    status: dict = field(default_factory=dict)
    checked: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.drain_seconds is not None and not any(self.counts.values())

    def report(self) -> str:
        lines = [f"Soak of {self.n} incidents ({self.n // 2} from each side):"]
        lines += [f"  {name}: {value}" for name, value in self.counts.items()]
        drained = (
            f"{self.drain_seconds:.1f} s after the last write and chaos step"
            if self.drain_seconds is not None
            else "NOT DRAINED before the timeout"
        )
        lines.append(f"  queues drained: {drained}")
        share = self.faults_injected / self.requests_seen * 100 if self.requests_seen else 0
        lines.append(
            f"  faults injected: {self.faults_injected} of {self.requests_seen} ServiceNow requests ({share:.1f} %)"
        )
        lines.append(
            f"  checked: {self.checked.get('comments', 0)} comments and"
            f" {self.checked.get('attachments', 0)} attachments, each on both sides"
        )
        lines.append(f"  whole run: {self.total_seconds:.0f} s")
        lines.append("  chaos: " + "; ".join(self.chaos))
        lines += [f"  note: {note}" for note in self.notes]
        if not self.ok:
            lines.append(f"  node status at the end: {json.dumps(self.status)}")
        return "\n".join(lines)


class SnClient:
    """Requests to one sandbox that ride out the injected faults (a faulted write is not applied)."""

    def __init__(self, sandbox: LiveSandbox, auth: tuple[str, str]):
        self.base = sandbox.url
        self.local = threading.local()
        self.auth = auth

    def _session(self) -> requests.Session:
        s = getattr(self.local, "s", None)
        if s is None:
            s = self.local.s = requests.Session()
            s.auth = self.auth
            s.headers["Accept"] = "application/json"
        return s

    def call(self, method: str, path: str, *, tries: int = 60, **kwargs) -> requests.Response:
        last = None
        for _ in range(tries):
            try:
                r = self._session().request(method, self.base + path, timeout=60, **kwargs)
            except requests.RequestException as exc:
                last = exc
            else:
                if r.status_code < 400:
                    return r
                if r.status_code not in (429, 500, 502, 503, 504):
                    raise AssertionError(f"{method} {path}: {r.status_code} {r.text[:500]}")
                last = r
            time.sleep(0.3 + random.random() * 0.5)
        raise AssertionError(f"{method} {path} kept failing: {last!r}")

    def control(self, method: str, path: str, body=None) -> dict:
        r = requests.request(method, self.base + path, json=body, timeout=30)
        r.raise_for_status()
        return r.json() if r.content else {}


class FaultInjector(threading.Thread):
    """Arms faults on one sandbox for about ``share`` of its API requests (see module docstring)."""

    def __init__(self, sn: SnClient, *, share: float, hang_seconds: float, tick: float = 2.0):
        super().__init__(daemon=True)
        self.sn, self.share, self.hang_seconds, self.tick = sn, share, hang_seconds, tick
        self.stopped = threading.Event()
        self.injected = 0
        self.first_total: int | None = None
        self.last_total = 0
        self.kind = 0

    def _total(self) -> int:
        return int(self.sn.control("GET", "/sandbox/stats").get("total", 0))

    def run(self) -> None:
        previous = None
        while not self.stopped.is_set():
            with contextlib.suppress(requests.RequestException, ValueError):
                total = self._total()
                if self.first_total is None:
                    self.first_total = total
                self.last_total = total
                seen = total - previous if previous is not None else 0
                previous = total
                count = int(seen * self.share + random.random())
                if count:
                    fault = dict(FAULT_KINDS[self.kind % len(FAULT_KINDS)], count=count)
                    self.kind += 1
                    if fault.get("hang"):
                        fault["hang_seconds"] = self.hang_seconds
                    self.sn.control("POST", "/sandbox/faults", {**fault, "paths": ["/api/"]})
                    self.injected += count
                    if fault.get("hang"):  # a new setting would end the hang early
                        self.stopped.wait(self.hang_seconds + 0.5)
            self.stopped.wait(self.tick)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=self.hang_seconds + 30)
        with contextlib.suppress(requests.RequestException):
            self.sn.control("DELETE", "/sandbox/faults")
        with contextlib.suppress(requests.RequestException, ValueError):
            self.last_total = self._total()

    @property
    def requests_seen(self) -> int:
        return max(0, self.last_total - (self.first_total or 0))


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def serve_children(node: LiveNode) -> dict[str, int]:
    """``{"web": pid, "worker": pid, "beat": pid}`` of a node's running ``serve``."""
    found = {}
    if node.proc is None:
        return found
    for child in _children(node.proc.pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for role, marker in (("web", b"gunicorn"), ("worker", b"worker"), ("beat", b"beat")):
            if marker in cmdline:
                found[role] = child
    return found


def kill_role(node: LiveNode, role: str) -> int:
    """SIGKILL a node's worker (main process and pool children at once) or beat; how many pids."""
    pid = wait_for(
        lambda: serve_children(node).get(role),
        timeout=90,
        what=f"{role} of {node.node_name} running",
        log=node.log_path,
    )
    pids = [pid] + (_children(pid) if role == "worker" else [])
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    return len(pids)


def start_node(node: LiveNode, *, fresh: bool) -> None:
    """``node.start()``, with more patience than its 60 s when the machine is loaded: a node
    whose ``serve`` is still running gets up to 3 more minutes to answer /healthz 200."""
    try:
        node.start(fresh=fresh)
    except AssertionError:
        if node.proc is None or node.proc.poll() is not None:
            raise
        wait_for(
            lambda: requests.get(f"{node.url}/healthz", timeout=5).status_code == 200,
            timeout=180,
            what=f"node {node.node_name} healthy",
            proc=node.proc,
            log=node.log_path,
        )


def database_restart(nodes: list[LiveNode], *, outage: float = 10.0) -> None:
    """Terminate every connection to the nodes' PostgreSQL databases and refuse new ones for ``outage`` s."""
    import psycopg2

    conn = psycopg2.connect(os.environ["TEST_POSTGRES_URL"].rstrip("/") + "/postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for node in nodes:
                cur.execute(f'ALTER DATABASE "{node.pg_name}" ALLOW_CONNECTIONS false')
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    [node.pg_name],
                )
        time.sleep(outage)
    finally:
        with conn.cursor() as cur:
            for node in nodes:
                cur.execute(f'ALTER DATABASE "{node.pg_name}" ALLOW_CONNECTIONS true')
        conn.close()


def node_status(node: LiveNode) -> dict | None:
    """The node's queue figures (see STATUS_SQL), or None when they cannot be read right now."""
    try:
        if node.pg_name:
            import psycopg2

            conn = psycopg2.connect(node.env["DATABASE_URL"], connect_timeout=10)
        else:
            import sqlite3

            conn = sqlite3.connect(node.var_dir / "db.sqlite3", timeout=10)
        try:
            cur = conn.cursor()
            out = {}
            for name, sql in STATUS_SQL.items():
                cur.execute(sql)
                out[name] = cur.fetchone()[0]
            return out
        finally:
            conn.close()
    except Exception:  # noqa: BLE001 - the database may be restarting
        return None


def drained(status: dict | None, n: int) -> bool:
    return bool(
        status
        and status["twins"] >= n
        and not any(
            status[k]
            for k in (
                "open_events",
                "not_synchronized",
                "scans",
                "exalate_queued",
                "attachments_pending",
            )
        )
    )


class Soak:
    """One soak run; see the module docstring. ``run()`` returns a :class:`SoakResult`."""

    def __init__(
        self,
        workdir: Path,
        *,
        n: int,
        gap: float = 10.0,
        peer_down: float = 60.0,
        fault_share: float = 0.10,
        drain_timeout: float = 1200.0,
        concurrency: int = 2,
        log=print,
    ):
        if n < 2:
            raise ValueError("the soak needs at least 2 incidents (one from each side)")
        self.n = n - n % 2
        self.gap, self.peer_down, self.fault_share = gap, peer_down, fault_share
        self.drain_timeout = drain_timeout
        self.log = log
        self.run_id = uuid.uuid4().hex[:6]
        self.timeout_s = 5.0
        env = {
            "LOG_LEVEL": "warning",
            "CELERY_WORKER_CONCURRENCY": str(concurrency),
            "SERVICENOW_TIMEOUT": str(self.timeout_s),
            "HEARTBEAT_INTERVAL": "2",
        }
        self.sandboxes = {
            "A": LiveSandbox(workdir / "sandbox-a", seed=""),
            "B": LiveSandbox(workdir / "sandbox-b", seed=""),
        }
        self.nodes = {
            side: LiveNode(
                workdir / f"node-{side.lower()}", name=f"Soak {side}", sandbox=sb, env=env
            )
            for side, sb in self.sandboxes.items()
        }
        self.postgres = bool(self.nodes["A"].pg_name)
        self.started: list = []
        self.chaos_log: list[str] = []
        self.notes: list[str] = []
        # What the writer wrote: per (origin side, tag) the comment markers in order, and
        # the attachments (file name -> sha256).
        self.comments: dict[tuple[str, str], list[str]] = {}
        self.attachments: dict[tuple[str, str], dict[str, str]] = {}
        self.origin_of: dict[str, str] = {}  # tag -> side it was created on
        self.ids: dict[str, dict[str, str]] = {"A": {}, "B": {}}  # side -> tag -> sys_id
        self.ids_lock = threading.Lock()
        self.t0 = time.monotonic()

    # --- set-up ----------------------------------------------------------------------------
    def start(self) -> None:
        self.started += list(self.sandboxes.values())
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda sb: sb.start(), self.sandboxes.values()))
        for node in self.nodes.values():
            self.started.append(node)
            start_node(node, fresh=True)
        self.connection = link_nodes(self.nodes["A"], self.nodes["B"], name="soak")
        self.admin = {s: SnClient(sb, (sb.user, sb.password)) for s, sb in self.sandboxes.items()}
        self.person = {s: SnClient(sb, PERSON[:2]) for s, sb in self.sandboxes.items()}
        for sn in self.admin.values():
            sn.control(
                "POST",
                "/sandbox/users",
                {"user_name": PERSON[0], "password": PERSON[1], "name": PERSON[2]},
            )
        self.api = {s: node.login() for s, node in self.nodes.items()}

    def close(self) -> None:
        for part in reversed(self.started):
            try:
                part.close() if isinstance(part, LiveNode) else part.stop()
            except Exception as exc:  # noqa: BLE001 - best effort at the end
                self.log(f"  (stopping {part.name} failed: {exc})")

    def stamp(self) -> str:
        return f"{time.monotonic() - self.t0:.0f}s"

    # --- ServiceNow writes -----------------------------------------------------------------
    def marker(self, tag: str, side: str, r: int) -> str:
        return f"[[{self.run_id}:{tag}:{side}{r}]]"

    def summary(self, tag: str) -> str:
        return f"Soak {self.run_id} {tag}"

    def add_comment(self, side: str, tag: str, r: int) -> None:
        marker = self.marker(tag, side, r)
        self.person[side].call(
            "PATCH",
            f"/api/now/table/incident/{self.ids[side][tag]}",
            json={"comments": f"Soak comment {marker} from side {side}"},
        )
        self.comments.setdefault((side, tag), []).append(marker)

    def add_attachment(self, side: str, tag: str, r: int) -> None:
        data = os.urandom(random.randint(2048, 8192))
        name = f"soak-{self.run_id}-{tag}-{side}{r}.bin"
        self.person[side].call(
            "POST",
            "/api/now/attachment/file",
            params={
                "table_name": "incident",
                "table_sys_id": self.ids[side][tag],
                "file_name": name,
            },
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        self.attachments.setdefault((side, tag), {})[name] = hashlib.sha256(data).hexdigest()

    def create(self, side: str, i: int) -> tuple[str, str]:
        tag = f"{side}{i}"
        self.origin_of[tag] = side
        self.comments[(side, tag)] = [self.marker(tag, side, 0)]
        row = (
            self.person[side]
            .call(
                "POST",
                "/api/now/table/incident",
                json={
                    "short_description": self.summary(tag),
                    "description": f"Soak incident {tag}",
                    "comments": f"Soak comment {self.marker(tag, side, 0)} from side {side}",
                },
            )
            .json()["result"]
        )
        with self.ids_lock:
            self.ids[side][tag] = row["sys_id"]
        self.add_attachment(side, tag, 0)
        return tag, row["number"]

    def exalate(self, side: str, number: str) -> None:
        node = self.nodes[side]
        for _ in range(30):
            r = self.api[side].post(
                f"{node.url}/api/connections/{self.connection}/exalate/",
                json={"number": number},
                timeout=60,
            )
            if r.status_code == 202:
                return
            time.sleep(1)
        raise AssertionError(f"exalate {number} on {side}: {r.status_code} {r.text[:300]}")

    def list_incidents(self, side: str, *, comments: bool = True) -> list[dict]:
        """Every soak incident of one sandbox: sys_id, summary and the comments' display text."""
        rows, offset = [], 0
        while True:
            page = (
                self.admin[side]
                .call(
                    "GET",
                    "/api/now/table/incident",
                    params={
                        "sysparm_query": f"short_descriptionSTARTSWITHSoak {self.run_id} ^ORDERBYnumber",
                        "sysparm_fields": "sys_id,number,short_description"
                        + (",comments" if comments else ""),
                        "sysparm_display_value": "true" if comments else "false",
                        "sysparm_limit": 200,
                        "sysparm_offset": offset,
                    },
                )
                .json()["result"]
            )
            rows += page
            if len(page) < 200:
                return rows
            offset += 200

    def list_attachments(self, side: str) -> list[dict]:
        rows, offset = [], 0
        while True:
            page = (
                self.admin[side]
                .call(
                    "GET",
                    "/api/now/attachment",
                    params={
                        "sysparm_query": f"file_nameSTARTSWITHsoak-{self.run_id}-^ORDERBYsys_id",
                        "sysparm_limit": 500,
                        "sysparm_offset": offset,
                    },
                )
                .json()["result"]
            )
            rows += page
            if len(page) < 500:
                # Keyed by sys_id: when the queues did not drain, the nodes still upload
                # while this pages, and a new row (random sys_id) shifts the offsets, so
                # one row can come back on two pages. Counted once, as it is stored.
                return list({r["sys_id"]: r for r in rows}.values())
            offset += 500

    def refresh_mirrors(self) -> None:
        for side in ("A", "B"):
            found = {}
            for row in self.list_incidents(side, comments=False):
                tag = row["short_description"].rsplit(" ", 1)[-1]
                found.setdefault(tag, row["sys_id"])
            with self.ids_lock:
                for tag, sys_id in found.items():
                    self.ids[side].setdefault(tag, sys_id)

    # --- the writer ------------------------------------------------------------------------
    def writer(self, *, pace: float, stop: threading.Event, chaos_done: threading.Event) -> None:
        """On both sides of every pair, in this order: a comment, an attachment, a comment.

        Each side of a pair is written as soon as its incident exists there, its three
        writes about ``pace`` seconds apart while the chaos runs (so they meet crashes and
        the outage) and a second apart afterwards; four writers at once.
        """
        try:
            self._write_all(pace=pace, stop=stop, chaos_done=chaos_done)
        except Exception as exc:  # noqa: BLE001 - reported, and the counts stay honest
            self.notes.append(f"the writer stopped early: {exc!r}"[:500])
            self.log(f"  {self.stamp()} the writer stopped early: {exc!r}"[:500])

    WRITES = {1: "comment", 2: "attachment", 3: "comment"}

    def _write_all(self, *, pace: float, stop: threading.Event, chaos_done) -> None:
        items = [(tag, side) for tag in sorted(self.origin_of) for side in ("A", "B")]
        random.shuffle(items)
        step = dict.fromkeys(items, 1)  # the next write of each item (4: done)
        due = dict.fromkeys(items, 0.0)
        busy: set = set()
        lock = threading.Lock()
        give_up = [None]  # when to stop waiting for mirrors that never appear

        def pick():
            now = time.monotonic()
            with lock:
                for item in items:
                    tag, side = item
                    if (
                        step[item] <= 3
                        and item not in busy
                        and due[item] <= now
                        and tag in self.ids[side]
                    ):
                        busy.add(item)
                        return item
            return None

        def work():
            while not stop.is_set():
                item = pick()
                if item is None:
                    with lock:
                        if all(step[i] > 3 for i in items) or give_up[0] == "now":
                            return
                    time.sleep(0.3)
                    continue
                tag, side = item
                r = step[item]
                if self.WRITES[r] == "comment":
                    self.add_comment(side, tag, r)
                else:
                    self.add_attachment(side, tag, r)
                gap = 1.0 if chaos_done.is_set() else pace
                with lock:
                    step[item] = r + 1
                    due[item] = time.monotonic() + gap * random.uniform(0.5, 1.5)
                    busy.discard(item)

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(work) for _ in range(4)]
            while not all(f.done() for f in futures):
                time.sleep(5)
                missing = [i for i in items if i[0] not in self.ids[i[1]]]
                if missing:
                    self.refresh_mirrors()
                    if chaos_done.is_set():
                        give_up[0] = give_up[0] or time.monotonic() + self.drain_timeout
                        if give_up[0] != "now" and time.monotonic() > give_up[0]:
                            self.notes.append(
                                f"writer: {len(missing)} sides never got their incident: not written"
                            )
                            give_up[0] = "now"
            for f in futures:
                f.result()
        self.log(f"  {self.stamp()} writer done: 3 writes on each side of every pair")

    # --- the chaos script --------------------------------------------------------------------
    def chaos(self) -> None:
        a, b = self.nodes["A"], self.nodes["B"]
        kills = {"A": 0, "B": 0}

        def step(text: str) -> None:
            self.chaos_log.append(f"{self.stamp()} {text}")
            self.log(f"  {self.stamp()} {text}")

        def workers(node_side: str) -> None:
            kills[node_side] += 1
            n = kill_role(self.nodes[node_side], "worker")
            step(f"SIGKILL node {node_side} worker processes ({n}) #{kills[node_side]}")

        def pause() -> None:
            time.sleep(self.gap)

        pause()
        workers("A")
        pause()
        workers("B")
        pause()
        kill_role(a, "beat")
        step("SIGKILL node A scheduler (beat)")
        pause()
        kill_role(b, "beat")
        step("SIGKILL node B scheduler (beat)")
        pause()
        b.stop(sig=signal.SIGKILL)
        step(f"node B down (SIGKILL of the whole node) for {self.peer_down:g} s")
        time.sleep(self.peer_down)
        start_node(b, fresh=False)
        step("node B up again")
        pause()
        workers("A")
        pause()
        if self.postgres:
            step(
                "database restart: every connection of both nodes' databases terminated, none accepted for 10 s"
            )
            database_restart([a, b])
            step("database back")
        else:
            step("database restart skipped (SQLite: set TEST_POSTGRES_URL for PostgreSQL)")
            self.notes.append(
                "database restart skipped: the nodes run on SQLite (set TEST_POSTGRES_URL)"
            )
        pause()
        workers("B")
        pause()
        workers("A")
        pause()
        workers("B")
        for side, node in self.nodes.items():
            wait_for(
                lambda node=node: requests.get(f"{node.url}/healthz", timeout=5).status_code == 200,
                timeout=120,
                what=f"node {side} healthy after the chaos",
                log=node.log_path,
            )
        step("both nodes healthy (/healthz 200)")

    # --- counting ----------------------------------------------------------------------------
    def count(self) -> dict[str, int]:
        counts = dict.fromkeys(
            (
                "duplicate incidents",
                "missing mirrors",
                "lost comments",
                "doubled comments",
                "order breaks",
                "lost attachments",
                "doubled attachments",
                "corrupted attachments",
            ),
            0,
        )
        text: dict[str, dict[str, str]] = {"A": {}, "B": {}}
        ids: dict[str, dict[str, str]] = {"A": {}, "B": {}}
        for side in ("A", "B"):
            per_tag: dict[str, list[dict]] = {}
            for row in self.list_incidents(side):
                per_tag.setdefault(row["short_description"].rsplit(" ", 1)[-1], []).append(row)
            for tag in self.origin_of:
                rows = per_tag.get(tag, [])
                counts["duplicate incidents"] += max(0, len(rows) - 1)
                if not rows:
                    counts["missing mirrors"] += 1
                    continue
                ids[side][tag] = rows[0]["sys_id"]
                text[side][tag] = "".join(r["comments"] or "" for r in rows)
        for (origin, tag), markers in self.comments.items():
            for side in ("A", "B"):
                shown = text[side].get(tag)
                if shown is None:
                    continue
                found = [m for m in markers if m in shown]
                for m in markers:
                    seen = shown.count(m)
                    if seen == 0 and side != origin:
                        counts["lost comments"] += 1
                    counts["doubled comments"] += max(0, seen - 1)
                # The display text is newest first: oldest first is by falling position.
                order = sorted(found, key=lambda m: -shown.index(m))
                if side != origin and order != [m for m in markers if m in found]:
                    counts["order breaks"] += 1
        files: dict[str, dict[str, list[dict]]] = {"A": {}, "B": {}}
        for side in ("A", "B"):
            for row in self.list_attachments(side):
                files[side].setdefault(row["table_sys_id"], []).append(row)
        for (origin, tag), expected in self.attachments.items():
            for side in ("A", "B"):
                sys_id = ids[side].get(tag)
                if sys_id is None:
                    continue
                rows = files[side].get(sys_id, [])
                for name, digest in expected.items():
                    same = [r for r in rows if r["file_name"] == name]
                    if not same and side != origin:
                        counts["lost attachments"] += 1
                    counts["doubled attachments"] += max(0, len(same) - 1)
                    counts["corrupted attachments"] += sum(r["hash"] != digest for r in same)
        return counts

    # --- the run -------------------------------------------------------------------------
    def run(self) -> SoakResult:
        self.start()
        self.log(f"  {self.stamp()} started 2 sandboxes and 2 nodes (run {self.run_id})")
        half = self.n // 2
        with ThreadPoolExecutor(8) as pool:
            made = list(
                pool.map(
                    lambda x: (x[0], *self.create(*x)), [(s, i) for s in "AB" for i in range(half)]
                )
            )
        self.log(
            f"  {self.stamp()} created {self.n} incidents with a comment and an attachment each"
        )
        injectors = [
            FaultInjector(sn, share=self.fault_share, hang_seconds=self.timeout_s + 2)
            for sn in self.admin.values()
        ]
        for injector in injectors:
            injector.start()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda x: self.exalate(x[0], x[2]), made))
        self.log(f"  {self.stamp()} exalated {self.n} incidents; faults on, chaos starts")
        stop, chaos_done = threading.Event(), threading.Event()
        chaos_time = 9 * self.gap + self.peer_down + 30
        writer = threading.Thread(
            target=self.writer,
            kwargs={"pace": chaos_time / 3, "stop": stop, "chaos_done": chaos_done},
            daemon=True,
        )
        writer.start()
        try:
            self.chaos()
        except BaseException:
            stop.set()
            raise
        finally:
            chaos_done.set()
            writer.join(timeout=max(600.0, self.drain_timeout))
            stop.set()
        quiet_from = time.monotonic()
        self.log(f"  {self.stamp()} chaos and writes done; waiting for the queues to drain")
        drain_seconds, last = None, {}
        deadline = quiet_from + self.drain_timeout
        # Drained = nothing to do on either node, and still so 10 s later (five change
        # polls: a write just before the end may not have been found yet).
        first_drained = None
        while time.monotonic() < deadline:
            last = {side: node_status(node) for side, node in self.nodes.items()}
            if all(drained(s, self.n) for s in last.values()):
                first_drained = first_drained or time.monotonic()
                if time.monotonic() - first_drained >= 10:
                    drain_seconds = first_drained - quiet_from
                    break
            else:
                first_drained = None
            time.sleep(1)
        for injector in injectors:
            injector.stop()
        self.log(f"  {self.stamp()} counting")
        counts = self.count()
        counts["twins in Error"] = sum((s or {}).get("error_twins", 0) for s in last.values())
        return SoakResult(
            n=self.n,
            counts=counts,
            drain_seconds=drain_seconds,
            total_seconds=time.monotonic() - self.t0,
            faults_injected=sum(i.injected for i in injectors),
            requests_seen=sum(i.requests_seen for i in injectors),
            chaos=self.chaos_log,
            notes=self.notes,
            status=last,
            checked={
                "comments": sum(len(m) for m in self.comments.values()),
                "attachments": sum(len(a) for a in self.attachments.values()),
            },
        )
