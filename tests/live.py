"""Real processes for integration tests: console nodes and ServiceNow sandboxes.

A :class:`LiveNode` is one console node run exactly as an admin runs it
(``manage.py serve``: migrate, first admin, gunicorn, Celery worker with beat), with
its own database and broker. A :class:`LiveSandbox` is ``manage.py servicenow_sandbox``
on its own port and SQLite file. Both listen on 127.0.0.1 only.

Backends: by default each node gets a SQLite file and kombu's file-system broker in
its own folder. When ``TEST_POSTGRES_URL`` (e.g. ``postgres://postgres@127.0.0.1:5432``)
and/or ``TEST_REDIS_URL`` (e.g. ``redis://127.0.0.1:6379``) are set, as .ci/run does on
its second pass, each node gets a fresh PostgreSQL database and its own Redis db number.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin-password-123"
_redis_db = itertools.count(int(os.environ.get("TEST_REDIS_FIRST_DB", "2")))


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(
    check,
    *,
    timeout: float,
    what: str,
    proc: subprocess.Popen | None = None,
    log: Path | None = None,
):
    """Call ``check()`` until it returns truthy or ``timeout`` seconds pass; then raise with the log tail."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 - polling
            last_exc = exc
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    raise AssertionError(
        f"{what} did not happen within {timeout}s (last error: {last_exc!r})\n{tail}"
    )


