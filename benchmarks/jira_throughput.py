"""Benchmark: sync N incidents from a ServiceNow node to a Jira node (issue #15).

    .venv/bin/python benchmarks/jira_throughput.py [--incidents 60] [--latency-ms 20]
        [--attachment-kb 100] [--big-mb 100] [--samples 10] [--poll-interval 5]

The same figures as ``benchmarks/sync_throughput.py`` (``make bench-sync``), for
ServiceNow → Jira: it starts a ServiceNow sandbox and a Jira Cloud sandbox, node A on the
first and node C on the second (tests/live.py: web + one Celery worker with beat, SQLite
and the file-system broker), links them with an active public connection whose incoming
project on C is TEST, then:

1. creates N incidents on the ServiceNow sandbox (3 public comments and one attachment
   each; not timed), sets every sandbox request to take ``--latency-ms`` more, exalates all
   N through node A's API and waits until every twin is Synchronized: **incidents per minute**;
2. counts the requests both sandboxes served during step 1 until both nodes are quiet:
   **calls per incident** against the minimum (9: on ServiceNow the number lookup, which
   reads the incident too, its journal, its attachment list and the bytes; on Jira the
   create, three comments and one upload);
3. adds a comment on ServiceNow to ``--samples`` synced incidents and times until it is on
   the Jira issue, announced by node A's webhook and found by polling every
   ``--poll-interval`` s: **change-to-mirror latency p50 / p95**;
4. syncs one incident with a ``--big-mb`` attachment and reads the peak resident memory
   of node C's worker processes (which streams it into Jira): **added peak memory**.

Targets as for ServiceNow ↔ ServiceNow: >= 300 incidents/min on two cores; webhook p50 <
2 s; polling p50 < poll interval + 2 s; the big attachment adds < 50 MB to a worker's peak.
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

from benchmarks.common import (  # noqa: E402
    Bench,
    memory_kb,
    node_env,
    percentile,
    reset_peaks,
    webhook_token,
)
from benchmarks.sync_throughput import MIN_CALLS_PER_INCIDENT, TARGETS  # noqa: E402
from tests.jira_live import EMAIL, TOKEN, JiraSandbox  # noqa: E402
from tests.live import LiveNode, LiveSandbox, link_nodes, wait_for  # noqa: E402

PERSON = ("dana.ops@example.com", "dana-token")  # reads the Jira side (not the sync account)


class JiraBench(Bench):
    """Bench with node B replaced by node C on a Jira sandbox (``self.b`` is node C)."""

    def __init__(self, args, workdir: Path):
        self.args = args
        env = node_env(args)
        self.workdir = workdir
        self.sandbox_a = LiveSandbox(workdir / "sandbox-a", seed="")
        self.a = LiveNode(workdir / "node-a", name="Bench A", sandbox=self.sandbox_a, env=env)
        self.jira_env = env
        self.parts_started: list = []

    def start(self):
        self.sandbox_a.start()
        self.parts_started.append(self.sandbox_a)
        (self.workdir / "jira").mkdir(parents=True, exist_ok=True)
        self.jira = JiraSandbox(self.workdir / "jira", "cloud")
        self.parts_started.append(self.jira)
        self.b = LiveNode(
            self.workdir / "node-c",
            name="Bench C (Jira)",
            env={**self.jira_env, "JIRA_INSTANCE_URL": self.jira.url, "JIRA_AUTH": "cloud",
                 "JIRA_EMAIL": EMAIL, "JIRA_API_TOKEN": TOKEN},
        )  # fmt: skip
        for node in (self.a, self.b):
            node.start(worker=False)
            self.parts_started.append(node)
            node.add_worker(beat=True, concurrency=self.args.concurrency)
        self.connection = link_nodes(
            self.a, self.b, name="bench", trackers=("servicenow", "jira"), project_b="TEST"
        )
        self.api = self.a.login()
        self.api_b = self.b.login()
        self.sn_a = self.sandbox_a.session()
        self.person = requests.Session()
        self.person.auth = PERSON
        self.person.headers["Accept"] = "application/json"

    def latency(self, ms: float) -> None:
        self.sn_a.post(f"{self.sandbox_a.url}/sandbox/faults", json={"latency_ms": ms}, timeout=10)
        if ms:
            self.jira.control("faults", {"latency_ms": ms})
        else:
            self.jira.control("faults", method="DELETE")

    def stats(self, reset: bool = False) -> dict[str, dict]:
        sn = (self.sn_a.delete if reset else self.sn_a.get)(
            f"{self.sandbox_a.url}/sandbox/stats", timeout=10
        ).json()
        jira = self.jira.control("stats", method="DELETE" if reset else "GET")
        return {"ServiceNow": sn, "Jira": jira}

    def comment_on_issue(self, issue_id: str, text: str) -> bool:
        r = self.person.get(
            f"{self.jira.url}/rest/api/3/issue/{issue_id}/comment",
            params={"maxResults": 100, "orderBy": "-created"},
            timeout=10,
        )
        return text in r.text


def run(args) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="jira-bench-"))
    deadline = time.monotonic() + args.timeout
    bench = JiraBench(args, workdir)
    print(
        f"ServiceNow → Jira benchmark on {platform.node()} ({os.cpu_count()} CPUs), work folder {workdir}"
    )
    try:
        t0 = time.monotonic()
        bench.start()
        print(
            f"  started a ServiceNow and a Jira sandbox and 2 nodes in {time.monotonic() - t0:.1f} s"
        )
        attachment = os.urandom(args.attachment_kb * 1024)
        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            incidents = list(
                pool.map(lambda i: bench.create_incident(i, attachment), range(args.incidents))
            )
        print(
            f"  created {len(incidents)} incidents (3 comments, {args.attachment_kb} KB attachment each)"
            f" in {time.monotonic() - t0:.1f} s"
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

        def quiet():
            for node, api in ((bench.a, bench.api), (bench.b, bench.api_b)):
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
        n = len(incidents)
        per_minute = n / elapsed * 60
        totals = {side: calls[side].get("total", 0) for side in calls}
        print(
            f"\n1. Throughput: {n} incidents in {elapsed:.1f} s = {per_minute:.0f} incidents/min"
            f" (target >= {TARGETS['per_minute']}) at {args.latency_ms:g} ms per tracker request;"
            f" both nodes quiet (echo checks done) after {quiet_after:.1f} s"
        )
        print(
            f"2. Tracker calls per incident: {sum(totals.values()) / n:.1f} (minimum {MIN_CALLS_PER_INCIDENT});"
            + "".join(f" {side} {total / n:.1f}" for side, total in totals.items())
        )
        for side in calls:
            rows = sorted(
                ((k, v) for k, v in calls[side].items() if k != "total"), key=lambda kv: -kv[1]
            )
            print(f"   {side}: " + ", ".join(f"{k} {v / n:.2f}" for k, v in rows))

        # 3: change-to-mirror latency, webhook and polling
        mirror_of = {t["local"]["id"]: t["remote"]["id"] for t in bench.twins()}
        token = webhook_token(bench.a)
        samples = incidents[: args.samples]

        def measure(inc, i, path):
            text = f"latency-{path}-{i}-{uuid.uuid4().hex[:8]}"
            if path == "poll":
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
                lambda: bench.comment_on_issue(mirror_of[inc["sys_id"]], text),
                timeout=120,
                what=f"{path} change mirrored",
            )
            return time.monotonic() - start

        results = {}
        for path in ("webhook", "poll"):
            with ThreadPoolExecutor(len(samples)) as pool:
                results[path] = list(
                    pool.map(lambda p, path=path: measure(p[1], p[0], path), enumerate(samples))
                )
        print(
            f"3. Change-to-mirror latency (ServiceNow comment → Jira comment) over {len(samples)} changes:"
        )
        print(
            f"   webhook p50 {percentile(results['webhook'], 0.5):.2f} s, p95 {percentile(results['webhook'], 0.95):.2f} s"
            f" (target p50 < {TARGETS['webhook_p50']:g} s)"
        )
        print(
            f"   polling p50 {percentile(results['poll'], 0.5):.2f} s, p95 {percentile(results['poll'], 0.95):.2f} s"
            f" (poll interval {args.poll_interval:g} s; target p50 < {args.poll_interval + TARGETS['poll_slack']:g} s)"
        )

        # 4: the big attachment into Jira
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
            f"4. Uploaded a {args.big_mb} MB attachment to ServiceNow in {time.monotonic() - t0:.1f} s"
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
        issue = bench.person.get(
            f"{bench.jira.url}/rest/api/3/issue/{twin['remote']['id']}",
            params={"fields": "attachment"},
            timeout=30,
        ).json()
        rows = issue["fields"].get("attachment") or []
        same = False
        if rows and int(rows[0]["size"]) == size:
            got = hashlib.sha256()
            with bench.person.get(
                f"{bench.jira.url}/rest/api/3/attachment/content/{rows[0]['id']}",
                params={"redirect": "false"}, stream=True, timeout=300,
            ) as r:  # fmt: skip
                for block in r.iter_content(1 << 20):
                    got.update(block)
            same = got.hexdigest() == digest.hexdigest()
        print(
            f"   synced in {moved:.1f} s ({args.big_mb / moved:.1f} MB/s), bytes identical on Jira: {same}"
        )
        print(
            f"   worker peak memory during the transfer (VmHWM after a reset) minus resident memory before:"
            f" max {max(deltas.values()):.1f} MB over {len(deltas)} worker processes"
            f" (target < {TARGETS['memory_mb']} MB); peaks {', '.join(f'{v / 1024:.0f}' for v in after.values())} MB"
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
    timer = threading.Timer(args.timeout + 120, lambda: os._exit(3))
    timer.daemon = True
    timer.start()
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
