"""Soak test: N incidents synced both ways through faults, crashes, a peer outage and a
database restart; prints the counts that must be 0 and how long the queues took to drain.

    .venv/bin/python benchmarks/soak.py [--incidents 1000] [--gap 10] [--peer-down 60]
        [--fault-share 0.10] [--drain-timeout 1800]

``make soak N=1000`` runs it. With ``TEST_POSTGRES_URL`` set (e.g.
``postgres://postgres@127.0.0.1:5432``) each node gets its own PostgreSQL database and the
database restart is part of the run; with ``TEST_REDIS_URL`` the broker is Redis. What it
does step by step is in ``tests/soak.py``. Exit status 0 when every count is 0 and the
queues drained, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.soak import Soak  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=1000, help="N (even; half from each side)")
    parser.add_argument("--gap", type=float, default=10.0, help="seconds between chaos steps")
    parser.add_argument("--peer-down", type=float, default=60.0, help="seconds node B is down")
    parser.add_argument("--fault-share", type=float, default=0.10, help="share of faulted requests")
    parser.add_argument("--drain-timeout", type=float, default=1800.0)
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes per node")
    args = parser.parse_args()
    if args.incidents < 2 or not 0 <= args.fault_share < 1:
        parser.error("--incidents must be >= 2 and --fault-share in [0, 1)")
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    backend = "PostgreSQL" if os.environ.get("TEST_POSTGRES_URL") else "SQLite"
    broker = "Redis" if os.environ.get("TEST_REDIS_URL") else "file-system broker"
    print(
        f"Soak on {platform.node()} ({os.cpu_count()} CPUs), {backend}, {broker}, work folder {workdir}",
        flush=True,
    )
    # Hard stop if anything hangs: well after the drain timeout.
    timer = threading.Timer(args.drain_timeout + 3600, lambda: os._exit(3))
    timer.daemon = True
    timer.start()
    soak = Soak(
        workdir,
        n=args.incidents,
        gap=args.gap,
        peer_down=args.peer_down,
        fault_share=args.fault_share,
        drain_timeout=args.drain_timeout,
        concurrency=args.concurrency,
        log=lambda text: print(text, flush=True),
    )
    try:
        result = soak.run()
    finally:
        soak.close()
    print(result.report(), flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