class _Process:
    name = "process"

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{self.name}.log"
        self.proc: subprocess.Popen | None = None

    def _spawn(self, args: list[str], env: dict[str, str]) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        """Stop the process group (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class LiveSandbox(_Process):
    """A ServiceNow sandbox instance on its own port and SQLite file."""

    name = "sandbox"

    def __init__(
        self,
        workdir: Path,
        *,
        seed: str = "demo",
        user: str = "admin",
        password: str = "admin",
        extra_args: list[str] | None = None,
    ):
        super().__init__(workdir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.user, self.password = user, password
        self.seed = seed
        self.extra_args = extra_args or []
        self.db_path = workdir / "sandbox.sqlite3"

    def start(self) -> LiveSandbox:
        args = [
            sys.executable,
            "manage.py",
            "servicenow_sandbox",
            "--port",
            str(self.port),
            "--db",
            str(self.db_path),
            "--user",
            self.user,
            "--password",
            self.password,
        ]
        if self.seed:
            args += ["--seed", self.seed]
        env = os.environ.copy()
        env["EXALATE_VAR_DIR"] = str(self.workdir / "var")
        self._spawn(args + self.extra_args, env)
        wait_for(
            self._ready,
            timeout=30,
            what=f"sandbox on {self.url}",
            proc=self.proc,
            log=self.log_path,
        )
        return self

    def _ready(self) -> bool:
        r = requests.get(
            f"{self.url}/api/now/table/incident?sysparm_limit=1",
            auth=(self.user, self.password),
            timeout=2,
        )
        return r.status_code == 200

    def session(self) -> requests.Session:
        s = requests.Session()
        s.auth = (self.user, self.password)
        s.headers["Accept"] = "application/json"
        return s


class LiveNode(_Process):
    """One console node (``manage.py serve``) with its own database, broker and var folder."""

    name = "node"

    def __init__(
        self,
        workdir: Path,
        *,
        name: str,
        public: bool = True,
        sandbox: LiveSandbox | None = None,
        env: dict[str, str] | None = None,
    ):
        super().__init__(workdir)
        self.node_name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.public = public
        self.sandbox = sandbox
        self.extra_env = env or {}
        self.var_dir = workdir / "var"
        self.pg_name: str | None = None
        self.workers: list[LiveWorker] = []
        self.env = self._make_env()

    def _make_env(self) -> dict[str, str]:
        env = os.environ.copy()
        for key in list(env):
            if key.startswith(("SERVICENOW_", "DJANGO_SUPERUSER_")) or key in (
                "DATABASE_URL",
                "CELERY_BROKER_URL",
                "NODE_PUBLIC_URL",
                "NODE_NAME",
                "PYTEST_CURRENT_TEST",
            ):
                env.pop(key)
        env.update(
            EXALATE_VAR_DIR=str(self.var_dir),
            NODE_NAME=self.node_name,
            DJANGO_SUPERUSER_USERNAME=ADMIN_USER,
            DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD,
            SESSION_COOKIE_NAME=f"sessionid_{self.port}",
            CSRF_COOKIE_NAME=f"csrftoken_{self.port}",
            CELERY_WORKER_CONCURRENCY=env.get("TEST_WORKER_CONCURRENCY", "2"),
            WEB_CONCURRENCY="1",
            LOG_LEVEL="info",
            SYNC_POLL_INTERVAL="2",
            CHANGE_POLL_INTERVAL="2",
        )
        if self.public:
            env["NODE_PUBLIC_URL"] = self.url
        pg = os.environ.get("TEST_POSTGRES_URL")
        if pg:
            self.pg_name = f"exalate_node_{uuid.uuid4().hex[:10]}"
            env["DATABASE_URL"] = f"{pg.rstrip('/')}/{self.pg_name}"
        else:
            env["DATABASE_URL"] = f"sqlite:///{self.var_dir / 'db.sqlite3'}"
        redis_url = os.environ.get("TEST_REDIS_URL")
        if redis_url:
            env["CELERY_BROKER_URL"] = f"{redis_url.rstrip('/')}/{next(_redis_db) % 16}"
        if self.sandbox is not None:
            env.update(
                SERVICENOW_INSTANCE_URL=self.sandbox.url,
                SERVICENOW_USERNAME=self.sandbox.user,
                SERVICENOW_PASSWORD=self.sandbox.password,
            )
        env.update(self.extra_env)
        return env

    def _create_database(self) -> None:
        if not self.pg_name:
            return
        import psycopg2

        conn = psycopg2.connect(os.environ["TEST_POSTGRES_URL"].rstrip("/") + "/postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{self.pg_name}"')
        conn.close()

    def _drop_database(self) -> None:
        if not self.pg_name:
            return
        import psycopg2

        conn = psycopg2.connect(os.environ["TEST_POSTGRES_URL"].rstrip("/") + "/postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
        conn.close()

    def start(self, *, fresh: bool = True, worker: bool = True) -> LiveNode:
        """Start web + worker + beat; wait until /healthz answers 200.

        ``worker=False`` starts the web part only (``serve --no-worker``); start workers
        with :meth:`add_worker` then, to kill and restart them on their own (until then
        /healthz says 503 for the missing heartbeats: this waits for its database part).
        """
        if fresh:
            self._create_database()
            if "CELERY_BROKER_URL" in self.env and self.env["CELERY_BROKER_URL"].startswith(
                "redis"
            ):
                import redis

                redis.Redis.from_url(self.env["CELERY_BROKER_URL"]).flushdb()
        args = [
            sys.executable,
            "manage.py",
            "serve",
            "--port",
            str(self.port),
            "--web-workers",
            "1",
        ]
        if not worker:
            args.append("--no-worker")
        self._spawn(args, self.env)

        def ready() -> bool:
            r = requests.get(f"{self.url}/healthz", timeout=2)
            return r.status_code == 200 or (not worker and r.json()["database"]["ok"])

        wait_for(
            ready,
            timeout=60,
            what=f"node {self.node_name} on {self.url}",
            proc=self.proc,
            log=self.log_path,
        )
        return self

    def restart(self) -> LiveNode:
        self.stop()
        return self.start(fresh=False)

    def add_worker(self, *, beat: bool = True, concurrency: int = 1, name: str = "") -> LiveWorker:
        """Start one more Celery worker process group for this node (its own log); see LiveWorker."""
        worker = LiveWorker(
            self, beat=beat, concurrency=concurrency, name=name or f"w{len(self.workers) + 1}"
        )
        self.workers.append(worker)
        return worker.start()

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()

    def close(self) -> None:
        self.stop_workers()
        self.stop()
        self._drop_database()

    def manage(
        self, *args: str, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        """Run ``manage.py`` with this node's environment (its database), returning the result."""
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def shell(self, code: str, timeout: float = 60) -> str:
        """Run Python ``code`` in this node's Django (``manage.py shell -c``); return stdout. Raises on failure."""
        result = self.manage("shell", "-c", code, timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(f"shell on {self.node_name} failed:\n{result.stderr[-4000:]}")
        return result.stdout

    def login(self) -> requests.Session:
        """A requests session logged in to the console as the admin (CSRF cookie set)."""
        s = requests.Session()
        s.get(f"{self.url}/login/", timeout=10)
        token = s.cookies.get(f"csrftoken_{self.port}")
        r = s.post(
            f"{self.url}/login/",
            data={"username": ADMIN_USER, "password": ADMIN_PASSWORD, "csrfmiddlewaretoken": token},
            headers={"Referer": f"{self.url}/login/"},
            timeout=10,
        )
        r.raise_for_status()
        s.headers["X-CSRFToken"] = s.cookies.get(f"csrftoken_{self.port}") or ""
        s.headers["Referer"] = self.url + "/"
        return s


class LiveWorker(_Process):
    """A Celery worker (optionally with beat) of a :class:`LiveNode` started with ``worker=False``.

    Its own process group, so ``kill()`` (SIGKILL to the whole group: main process and
    pool children) stops it mid-task the way a crashed machine would; ``start()`` again
    restarts it. ``pids()`` are the main process and its pool children (for memory).
    """

    name = "worker"

    def __init__(
        self, node: LiveNode, *, beat: bool = True, concurrency: int = 1, name: str = "w1"
    ):
        self.name = f"worker-{name}"
        super().__init__(node.workdir)
        self.node = node
        self.beat = beat
        self.concurrency = concurrency
        self.worker_name = name

    def start(self) -> LiveWorker:
        args = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "exalate_console",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            str(self.concurrency),
            "--hostname",
            f"{self.worker_name}-{self.node.port}@%h",
        ]
        if self.beat:
            args += [
                "--beat",
                "--schedule",
                str(self.node.var_dir / f"celerybeat-{self.worker_name}"),
            ]
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._spawn(args, self.node.env)
        wait_for(
            lambda: " ready." in self.log()[offset:],
            timeout=60,
            what=f"worker {self.worker_name}",
            proc=self.proc,
            log=self.log_path,
        )
        return self

    def kill(self) -> None:
        """SIGKILL the worker's whole process group at once (no graceful shutdown)."""
        self.stop(sig=signal.SIGKILL, timeout=10)

    def pids(self) -> list[int]:
        """The worker's main process and its pool children."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        pids = [self.proc.pid]
        with contextlib.suppress(OSError):
            children = (
                Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            )
            pids += [int(c) for c in children]
        return pids


def node_id(node: LiveNode) -> str:
    """The node id of a running node (from its General settings row)."""
    out = node.shell(
        "from connections.selectors import node_identity_get; print('NODE-ID', node_identity_get().node_id)"
    )
    return next(line.split()[1] for line in out.splitlines() if line.startswith("NODE-ID "))


def link_nodes(
    a: LiveNode,
    b: LiveNode,
    *,
    name: str = "A to B",
    trackers: tuple[str, str] = ("servicenow", "servicenow"),
    project_b: str = "",
) -> str:
    """Create the same active public connection on both nodes, without the wizard; return its id.

    For sync tests and benchmarks that are not about the wizard (tests of the wizard go
    through the browser). ``trackers`` are a's and b's trackers; ``project_b`` is the
    project b creates its mirrors in (a tracker with projects, e.g. Jira's ``TEST``).
    """
    cid, secret = str(uuid.uuid4()), secrets.token_urlsafe(32)
    ids = {a.url: node_id(a), b.url: node_id(b)}
    for me, other in ((a, b), (b, a)):
        project = project_b if me is b else ""
        me.shell(
            "from connections.models import Connection\n"
            f"Connection.objects.create(id='{cid}', name='{name}', type='public', status='active',"
            f" remote_node_id='{ids[other.url]}', remote_url='{other.url}', remote_name='other',"
            f" remote_tracker='{trackers[1] if me is a else trackers[0]}', secret='{secret}',"
            f" is_initiator={me is a}, incoming_project_key='{project}', incoming_project_name='{project}')"
        )
    return cid
