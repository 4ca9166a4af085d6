"""What the benchmarks share: the cast (two sandboxes, two nodes), seeding, counting, figures.

* :class:`Bench` starts two ServiceNow sandboxes and two nodes (``tests/live.py``: web +
  Celery workers, the back end ``tests/live.py`` picks from ``TEST_POSTGRES_URL`` /
  ``TEST_REDIS_URL``), links them with an active public connection and seeds incidents
  (public comments and an attachment each) on sandbox A.
* :class:`CountingSession` is a sandbox session that counts its own requests the way the
  sandbox's ``/sandbox/stats`` does (``METHOD /path`` with sys_ids as ``{sys_id}``), so a
  benchmark can subtract what it asked itself from what the sandboxes served.
* :func:`process_tree_cpu` / :func:`memory_kb` read the processes' own accounting in
  ``/proc`` (CPU seconds, peak resident memory), which holds on a busy machine.
* :func:`percentile`, :func:`machine_line`, :func:`redis_dbs_free`.

Nothing here reads ``/work/shared``; everything listens on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from requests.adapters import HTTPAdapter  # noqa: E402
from urllib3.util.retry import Retry  # noqa: E402

from tests import live  # noqa: E402
from tests.live import LiveNode, LiveSandbox, link_nodes  # noqa: E402

_SYS_ID = re.compile(r"/[0-9a-f]{32}(?=/|$)")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PG_URL, REDIS_URL = "postgres://postgres@127.0.0.1:5432", "redis://127.0.0.1:6379"


def route_of(method: str, url: str) -> str:
    """``"GET /api/now/table/incident/{sys_id}"``: a request named as ``/sandbox/stats`` names it."""
    return f"{method.upper()} {_SYS_ID.sub('/{sys_id}', urlsplit(url).path)}"


class CountingSession(requests.Session):
    """A ``requests.Session`` that counts its requests by :func:`route_of` in ``self.calls``
    (control requests under ``/sandbox/`` are not counted, as the sandbox does not)."""

    def __init__(self):
        super().__init__()
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def request(self, method, url, *args, **kwargs):
        if "/sandbox/" not in urlsplit(url).path:
            with self._lock:
                self.calls[route_of(method, url)] += 1
        return super().request(method, url, *args, **kwargs)


def sandbox_session(sandbox: LiveSandbox) -> CountingSession:
    """A counting session logged in to ``sandbox`` with Basic auth, asking for JSON."""
    s = CountingSession()
    s.auth = (sandbox.user, sandbox.password)
    s.headers["Accept"] = "application/json"
    return s


def attribute(calls: Counter, items: list[tuple[str, float, set]]) -> tuple[int, Counter]:
    """Match the calls a sandbox served to the minimum: ``(minimum, calls beyond it by kind)``."""
    left = Counter({_kind(k): 0 for k in calls})
    for k, v in calls.items():
        left[_kind(k)] += v
    for _what, want, kinds in items:
        for kind in sorted(kinds):
            take = min(want, left.get(kind, 0))
            left[kind] -= take
            want -= take
    return sum(w for _, w, _ in items), +left


def _kind(route: str) -> str:
    """A route without its API version (``/api/now/v2/table`` → ``/api/now/table``)."""
    return re.sub(r"^(\w+ /api/now)/v\d+/", r"\1/", route)


def webhook_session() -> requests.Session:
    """A session for the business rule's webhook calls: a connection the node's web server
    closed while idle is retried (an announcement only marks a twin, so twice is harmless)."""
    s = requests.Session()
    retry = Retry(total=3, connect=3, read=2, backoff_factor=0.2, allowed_methods=None)
    s.mount("http://", HTTPAdapter(max_retries=retry))
    return s


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` with linear interpolation; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def machine_line() -> str:
    """Host, CPUs, load average and Python: the line every benchmark prints first."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.node()} ({os.cpu_count()} CPUs, {platform.machine()}, load average {load},"
        f" Python {platform.python_version()})"
    )


def webhook_token(node: LiveNode) -> str:
    """The node's webhook token (General settings), read through ``manage.py shell``."""
    out = node.shell(
        "from connections.selectors import node_settings_get; print('TOKEN', node_settings_get().webhook_token)"
    )
    return next(line.split()[1] for line in out.splitlines() if line.startswith("TOKEN "))


def memory_kb(pids: list[int], field: str) -> dict[int, int]:
    """``VmHWM`` (peak resident set) or ``VmRSS`` (current) of each pid, in kB."""
    out = {}
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    out[pid] = int(line.split()[1])
        except OSError:
            pass
    return out


