"""The sandbox's command-line options and start-up, shared by ``manage.py jira_sandbox`` and
``python -m jira_adapter.sandbox`` (which needs no Django settings).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from zoneinfo import ZoneInfo

from .app import SandboxConfig
from .server import SandboxServer, build_app


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options (see the package docstring for what each changes)."""
    add = parser.add_argument
    add("--port", type=int, default=8201, help="TCP port (default 8201).")
    add("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
    add("--db", default="", help="SQLite file (default VAR_DIR/jira_sandbox.sqlite3).")
    add("--seed", choices=["demo", "none"], default="none", help="Seed data to add once.")
    add("--flavour", choices=["cloud", "dc"], default="cloud",
        help="cloud: REST v3, ADF, Basic email:API-token; dc: REST v2, wiki markup, Bearer PAT.")  # fmt: skip
    add("--email", default="sync-bot@example.com", help="Integration account's e-mail.")
    add(
        "--token",
        default="sandbox-token",
        help="Its API token (cloud) or personal access token (dc).",
    )
    add(
        "--time-zone",
        default="America/Los_Angeles",
        help="Its profile time zone (JQL dates are read in it).",
    )
    add("--latency-ms", type=float, default=0.0, help="Delay added to every API request.")
    add(
        "--index-lag",
        type=float,
        default=None,
        help="Seconds before a write shows in search (cloud 1, dc 0).",
    )
    add(
        "--upload-limit",
        type=int,
        default=None,
        help="Attachment size limit, bytes (cloud 1 GiB, dc 10 MiB).",
    )
    add(
        "--no-per-issue-writes",
        action="store_true",
        help="Switch off the 20-writes-per-2-s per-issue limit.",
    )
    add("--threads", type=int, default=32, help="Request threads (default 32).")


def check(opts: dict) -> str | None:
    """An admin-worded problem with the options, or None."""
    if not 0 < opts["port"] < 65536:
        return f"--port {opts['port']} is not a TCP port."
    if opts["latency_ms"] < 0 or opts["threads"] < 1:
        return "--latency-ms must be >= 0 and --threads >= 1."
    if (opts["index_lag"] or 0) < 0 or (
        opts["upload_limit"] is not None and opts["upload_limit"] < 1
    ):
        return "--index-lag must be >= 0 and --upload-limit >= 1."
    if not opts["email"] or "@" not in opts["email"] or not opts["token"]:
        return "--email must be an e-mail address and --token must not be empty."
    try:
        ZoneInfo(opts["time_zone"])
    except Exception:  # noqa: BLE001 - any lookup failure is the same admin error
        return f"--time-zone {opts['time_zone']!r} is not a known time zone."
    return None


def serve(opts: dict, db: Path, write) -> None:
    """Build (and seed) once to show errors early, print the address, then serve until stopped."""
    config = SandboxConfig(flavour=opts["flavour"], latency_ms=opts["latency_ms"],
                           index_lag_seconds=opts["index_lag"], upload_limit=opts["upload_limit"],
                           per_issue_writes=not opts["no_per_issue_writes"])  # fmt: skip
    common = {"db": str(db), "email": opts["email"], "token": opts["token"], "time_zone": opts["time_zone"],
              "config": config}  # fmt: skip
    first = build_app(seed=opts["seed"], **common)
    first.store.close()
    auth = "Basic email:API token" if opts["flavour"] == "cloud" else "Bearer personal access token"
    write(f"Jira sandbox ({opts['flavour']}) on http://{opts['host']}:{opts['port']} "
          f"(db {db}, {auth}: {opts['email']} / {opts['token']})")  # fmt: skip
    SandboxServer(host=opts["host"], port=opts["port"], threads=opts["threads"],
                  build=lambda: build_app(seed="none", **common)).run()  # fmt: skip
