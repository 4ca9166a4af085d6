"""Benchmark: a trigger matching N seeded incidents, from Save to all Synchronized (issue 13).

    .venv/bin/python benchmarks/trigger_bulk.py [--incidents 1000] [--latency-ms 20]
        [--attachment-kb 100] [--others 20] [--poll-interval 5] [--no-kill]

It starts two sandboxes and two nodes (``benchmarks/sync_throughput.py``'s cast: each node
web + one Celery worker with beat, SQLite, the file-system broker), then:

1. seeds N incidents on sandbox A whose summary starts with ``Trig`` (3 public comments
   and one ``--attachment-kb`` attachment each) and ``--others`` that do not match; sets
   every sandbox request to take ``--latency-ms`` more; saves the trigger
   ``short_descriptionSTARTSWITHTrig`` through node A's API and waits until all N twins
   are Synchronized: **incidents per minute** and **ServiceNow calls per incident** (both
   sandboxes, until quiet), and checks that sandbox B holds exactly N mirrors;
2. changes one of the others to match and times until its mirror exists (one poll);
3. starts a Bulk Exalate of the trigger (every twin re-checked), SIGKILLs node A's
   worker in the middle, starts a new one and waits for the run to end: the bar must reach
   100 % and sandbox B must still hold exactly N + 1 mirrors (no duplicate).

Targets: >= 500 incidents/min on two cores; a poll costs one request per trigger.
Returns non-zero when a check fails. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.sync_throughput import Bench  # noqa: E402
from tests.live import wait_for  # noqa: E402

QUERY = "short_descriptionSTARTSWITHTrig"


def mirrors(bench) -> int:
    r = bench.sn_b.get(
        f"{bench.sandbox_b.url}/api/now/table/incident",
        params={"sysparm_limit": "1", "sysparm_fields": "sys_id"},
        timeout=30,
    )
    return int(r.headers.get("X-Total-Count", "0"))


def synchronized(bench) -> int:
    out = bench.a.shell(
        "from sync.models import Twin; print(Twin.objects.filter(status='synchronized')"
        ".exclude(remote_entity_id='').count())"
    )
    return int(out.strip().splitlines()[-1])


def seed(bench, i: int, summary: str, attachment: bytes) -> dict:
    base = bench.sandbox_a.url
    row = bench.sn_a.post(
        f"{base}/api/now/table/incident",
        json={"short_description": f"{summary} {i}", "description": f"Incident {i}"},
        timeout=30,
    ).json()["result"]
    for c in range(3):
        bench.sn_a.patch(
            f"{base}/api/now/table/incident/{row['sys_id']}",
            json={"comments": f"Comment {c} of {i}"},
            timeout=30,
        )
    if attachment:
        bench.upload(row["sys_id"], f"file-{i}.bin", attachment)
    return row


def run(args) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="trigger-bench-"))
    deadline = time.monotonic() + args.timeout
    args.concurrency = args.concurrency or 2
    bench = Bench(args, workdir)
    print(f"Trigger benchmark on {platform.node()} ({os.cpu_count()} CPUs), work folder {workdir}")
    failures = []
    try:
        bench.start()
        attachment = os.urandom(args.attachment_kb * 1024)
        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: seed(bench, i, "Trig", attachment), range(args.incidents)))
            others = list(pool.map(lambda i: seed(bench, i, "Other", b""), range(args.others)))
        print(
            f"  seeded {args.incidents} matching + {args.others} other incidents in {time.monotonic() - t0:.1f} s"
        )

        bench.latency(args.latency_ms)
        bench.stats(reset=True)
        t0 = time.monotonic()
        r = bench.api.post(
            f"{bench.a.url}/api/triggers/",
            json={"connection": bench.connection, "query": QUERY, "entity_type": "incident"},
            timeout=60,
        )
        assert r.status_code == 201, r.text
        trigger = r.json()
        print(f"  Save: {trigger['match_count']} matches counted in {time.monotonic() - t0:.2f} s")
        wait_for(
            lambda: synchronized(bench) >= args.incidents,
            timeout=max(10, deadline - time.monotonic()),
            what="all matches synchronized",
            log=bench.a.log_path,
        )
        elapsed = time.monotonic() - t0
        time.sleep(3)  # let the last acknowledgements and echo checks finish
        stats = bench.stats()
        calls = stats["A"].get("total", 0) + stats["B"].get("total", 0)
        rate = args.incidents / elapsed * 60
        print(
            f"  Save -> all {args.incidents} Synchronized in {elapsed:.1f} s: {rate:.0f} incidents/min"
        )
        print(
            f"  ServiceNow calls per incident: {calls / args.incidents:.2f} "
            f"(A {stats['A'].get('total', 0)}, B {stats['B'].get('total', 0)})"
        )
        if mirrors(bench) != args.incidents:
            failures.append(
                f"sandbox B holds {mirrors(bench)} incidents, expected {args.incidents}"
            )

        # 2: an incident changed to match is picked up by the next poll.
        t0 = time.monotonic()
        bench.sn_a.patch(
            f"{bench.sandbox_a.url}/api/now/table/incident/{others[0]['sys_id']}",
            json={"short_description": "Trig now"},
            timeout=30,
        )
        wait_for(
            lambda: mirrors(bench) == args.incidents + 1,
            timeout=args.poll_interval * 2 + 30,
            what="the changed incident mirrored",
            log=bench.a.log_path,
        )
        print(
            f"  changed to match -> mirrored in {time.monotonic() - t0:.1f} s (poll every {args.poll_interval} s)"
        )

        # 3: Bulk Exalate with a worker SIGKILL in the middle.
        bench.stats(reset=True)
        r = bench.api.post(f"{bench.a.url}/api/triggers/{trigger['id']}/bulk-exalate/", timeout=60)
        assert r.status_code == 202, r.text
        run_id = r.json()["id"]

        def run_state():
            return bench.api.get(f"{bench.a.url}/api/bulk-runs/{run_id}/", timeout=30).json()

        t0 = time.monotonic()
        if args.kill:
            wait_for(
                lambda: run_state()["progress"]["done"] >= max(1, (args.incidents + 1) // 3),
                timeout=max(10, deadline - time.monotonic()),
                what="a third of the bulk run done",
            )
            worker = bench.a.workers[0]
            worker.kill()
            print(f"  SIGKILLed node A's worker at {run_state()['progress']['done']} done")
            bench.a.add_worker(beat=True, concurrency=args.concurrency)
        wait_for(
            lambda: run_state()["status"] in ("done", "failed", "cancelled"),
            timeout=max(10, deadline - time.monotonic()),
            what="the bulk run ended",
            log=bench.a.log_path,
        )
        final = run_state()
        p = final["progress"]
        print(
            f"  Bulk Exalate: {final['status']}, {p['percent']} %, done {p['done']}, failed "
            f"{p['failed']}, in {time.monotonic() - t0:.1f} s ({p['rate_per_minute']} per minute)"
        )
        if final["status"] != "done" or p["percent"] != 100 or p["failed"]:
            failures.append(
                f"bulk run ended {final['status']} at {p['percent']} %: {final['failures'][:3]}"
            )
        if mirrors(bench) != args.incidents + 1:
            failures.append(f"after the bulk run sandbox B holds {mirrors(bench)} incidents")
    finally:
        bench.close()
    for f in failures:
        print(f"  FAILED: {f}")
    print("  OK" if not failures else "  NOT OK")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=1000)
    parser.add_argument("--others", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--attachment-kb", type=int, default=100)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--no-kill", dest="kill", action="store_false")
    parser.add_argument("--timeout", type=float, default=1800.0)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