def reset_peaks(pids: list[int]) -> bool:
    """Reset each process's VmHWM to its current RSS (Linux ``clear_refs`` 5); False if refused."""
    ok = True
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            ok = False
    return ok


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its living descendants (from ``/proc/<pid>/task/*/children``)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def process_tree_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system, own and reaped children's) of ``pids`` and their descendants.

    From ``/proc/<pid>/stat`` fields 14-17 (``utime stime cutime cstime``, clock ticks): a
    child that ended between two readings moves into its parent's ``cutime``, so the sum
    over a tree only ever grows by the work done.
    """
    total = 0
    seen: set[int] = set()
    for root in pids:
        for pid in process_tree(root):
            if pid in seen:
                continue
            seen.add(pid)
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += sum(int(x) for x in fields[11:15])
    return total / CLOCK_TICKS


def node_roots(node: LiveNode) -> list[int]:
    """The root pids of a node: ``serve`` (web, and workers it started) and each added worker."""
    roots = [node.proc.pid] if node.proc and node.proc.poll() is None else []
    return roots + [w.proc.pid for w in node.workers if w.proc and w.proc.poll() is None]


def worker_pids(node: LiveNode) -> list[int]:
    """The Celery worker processes of a node (main processes and pool children)."""
    return [pid for w in node.workers for pid in w.pids()]


def redis_dbs_free(url: str, count: int) -> list[int]:
    """``count`` Redis db numbers that hold no key now, highest first (so a soak run or a
    test on the low numbers keeps its broker); raises RuntimeError when too few are empty."""
    import redis

    used = set()
    for key in redis.Redis.from_url(url).info("keyspace"):
        used.add(int(key[2:]))
    free = [n for n in range(15, 1, -1) if n not in used][:count]
    if len(free) < count:
        raise RuntimeError(f"Redis at {url} has fewer than {count} empty databases.")
    return free


def use_redis_dbs(dbs: list[int]) -> None:
    """Make the next LiveNodes take these Redis db numbers (tests/live.py flushes each one)."""
    live._redis_db = iter(dbs)


@contextlib.contextmanager
def backend(name: str, *, redis_dbs: int = 2):
    """Nodes started inside run on back end ``name``: ``sqlite`` (SQLite, file-system broker)
    or ``postgres`` (``TEST_POSTGRES_URL``, default ``PG_URL``; ``TEST_REDIS_URL``, default
    ``REDIS_URL``, on ``redis_dbs`` empty Redis databases). Yields None, or what stands in
    the way in an admin's words; the ``TEST_*`` variables are put back afterwards."""
    keys = ("TEST_POSTGRES_URL", "TEST_REDIS_URL")
    saved = {k: os.environ.get(k) for k in keys}
    wanted = dict.fromkeys(keys) if name == "sqlite" else {
        "TEST_POSTGRES_URL": saved["TEST_POSTGRES_URL"] or PG_URL,
        "TEST_REDIS_URL": saved["TEST_REDIS_URL"] or REDIS_URL,
    }  # fmt: skip
    problem = None
    try:
        for k, v in wanted.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        if name == "postgres":
            try:
                use_redis_dbs(redis_dbs_free(wanted["TEST_REDIS_URL"], redis_dbs))
                import psycopg2

                psycopg2.connect(wanted["TEST_POSTGRES_URL"].rstrip("/") + "/postgres").close()
            except Exception as exc:  # noqa: BLE001 - said in an admin's words
                problem = (
                    f"PostgreSQL + Redis could not be used ({str(exc).strip()});"
                    " set TEST_POSTGRES_URL and TEST_REDIS_URL to reachable servers"
                )
        yield problem
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def node_env(args) -> dict[str, str]:
    """The environment a benchmark's nodes share: ``args.poll_interval`` as the change poll
    interval (s), ``args.concurrency`` pool processes per worker, warnings-only logs."""
    return {
        "CHANGE_POLL_INTERVAL": str(args.poll_interval),
        "CELERY_WORKER_CONCURRENCY": str(args.concurrency),
        "LOG_LEVEL": "warning",
    }


class Bench:
    """Two sandboxes and two nodes linked by one active public connection.

    ``args`` needs ``poll_interval`` (CHANGE_POLL_INTERVAL, s) and ``concurrency`` (pool
    processes per worker); ``workers`` is the number of worker process groups per node
    (the first runs beat); ``env`` is added to both nodes' environment.
    """

    def __init__(self, args, workdir: Path, *, workers: int = 1, env: dict | None = None):
        self.args = args
        env = {**node_env(args), **(env or {})}
        self.workers = workers
        self.sandbox_a = LiveSandbox(workdir / "sandbox-a", seed="")
        self.sandbox_b = LiveSandbox(workdir / "sandbox-b", seed="")
        self.a = LiveNode(workdir / "node-a", name="Bench A", sandbox=self.sandbox_a, env=env)
        self.b = LiveNode(workdir / "node-b", name="Bench B", sandbox=self.sandbox_b, env=env)
        self.parts_started: list = []

    def start(self):
        """Start both sandboxes and nodes (workers added one by one), link them, log in."""
        for sb in (self.sandbox_a, self.sandbox_b):
            sb.start()
            self.parts_started.append(sb)
        for node in (self.a, self.b):
            node.start(worker=False)
            self.parts_started.append(node)
            for i in range(self.workers):
                node.add_worker(beat=i == 0, concurrency=self.args.concurrency)
        self.connection = link_nodes(self.a, self.b, name="bench")
        self.api = self.a.login()
        self.api_b = self.b.login()
        self.sn_a, self.sn_b = sandbox_session(self.sandbox_a), sandbox_session(self.sandbox_b)

    def close(self):
        """Stop everything started, newest first (best effort)."""
        for part in reversed(self.parts_started):
            try:
                part.close() if isinstance(part, LiveNode) else part.stop()
            except Exception as exc:  # noqa: BLE001 - best effort at the end
                print(f"  (stopping {getattr(part, 'name', part)} failed: {exc})")

    # --- ServiceNow side -------------------------------------------------------------------
    def create_incident(
        self, i: int, attachment: bytes, *, summary: str = "Bench", comments: int = 3
    ) -> dict:
        """One incident on sandbox A (``"<summary> <i>"``) with ``comments`` public comments
        and, when ``attachment`` is not empty, one attachment; returns its row."""
        base = self.sandbox_a.url
        row = self.sn_a.post(
            f"{base}/api/now/table/incident",
            json={"short_description": f"{summary} {i}", "description": f"{summary} incident {i}"},
            timeout=30,
        ).json()["result"]
        for c in range(comments):
            self.sn_a.patch(
                f"{base}/api/now/table/incident/{row['sys_id']}",
                json={"comments": f"Comment {c} of {summary.lower()} {i}"},
                timeout=30,
            )
        if attachment:
            self.upload(row["sys_id"], f"{summary.lower()}-{i}.bin", attachment)
        return row

    def seed(self, count: int, attachment: bytes, *, summary: str = "Bench") -> list[dict]:
        """:meth:`create_incident` ``count`` times, 8 at a time; rows in order."""
        with ThreadPoolExecutor(8) as pool:
            return list(
                pool.map(
                    lambda i: self.create_incident(i, attachment, summary=summary), range(count)
                )
            )

    def upload(self, sys_id: str, name: str, data) -> None:
        """Attach ``data`` (bytes or an iterator of bytes) to incident ``sys_id`` on sandbox A."""
        r = self.sn_a.post(
            f"{self.sandbox_a.url}/api/now/attachment/file",
            params={"table_name": "incident", "table_sys_id": sys_id, "file_name": name},
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=300,
        )
        assert r.status_code == 201, r.text

    def latency(self, ms: float) -> None:
        """Every request to either sandbox takes ``ms`` milliseconds more."""
        for sb, s in ((self.sandbox_a, self.sn_a), (self.sandbox_b, self.sn_b)):
            s.post(f"{sb.url}/sandbox/faults", json={"latency_ms": ms}, timeout=10)

    def stats(self, reset: bool = False) -> dict[str, dict]:
        """``{"A": {...}, "B": {...}}``: requests each sandbox served by ``METHOD /path`` plus
        ``total`` (``/sandbox/stats``); ``reset`` reads and clears them."""
        out = {}
        for label, sb, s in (("A", self.sandbox_a, self.sn_a), ("B", self.sandbox_b, self.sn_b)):
            out[label] = (s.delete if reset else s.get)(
                f"{sb.url}/sandbox/stats", timeout=10
            ).json()
        return out

    def rows(self, side: str, table: str, query: str, fields: str) -> list[dict]:
        """Every row of ``table`` (``attachment``: the Attachment API) matching ``query`` on
        sandbox ``side`` (``"A"`` or ``"B"``), ``fields`` only, in pages of 5,000."""
        sb, s = (self.sandbox_a, self.sn_a) if side == "A" else (self.sandbox_b, self.sn_b)
        path = "/api/now/attachment" if table == "attachment" else f"/api/now/table/{table}"
        out, offset = [], 0
        while True:
            r = s.get(f"{sb.url}{path}", timeout=60, params={
                "sysparm_query": query, "sysparm_fields": fields,
                "sysparm_limit": 5000, "sysparm_offset": offset})  # fmt: skip
            r.raise_for_status()
            page = r.json()["result"]
            out += page
            if len(page) < 5000:
                return out
            offset += len(page)

    def journal_has(self, sys_id: str, text: str) -> bool:
        """Whether incident ``sys_id`` on sandbox B has a comment containing ``text``."""
        rows = self.sn_b.get(
            f"{self.sandbox_b.url}/api/now/table/sys_journal_field",
            params={
                "sysparm_query": f"element_id={sys_id}^element=comments^valueLIKE{text}",
                "sysparm_fields": "sys_id",
            },
            timeout=10,
        ).json()["result"]
        return bool(rows)

    # --- console side ----------------------------------------------------------------------
    def exalate(self, number: str) -> str:
        """Exalate incident ``number`` through node A's API; returns the request id."""
        r = self.api.post(
            f"{self.a.url}/api/connections/{self.connection}/exalate/",
            json={"number": number},
            timeout=30,
        )
        assert r.status_code == 202, r.text
        return r.json()["id"]

    def twins(self) -> list[dict]:
        """Node A's twins of the connection (the first 200, newest first)."""
        data = self.api.get(
            f"{self.a.url}/api/twins/", params={"connection": self.connection}, timeout=30
        ).json()
        return data["results"] if isinstance(data, dict) else data
