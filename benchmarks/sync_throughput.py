"""Benchmark: sync N incidents between two nodes through two ServiceNow sandboxes.

    .venv/bin/python benchmarks/sync_throughput.py [--incidents 60] [--latency-ms 20]
        [--attachment-kb 100] [--big-mb 100] [--samples 10] [--poll-interval 5]

It starts its own two sandboxes and two nodes (tests/live.py: each node is web + one
Celery worker process with beat, SQLite and the file-system broker, as ``make run``
gives), links them with an active public connection, then:

1. creates N incidents on sandbox A (3 public comments and one attachment each; not timed),
   sets every sandbox request to take ``--latency-ms`` more, exalates all N through
   node A's API and waits until every twin is Synchronized: **incidents per minute**;
2. counts the ServiceNow requests both sandboxes served during step 1, until both nodes
   are quiet: **calls per incident** against the minimum (9, issue 14: on A the number
   lookup, which reads the incident too, its journal, its attachment list and the
   attachment's bytes; on B the create carrying the first comment, two more comments, one
   upload and one journal read to learn the ids of what it wrote);
3. adds a comment on A to ``--samples`` synced incidents and times until it is on B,
   announced by the webhook (as a ServiceNow business rule does) one change at a time
   and all at once, and found by polling every ``--poll-interval`` s:
   **change-to-mirror latency p50 / p95**;
4. syncs one incident with a ``--big-mb`` attachment and reads the peak resident memory
   (VmHWM) of node B's worker processes before and after: **added peak memory**.

Targets (issue #5): >= 300 incidents/min on two cores; webhook p50 < 2 s; polling p50 <
poll interval + 2 s; the big attachment adds < 50 MB to the worker's peak memory. Everything
listens on 127.0.0.1; the whole run is bounded by ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from benchmarks.common import (  # noqa: E402,F401 - Bench & co. are imported from here too
    Bench,
    memory_kb,
    percentile,
    reset_peaks,
    webhook_token,
)
from tests.live import wait_for  # noqa: E402

MIN_CALLS_PER_INCIDENT = 9
TARGETS = {"per_minute": 300, "webhook_p50": 2.0, "poll_slack": 2.0, "memory_mb": 50}


def run(args) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="sync-bench-"))
    deadline = time.monotonic() + args.timeout
    bench = Bench(args, workdir)
    print(f"Sync benchmark on {platform.node()} ({os.cpu_count()} CPUs), work folder {workdir}")
    try:
        t0 = time.monotonic()
        bench.start()
        print(f"  started 2 sandboxes and 2 nodes in {time.monotonic() - t0:.1f} s")
        attachment = os.urandom(args.attachment_kb * 1024)
        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            incidents = list(
                pool.map(lambda i: bench.create_incident(i, attachment), range(args.incidents))
            )
        print(
            f"  created {len(incidents)} incidents (3 comments, {args.attachment_kb} KB attachment each) in {time.monotonic() - t0:.1f} s"
        )

        # 1 + 2: throughput and calls per incident
        bench.latency(args.latency_ms)
        bench.stats(reset=True)
        t0 = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda inc: bench.exalate(inc["number"]), incidents))

        def all_synchronized():
            twins = bench.twins()
            done = sum(t["status"] == "synchronized" and bool(t["remote"]["id"]) for t in twins)
            errors = [t for t in twins if t["status"] == "error"]
            assert not errors, errors[:3]
            return done >= len(incidents)

        wait_for(
            all_synchronized,
            timeout=max(10, deadline - time.monotonic()),
            what="all incidents synchronized",
            log=bench.a.log_path,
        )
        elapsed = time.monotonic() - t0

        def quiet():  # B's echo checks and both change listings done: nothing left to do
            for node in (bench.a, bench.b):
                api = bench.api if node is bench.a else bench.api_b
                twins = api.get(
                    f"{node.url}/api/twins/", params={"connection": bench.connection}, timeout=30
                ).json()
                twins = twins["results"] if isinstance(twins, dict) else twins
                if any(t["needs_scan"] or t["status"] != "synchronized" for t in twins):
                    return False
            return True

        wait_for(quiet, timeout=max(10, deadline - time.monotonic()), what="both nodes quiet")
        quiet_after = time.monotonic() - t0
        calls = bench.stats()
        per_minute = len(incidents) / elapsed * 60
        total_calls = calls["A"].get("total", 0) + calls["B"].get("total", 0)
        print(
            f"\n1. Throughput: {len(incidents)} incidents in {elapsed:.1f} s = {per_minute:.0f} incidents/min"
            f" (target >= {TARGETS['per_minute']}) at {args.latency_ms:g} ms per ServiceNow request;"
            f" both nodes quiet (echo checks done) after {quiet_after:.1f} s"
        )
        print(
            f"2. ServiceNow calls per incident: {total_calls / len(incidents):.1f} (minimum {MIN_CALLS_PER_INCIDENT});"
            f" A {calls['A'].get('total', 0) / len(incidents):.1f}, B {calls['B'].get('total', 0) / len(incidents):.1f}"
        )
        for label in ("A", "B"):
            rows = sorted(
                ((k, v) for k, v in calls[label].items() if k != "total"), key=lambda kv: -kv[1]
            )
            print(f"   {label}: " + ", ".join(f"{k} {v / len(incidents):.2f}" for k, v in rows))

        # 3: change-to-mirror latency, webhook and polling
        mirror_of = {t["local"]["id"]: t["remote"]["id"] for t in bench.twins()}
        token = webhook_token(bench.a)
        samples = incidents[: args.samples]

        def measure(inc, i, path):
            text = f"latency-{path}-{i}-{uuid.uuid4().hex[:8]}"
            if path == "poll":  # spread the changes over the poll interval
                time.sleep(args.poll_interval * i / max(1, len(samples)))
            start = time.monotonic()
            bench.sn_a.patch(
                f"{bench.sandbox_a.url}/api/now/table/incident/{inc['sys_id']}",
                json={"comments": text},
                timeout=30,
            )
            if path == "webhook":
                requests.post(
                    f"{bench.a.url}/api/webhooks/servicenow/",
                    json={"sys_id": inc["sys_id"]},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=10,
                )
            wait_for(
                lambda: bench.journal_has(mirror_of[inc["sys_id"]], text),
                timeout=120,
                what=f"{path} change mirrored",
            )
            return time.monotonic() - start

        results = {"lone": [measure(inc, i, "webhook") for i, inc in enumerate(samples)]}
        for path in ("webhook", "poll"):
            with ThreadPoolExecutor(len(samples)) as pool:
                results[path] = list(
                    pool.map(lambda p, path=path: measure(p[1], p[0], path), enumerate(samples))
                )
        print(f"3. Change-to-mirror latency over {len(samples)} changes:")
        print(
            f"   webhook, one change at a time: p50 {percentile(results['lone'], 0.5):.2f} s, p95 {percentile(results['lone'], 0.95):.2f} s (issue 14 target p50 <= 1 s, p95 <= 2 s)"
        )
        print(
            f"   webhook, {len(samples)} changes at once: p50 {percentile(results['webhook'], 0.5):.2f} s, p95 {percentile(results['webhook'], 0.95):.2f} s (target p50 < {TARGETS['webhook_p50']:g} s)"
        )
        print(
            f"   polling p50 {percentile(results['poll'], 0.5):.2f} s, p95 {percentile(results['poll'], 0.95):.2f} s"
            f" (poll interval {args.poll_interval:g} s; target p50 < {args.poll_interval + TARGETS['poll_slack']:g} s)"
        )

        # 4: the big attachment
        bench.latency(0)
        big = bench.sn_a.post(
            f"{bench.sandbox_a.url}/api/now/table/incident",
            json={"short_description": "Big attachment"},
            timeout=30,
        ).json()["result"]
        size = args.big_mb * 1024 * 1024
        digest = hashlib.sha256()

        def chunks():
            block = os.urandom(1024 * 1024)
            for _ in range(args.big_mb):
                digest.update(block)
                yield block

        t0 = time.monotonic()
        bench.upload(big["sys_id"], "big.bin", chunks())
        print(
            f"4. Uploaded a {args.big_mb} MB attachment to sandbox A in {time.monotonic() - t0:.1f} s"
        )
        workers = [w for node in (bench.a, bench.b) for w in node.workers]
        pids = [pid for w in workers for pid in w.pids()]
        before = memory_kb(pids, "VmRSS")
        if not reset_peaks(pids):
            print("   (cannot reset peak memory counters: the figure below includes earlier peaks)")
        t0 = time.monotonic()
        request_id = bench.exalate(big["number"])

        def big_done():
            data = bench.api.get(
                f"{bench.a.url}/api/exalate-requests/{request_id}/", timeout=30
            ).json()
            twin = data.get("twin")
            assert data["status"] != "error", data
            return (
                twin if twin and twin["status"] == "synchronized" and twin["remote"]["id"] else None
            )

        twin = wait_for(
            big_done,
            timeout=max(30, deadline - time.monotonic()),
            what="big attachment synchronized",
            log=bench.b.log_path,
        )
        moved = time.monotonic() - t0
        after = memory_kb(pids, "VmHWM")
        deltas = {pid: (after[pid] - before[pid]) / 1024 for pid in after if pid in before}
        rows = bench.sn_b.get(
            f"{bench.sandbox_b.url}/api/now/attachment",
            params={"sysparm_query": f"table_sys_id={twin['remote']['id']}"},
            timeout=30,
        ).json()["result"]
        same = rows and rows[0]["hash"] == digest.hexdigest() and int(rows[0]["size_bytes"]) == size
        print(
            f"   synced in {moved:.1f} s ({args.big_mb / moved:.1f} MB/s), bytes identical on B: {bool(same)}"
        )
        print(
            f"   worker peak memory during the transfer (VmHWM after a reset) minus resident memory before:"
            f" max {max(deltas.values()):.1f} MB over {len(deltas)} worker processes (target < {TARGETS['memory_mb']} MB);"
            f" peaks {', '.join(f'{v / 1024:.0f}' for v in after.values())} MB"
        )
        return 0
    finally:
        bench.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=60)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--attachment-kb", type=int, default=100)
    parser.add_argument("--big-mb", type=int, default=100)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument(
        "--concurrency", type=int, default=4, help="Celery worker processes per node."
    )
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="Upper bound of the whole run, seconds."
    )
    args = parser.parse_args()
    if args.incidents < 1 or args.samples < 1 or args.big_mb < 1 or args.poll_interval < 0.5:
        parser.error("--incidents, --samples, --big-mb must be >= 1 and --poll-interval >= 0.5")
    args.samples = min(args.samples, args.incidents)
    timer = threading.Timer(args.timeout + 120, lambda: os._exit(3))  # hard stop if anything hangs
    timer.daemon = True
    timer.start()
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
