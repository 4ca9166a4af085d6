"""Benchmark: read N incidents with their comments and attachments through ServiceNowAdapter.

    .venv/bin/python benchmarks/adapter_read.py [--incidents 60] [--latency-ms 20] [--concurrency 4]

It starts its own ServiceNow sandbox (``manage.py servicenow_sandbox``) in a temporary
folder, creates N incidents with three public comments, one work note and one attachment
each (no latency), then sets the sandbox's per-request latency and reads every incident
with ``read_replica`` from ``--concurrency`` threads, one adapter per thread.

It prints the HTTP requests per incident against the minimum (3: incident GET, journal
list, attachment list), counted both by the clients and by the sandbox, and the wall
time against the bound ``minimum calls x latency / concurrency``. Targets: no more
calls than the minimum; wall time within 1.5x the bound. Author display names are
cached per process; one untimed warm-up read fills the cache first (its cost is printed).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIN_CALLS_PER_INCIDENT = 3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=60)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    if args.incidents < 1 or args.concurrency < 1 or args.latency_ms < 0:
        parser.error("--incidents and --concurrency must be >= 1, --latency-ms >= 0")

    workdir = Path(tempfile.mkdtemp(prefix="adapter-bench-"))
    os.environ["EXALATE_VAR_DIR"] = str(workdir / "var")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exalate_console.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import requests

    from servicenow_adapter.adapter import ServiceNowAdapter
    from servicenow_adapter.client import BasicCredentials, ServiceNowClient
    from tests.live import free_port, wait_for

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(workdir / "sandbox.log", "wb")  # noqa: SIM115 - open for the child's lifetime
    sandbox = subprocess.Popen(
        [sys.executable, "manage.py", "servicenow_sandbox", "--port", str(port), "--db", str(workdir / "sb.sqlite3"),
         "--seed", "demo"],
        cwd=ROOT, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(
            lambda: requests.get(f"{url}/api/now/table/incident?sysparm_limit=1", auth=("admin", "admin"), timeout=2).ok,
            timeout=30, what="sandbox", proc=sandbox, log=workdir / "sandbox.log",
        )  # fmt: skip

        def new_adapter() -> ServiceNowAdapter:
            client = ServiceNowClient(
                url, credentials=BasicCredentials(username="admin", password="admin"), timeout=30
            )
            return ServiceNowAdapter(client)

        setup = new_adapter()
        writer = ServiceNowAdapter(
            ServiceNowClient(
                url, credentials=BasicCredentials(username="beth.anglin", password="beth")
            )
        )
        ids = []
        for i in range(args.incidents):
            ref = setup.create_entity(
                summary=f"Benchmark incident {i}",
                description="Line 1\nLine 2",
                entity_type="incident",
            )
            for n in range(3):
                (writer if n % 2 else setup).client.table_update(
                    "incident", ref.id, {"comments": f"Comment {n} on {i}"}
                )
            setup.client.table_update("incident", ref.id, {"work_notes": "internal"})
            setup.add_attachment(
                ref.id, file_name=f"log-{i}.txt", content_type="text/plain", chunks=[b"x" * 2048]
            )
            ids.append(ref.id)

        requests.post(
            f"{url}/sandbox/faults", json={"latency_ms": args.latency_ms}, timeout=5
        ).raise_for_status()
        warm = new_adapter()
        warm.read_replica(ids[0])
        warm_calls = warm.client.calls
        requests.delete(f"{url}/sandbox/stats", timeout=5)

        local = threading.local()
        adapters: list[ServiceNowAdapter] = []
        lock = threading.Lock()

        def read(sys_id: str) -> int:
            if not hasattr(local, "adapter"):
                local.adapter = new_adapter()
                with lock:
                    adapters.append(local.adapter)
            replica = local.adapter.read_replica(sys_id)
            return len(replica["comments"]) + len(replica["attachments"])

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            items = sum(pool.map(read, ids))
        wall = time.perf_counter() - started
        client_calls = sum(a.client.calls for a in adapters)
        server_calls = requests.get(f"{url}/sandbox/stats", timeout=5).json().get("total", 0)
    finally:
        os.killpg(sandbox.pid, 15)
        sandbox.wait(timeout=15)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)

    n = args.incidents
    minimum = MIN_CALLS_PER_INCIDENT * n
    bound = minimum * args.latency_ms / 1000.0 / args.concurrency
    print(
        f"ran on: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}"
    )
    print(
        f"read {n} incidents ({items} comments + attachments) at {args.latency_ms:g} ms latency, concurrency {args.concurrency}"
    )
    print(f"warm-up read (not timed): {warm_calls} calls (3 + 1 sys_user lookup for author names)")
    print(
        f"calls per incident: {client_calls / n:.2f} (clients) / {server_calls / n:.2f} (sandbox); minimum {MIN_CALLS_PER_INCIDENT}"
    )
    print(
        f"wall time: {wall:.3f} s; bound {minimum} calls x {args.latency_ms:g} ms / {args.concurrency} = {bound:.3f} s; ratio {wall / bound if bound else float('nan'):.2f}"
    )
    ok_calls = client_calls <= minimum and server_calls <= minimum
    ok_time = bound == 0 or wall <= 1.5 * bound
    print(
        f"targets: calls {'met' if ok_calls else 'MISSED'}, wall time within 1.5x {'met' if ok_time else 'MISSED'}"
    )
    return 0 if ok_calls and ok_time else 1


if __name__ == "__main__":
    sys.exit(main())
