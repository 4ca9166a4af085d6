"""Build the sandbox app and serve it with gunicorn (one worker process, many threads, keep-alive).

One process keeps the in-memory rows, settings, faults, search index and webhook queue
consistent; threads let several requests (and webhook deliveries) run at once.
"""

from __future__ import annotations

import gunicorn
from gunicorn.app.base import BaseApplication

from .app import SandboxApp, SandboxConfig
from .search_api import Index
from .seed import ensure_site, seed_demo
from .store import Store


def build_app(
    *, db: str, email: str, token: str, time_zone: str, seed: str, config: SandboxConfig
) -> SandboxApp:
    """Open the store at ``db``, ensure the users and projects, apply the seed, return the WSGI app."""
    app = SandboxApp(Store(db), config)
    ensure_site(app, email=email, token=token, time_zone=time_zone)
    if seed == "demo":
        seed_demo(app)
    app.index = Index(app)  # seeded rows are searchable from the start
    return app


class SandboxServer(BaseApplication):
    """gunicorn application that builds the sandbox inside its worker process."""

    def __init__(self, *, host: str, port: int, threads: int, build):
        gunicorn.SERVER = "AtlassianEdge"
        self._build = build
        self._options = {
            "bind": f"{host}:{port}", "workers": 1, "worker_class": "gthread", "threads": threads,
            "keepalive": 30, "timeout": 300, "graceful_timeout": 2, "accesslog": None,
            "errorlog": "-", "loglevel": "warning", "proc_name": f"jira-sandbox:{port}",
        }  # fmt: skip
        super().__init__()

    def load_config(self):
        """gunicorn hook: apply the options."""
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self):
        """gunicorn hook, in the worker: build the app."""
        return self._build()
