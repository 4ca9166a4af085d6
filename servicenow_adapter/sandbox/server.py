"""Serve a :class:`SandboxApp` with gunicorn: one worker process, many threads, keep-alive.

One process keeps the in-memory rows, fault settings and counters consistent; threads
let the sync engine (and a hanging-request fault) run several requests at once.
gunicorn also decodes chunked request bodies, which streamed attachment uploads use.
"""

from __future__ import annotations

import gunicorn
from gunicorn.app.base import BaseApplication

from .app import SandboxApp, SandboxConfig
from .seed import ensure_users, seed_demo
from .store import Store


def build_app(
    *,
    db: str,
    user: str,
    password: str,
    seed: str,
    config: SandboxConfig,
    acl: dict[str, str] | None = None,
) -> SandboxApp:
    """Open the store at ``db``, ensure the users, apply the seed, and return the WSGI app.

    ``acl`` (table → ``allow``/``deny``/``hide``/``empty``/``hide:<query>``, see
    :mod:`.auth`) replaces the integration user's table rights when given.
    """
    store = Store(db)
    ensure_users(store, user, password)
    if acl is not None:
        row = store.user(user)
        row = dict(row, _acl=dict(acl))
        store.put("sys_user", row)
    if seed == "demo":
        seed_demo(store)
    return SandboxApp(store, config)


class SandboxServer(BaseApplication):
    """gunicorn application that builds the sandbox inside its worker process."""

    def __init__(self, *, host: str, port: int, threads: int, build):
        gunicorn.SERVER = "ServiceNow"  # the Server header instances send
        self._build = build
        self._options = {
            "bind": f"{host}:{port}",
            "workers": 1,
            "worker_class": "gthread",
            "threads": threads,
            "keepalive": 30,
            "timeout": 300,
            "graceful_timeout": 2,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
            "proc_name": f"servicenow-sandbox:{port}",
        }
        super().__init__()

    def load_config(self):
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self):
        return self._build()
