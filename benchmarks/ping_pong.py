"""Benchmark: ping-pong between two nodes through two ServiceNow sandboxes (issue 14).

    .venv/bin/python benchmarks/ping_pong.py [--incidents 1000] [--backend sqlite|postgres|both]
        [--latency-ms 20] [--attachment-kb 100] [--concurrency 2] [--poll-interval 10]

``make bench-pingpong N=1000`` runs it. Per back end it starts two sandboxes and two nodes
(``benchmarks/common.py``): the embedded default (SQLite, file-system broker, one worker
per node) and PostgreSQL + Redis (``TEST_POSTGRES_URL``, default
``postgres://postgres@127.0.0.1:5432``; ``TEST_REDIS_URL``, default
``redis://127.0.0.1:6379``, on Redis databases that are empty; two workers per node). It
seeds N incidents on sandbox A (3 public comments and one ``--attachment-kb`` attachment
each, not timed), sets every sandbox request to take ``--latency-ms`` more, then times
five phases:

1. **exalate**: a trigger matching the N incidents is saved on node A;
2. **comment back**: a comment on every mirror (sandbox B) syncs to its original;
3. **description**: every original's description changes and syncs to its mirror;
4. **round trip**: at once a comment on every original and one on every mirror, each to
   the other side;
5. **unexalate**: a Bulk Unexalate of the trigger, until neither node has a twin left.

Changes in 2-4 are announced by the webhook, as ServiceNow's business rule does. For each
phase it prints the wall time until every mirror was complete, incidents per minute,
ServiceNow calls per incident (both sandboxes, until both nodes are quiet, minus the
benchmark's own reads) against the phase's minimum with every call beyond it named,
change-to-mirror p50/p95, the CPU seconds both nodes' process trees spent per incident
(``/proc/<pid>/stat``) and the workers' peak memory (``VmHWM``, reset per phase).

After each phase it checks every mirror: summary, description, each comment exactly once
on both sides (an echo would bring it back twice), the attachment once with the same
SHA-256 on both sides, exactly N mirrors (no duplicate). Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import re
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from benchmarks import common  # noqa: E402
from benchmarks.common import Bench, attribute, webhook_session  # noqa: E402

BATCH = 100  # incidents per batched source read the minimum assumes (sys_idIN, element_idIN)
TARGETS = {"per_minute": 1000, "calls_bulk": 6.5, "p50": 1.0, "p95": 2.0}
INCIDENT = {"GET /api/now/table/incident", "GET /api/now/table/incident/{sys_id}"}
JOURNAL = {"GET /api/now/table/sys_journal_field"}
ATTACHMENTS = {"GET /api/now/attachment"}
BYTES = {"GET /api/now/attachment/{sys_id}/file"}
CREATE = {"POST /api/now/table/incident"}
WRITE = {"PATCH /api/now/table/incident/{sys_id}", "PUT /api/now/table/incident/{sys_id}"}
UPLOAD = {"POST /api/now/attachment/file"}


def minimum(phase: str, n: int) -> dict[str, list[tuple[str, float, set]]]:
    """The fewest ServiceNow calls a phase needs, per sandbox: ``(what, calls, kinds)``.

    From issue 14: a source reads the incident, its journal and its attachment list
    (batched over ``BATCH`` incidents in a trigger run) and each attachment's bytes; a
    destination makes one create carrying the first comment, one write per further comment
    or changed field, one upload per attachment and one journal read to learn the ids of
    the comments it wrote. An unexalate touches no instance.
    """
    batched = math.ceil(n / BATCH)
    source = [
        ("incident", n, INCIDENT),
        ("journal", n, JOURNAL),
        ("attachment list", n, ATTACHMENTS),
    ]
    if phase == "exalate":
        return {
            "A": [("incidents (batched)", batched, INCIDENT), ("journals (batched)", batched, JOURNAL),
                  ("attachment lists (batched)", batched, ATTACHMENTS), ("bytes", n, BYTES)],
            "B": [("create with 1st comment", n, CREATE), ("2 more comments", 2 * n, WRITE),
                  ("upload", n, UPLOAD), ("journal read", n, JOURNAL)],
        }  # fmt: skip
    comment = [("comment write", n, WRITE), ("journal read", n, JOURNAL)]
    if phase == "comment back":
        return {"B": source, "A": comment}
    if phase == "description":
        return {"A": source, "B": [("description write", n, WRITE)]}
    if phase == "round trip":
        return {"A": source + comment, "B": source + comment}
    return {"A": [], "B": []}


class PingPong:
    """One back end's run: the cast, the seeded incidents, and the phases' figures."""

    def __init__(self, args, backend: str, workdir: Path):
        self.args, self.backend, self.n = args, backend, args.incidents
        self.run_id = uuid.uuid4().hex[:6]
        self.prefix = f"PP{self.run_id}"
        self.bench = Bench(args, workdir, workers=2 if backend == "postgres" else 1)
        self.rows: list[dict] = []
        self.digests: list[str] = []
        self.comments: dict[int, list[str]] = {}
        self.descriptions: dict[int, str] = {}
        self.mirror: dict[int, str] = {}
        self.failures: list[str] = []
        self.results: list[dict] = []

    # --- reading the sandboxes -------------------------------------------------------------
    def rows_of(self, side: str, table: str, query: str, fields: str) -> list[dict]:
        """Every row of ``table`` matching ``query`` on sandbox ``side`` (``Bench.rows``)."""
        return self.bench.rows(side, table, query, fields)

    def index_of(self, text: str, marker: str) -> int | None:
        """The incident index ``i`` written as ``<marker>-<i>`` in ``text``, or None."""
        m = re.search(rf"{marker}-(\d+)\b", text or "")
        return int(m.group(1)) if m else None

    # --- setting up ------------------------------------------------------------------------
    def seed(self) -> None:
        """Create the N incidents on sandbox A, each with 3 comments and its own attachment."""

        def one(i):
            data = hashlib.sha256(f"{self.run_id}-{i}".encode()).digest() * (
                self.args.attachment_kb * 1024 // 32
            )
            row = self.bench.create_incident(i, data, summary=f"{self.prefix}-{i}")
            return row, hashlib.sha256(data).hexdigest()

        with ThreadPoolExecutor(8) as pool:
            done = list(pool.map(one, range(self.n)))
        self.rows = [r for r, _ in done]
        self.digests = [d for _, d in done]
        lower = self.prefix.lower()
        self.comments = {
            i: [f"Comment {c} of {lower}-{i} {i}" for c in range(3)] for i in range(self.n)
        }
        self.descriptions = {i: f"{self.prefix}-{i} incident {i}" for i in range(self.n)}

    def change(self, side: str, i: int, fields: dict) -> float:
        """Change original (A) or mirror (B) ``i`` and announce it by the webhook; its time."""
        b = self.bench
        sb, s, node = (b.sandbox_a, b.sn_a, b.a) if side == "A" else (b.sandbox_b, b.sn_b, b.b)
        sys_id = self.rows[i]["sys_id"] if side == "A" else self.mirror[i]
        at = time.monotonic()
        r = s.patch(f"{sb.url}/api/now/table/incident/{sys_id}", json=fields, timeout=30)
        r.raise_for_status()
        r = self.hooks[side].post(f"{node.url}/api/webhooks/servicenow/", json={"sys_id": sys_id},
                                  headers={"Authorization": f"Bearer {self.tokens[side]}"}, timeout=30)  # fmt: skip
        assert r.status_code == 202, r.text
        return at

    # --- one phase -------------------------------------------------------------------------
    def phase(self, name: str, start, observe, keys: int) -> None:
        """Run ``start()`` (in a thread; returns ``{key: change time}`` or one start time) while
        ``observe()`` (``{key}`` mirrored now) is polled; then wait until both nodes are quiet."""
        b, n = self.bench, self.n
        workers = common.worker_pids(b.a) + common.worker_pids(b.b)
        common.reset_peaks(workers)
        cpu0 = {
            k: common.process_tree_cpu(common.node_roots(node))
            for k, node in (("A", b.a), ("B", b.b))
        }
        b.stats(reset=True)
        own0 = {"A": Counter(b.sn_a.calls), "B": Counter(b.sn_b.calls)}
        t0 = time.monotonic()
        changed: dict = {}

        def changes():
            try:
                changed.update(start() or {})
            except Exception as exc:  # noqa: BLE001 - a failed check, the phase still ends
                self.failures.append(f"{self.backend} {name}: making the changes stopped: {exc!r}")

        thread = threading.Thread(target=changes, daemon=True)
        thread.start()
        seen: dict = {}
        deadline = t0 + self.args.phase_timeout
        while time.monotonic() < deadline:
            now = time.monotonic()
            try:
                for key in observe() - seen.keys():
                    seen[key] = now
            except (requests.RequestException, ValueError) as exc:
                print(f"  (reading the sandboxes failed once: {exc})")
            if len(seen) >= keys and not thread.is_alive():
                break
            time.sleep({"exalate": 0.5, "unexalate": 1.0}.get(name, 0.2))
        thread.join(timeout=60)
        wall = (max(seen.values()) if seen else time.monotonic()) - t0
        if len(seen) < keys:
            self.failures.append(f"{self.backend} {name}: {len(seen)} of {keys} mirrored in time")
        quiet = self.wait_quiet()
        cpu1 = {
            k: common.process_tree_cpu(common.node_roots(node))
            for k, node in (("A", b.a), ("B", b.b))
        }
        served = b.stats()
        peak = max(common.memory_kb(workers, "VmHWM").values(), default=0) / 1024
        lat = [seen[k] - changed.get(k, changed.get("*", t0)) for k in seen]
        mins, beyond, total = minimum(name, n), {}, 0
        floor = 0
        for side, own in (("A", b.sn_a.calls - own0["A"]), ("B", b.sn_b.calls - own0["B"])):
            calls = Counter({k: v for k, v in served[side].items() if k != "total"})
            calls.subtract(own)
            calls = +calls
            total += sum(calls.values())
            least, beyond[side] = attribute(calls, mins.get(side, []))
            floor += least
        self.results.append({
            "phase": name, "n": n, "wall": wall, "quiet": quiet, "per_minute": n / wall * 60 if wall else 0,
            "calls": total / n, "min": floor / n, "beyond": beyond,
            "p50": common.percentile(lat, 0.5), "p95": common.percentile(lat, 0.95),
            "cpu": {k: (cpu1[k] - cpu0[k]) / n for k in cpu0}, "peak_mb": peak,
        })  # fmt: skip
        print(
            f"  {name}: {wall:.1f} s, quiet after {quiet:.1f} s more, {total / n:.2f} calls per incident"
        )

    def wait_quiet(self, settle: float = 2.0) -> float:
        """Seconds until both nodes' queues are empty and neither sandbox served a call for
        ``settle`` seconds (echo checks and acknowledgements done)."""
        b, t0, last, since = self.bench, time.monotonic(), None, time.monotonic()
        while time.monotonic() - t0 < self.args.phase_timeout:
            totals = tuple(v.get("total", 0) for v in b.stats().values())
            if totals != last:
                last, since = totals, time.monotonic()
            elif time.monotonic() - since >= settle and self.queues_empty():
                return since - t0
            time.sleep(0.5)
        self.failures.append(f"{self.backend}: the nodes did not get quiet")
        return time.monotonic() - t0

    def queues_empty(self) -> bool:
        """Both Dashboards show no waiting event (an open error is a failed check)."""
        b = self.bench
        for node, api in ((b.a, b.api), (b.b, b.api_b)):
            data = api.get(f"{node.url}/api/dashboard/", timeout=30).json()
            if sum(data["depth"].values()) or sum(data["errors"].values()):
                if sum(data["errors"].values()):
                    self.failures.append(
                        f"{self.backend}: open errors on {node.node_name}: {data['errors']}"
                    )
                    return True
                return False
        return True

    # --- the checks ------------------------------------------------------------------------
    def check(self, after: str) -> None:
        """Every mirror complete and nothing twice on either side (see the module docstring)."""
        fail = self.failures.append
        tag = f"{self.backend} after {after}"
        mirrors = self.rows_of("B", "incident", f"short_descriptionSTARTSWITH{self.prefix}-",
                               "sys_id,short_description,description")  # fmt: skip
        by_index = defaultdict(list)
        for row in mirrors:
            by_index[self.index_of(row["short_description"], self.prefix)].append(row)
        if len(mirrors) != self.n or any(len(v) != 1 for v in by_index.values()):
            fail(
                f"{tag}: {len(mirrors)} mirrors for {self.n} incidents (a duplicate or one missing)"
            )
        self.mirror = {i: rows[0]["sys_id"] for i, rows in by_index.items() if i is not None}
        journal = {s: defaultdict(list) for s in "AB"}
        files = {s: defaultdict(list) for s in "AB"}
        for side in "AB":
            for row in self.rows_of(
                side, "sys_journal_field", "element=comments", "element_id,value"
            ):
                journal[side][row["element_id"]].append(row["value"])
            for row in self.rows_of(side, "attachment", "table_name=incident", "table_sys_id,hash"):
                files[side][row["table_sys_id"]].append(row["hash"])
        bad = []
        for i in range(self.n):
            ids = {"A": self.rows[i]["sys_id"], "B": self.mirror.get(i)}
            row = by_index.get(i, [{}])[0]
            problems = []
            if row.get("description") != self.descriptions[i]:
                problems.append(f"description {row.get('description')!r}")
            for side in "AB":
                texts = journal[side].get(ids[side], [])
                for want in self.comments[i]:
                    hits = sum(want in t for t in texts)
                    if hits != 1:
                        problems.append(f"{side} has {want!r} {hits} times")
                if len(texts) != len(self.comments[i]):
                    problems.append(
                        f"{side} has {len(texts)} comments, expected {len(self.comments[i])}"
                    )
                if files[side].get(ids[side]) != [self.digests[i]]:
                    problems.append(f"{side} attachments {files[side].get(ids[side])}")
            if problems:
                bad.append(f"{self.prefix}-{i}: " + "; ".join(problems[:3]))
        if bad:
            fail(f"{tag}: {len(bad)} incidents wrong, e.g. " + " | ".join(bad[:3]))

    def twins_left(self) -> int:
        """Twins of the connection still live on either node (a first page is enough)."""
        b, total = self.bench, 0
        for node, api in ((b.a, b.api), (b.b, b.api_b)):
            page = api.get(
                f"{node.url}/api/twins/page/", params={"connection": b.connection}, timeout=30
            )
            total += len(page.json()["results"])
        return total

    # --- the run ---------------------------------------------------------------------------
    def run(self) -> None:
        """Start the cast, seed, run the five phases with their checks (failures collected)."""
        b, n, args = self.bench, self.n, self.args
        t0 = time.monotonic()
        b.start()
        self.tokens = {"A": common.webhook_token(b.a), "B": common.webhook_token(b.b)}
        self.hooks = {"A": webhook_session(), "B": webhook_session()}
        print(f"  started 2 sandboxes and 2 nodes in {time.monotonic() - t0:.1f} s")
        t0 = time.monotonic()
        self.seed()
        print(f"  seeded {n} incidents in {time.monotonic() - t0:.1f} s")
        b.latency(args.latency_ms)
        state = {}

        def save_trigger():
            r = b.api.post(f"{b.a.url}/api/triggers/", timeout=120, json={
                "connection": b.connection, "entity_type": "incident",
                "query": f"short_descriptionSTARTSWITH{self.prefix}-"})  # fmt: skip
            assert r.status_code == 201, r.text
            state["trigger"] = r.json()["id"]

        def complete_on_b():
            inc = self.rows_of(
                "B", "incident", f"short_descriptionSTARTSWITH{self.prefix}-", "sys_id"
            )
            ids = {row["sys_id"] for row in inc}
            att = {
                r["table_sys_id"]
                for r in self.rows_of("B", "attachment", "table_name=incident", "table_sys_id")
            }
            notes = Counter(
                r["element_id"]
                for r in self.rows_of("B", "sys_journal_field", "element=comments", "element_id")
            )
            return {s for s in ids if s in att and notes[s] >= 3}  # fmt: skip

        self.phase("exalate", save_trigger, complete_on_b, n)
        self.check("exalate")
        if not self.mirror:
            return
        self.run_changes("comment back", [("B", "A", "comment", "pp2")])
        self.run_changes("description", [("A", "B", "description", "pp3")])
        self.run_changes(
            "round trip", [("A", "B", "comment", "pp4a"), ("B", "A", "comment", "pp4b")]
        )

        def unexalate():
            r = b.api.post(f"{b.a.url}/api/triggers/{state['trigger']}/bulk-unexalate/", timeout=60)
            assert r.status_code == 202, r.text

        self.phase("unexalate", unexalate, lambda: {"*"} if self.twins_left() == 0 else set(), 1)
        if (
            len(
                self.rows_of(
                    "B", "incident", f"short_descriptionSTARTSWITH{self.prefix}-", "sys_id"
                )
            )
            != n
        ):
            self.failures.append(f"{self.backend} after unexalate: mirrors changed in number")

    def run_changes(self, name: str, legs: list[tuple[str, str, str, str]]) -> None:
        """A phase of webhook-announced changes: ``(changed side, mirrored side, what, marker)``."""
        marker = {leg[3]: f"{leg[3]}{self.run_id}" for leg in legs}
        for i in range(self.n):
            for _src, _dst, what, m in legs:
                if what == "comment":
                    self.comments[i].append(f"{marker[m]}-{i} ping-pong")
                else:
                    self.descriptions[i] = f"{marker[m]}-{i} changed description"

        def start():
            jobs = [(i, leg) for i in range(self.n) for leg in legs]

            def one(job):
                i, (src, _dst, what, m) = job
                text = f"{marker[m]}-{i} ping-pong" if what == "comment" else self.descriptions[i]
                return (m, i), self.change(
                    src, i, {"comments" if what == "comment" else "description": text}
                )

            with ThreadPoolExecutor(8) as pool:
                return dict(pool.map(one, jobs))

        def observe():
            found = set()
            for _src, dst, what, m in legs:
                if what == "comment":
                    rows = self.rows_of(
                        dst, "sys_journal_field", f"element=comments^valueLIKE{marker[m]}-", "value"
                    )
                    texts = [r["value"] for r in rows]
                else:
                    texts = [
                        r["description"]
                        for r in self.rows_of(
                            dst, "incident", f"descriptionLIKE{marker[m]}-", "description"
                        )
                    ]
                found |= {(m, i) for t in texts if (i := self.index_of(t, marker[m])) is not None}
            return found  # fmt: skip

        self.phase(name, start, observe, self.n * len(legs))
        self.check(name)


def table(backend: str, results: list[dict]) -> str:
    """The figures of one back end as a Markdown table, then every call beyond the minimum."""
    lines = [f"{backend}:", "",
             "| phase | wall s | incidents/min | ServiceNow calls/incident (minimum) | p50 s | p95 s | node CPU s/incident (A + B) | worker peak MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in results:
        lat = "–" if math.isnan(r["p50"]) or r["phase"] == "unexalate" else None
        lines.append(
            f"| {r['phase']} | {r['wall']:.1f} | {r['per_minute']:.0f} | {r['calls']:.2f} ({r['min']:.2f})"
            f" | {lat or format(r['p50'], '.2f')} | {lat or format(r['p95'], '.2f')}"
            f" | {r['cpu']['A'] + r['cpu']['B']:.3f} ({r['cpu']['A']:.3f} + {r['cpu']['B']:.3f}) | {r['peak_mb']:.0f} |"
        )
    lines.append("")
    for r in results:
        for side, extra in r["beyond"].items():
            if extra:
                named = ", ".join(
                    f"{k} +{v} ({v / r['n']:.2f}/incident)" for k, v in extra.most_common()
                )
                lines.append(f"- beyond the minimum, {r['phase']}, sandbox {side}: {named}")
    return "\n".join(lines)


def run_backend(args, backend: str) -> tuple[list[dict], list[str]]:
    """One back end's run (``sqlite`` or ``postgres``): ``(phase figures, failed checks)``;
    a PostgreSQL or Redis that cannot be reached is a failed check (``common.backend``)."""
    with common.backend(backend) as problem:
        if problem:
            return [], [problem]
        label = {"postgres": "PostgreSQL + Redis, 2 workers per node",
                 "sqlite": "SQLite + file-system broker, 1 worker per node"}[backend]  # fmt: skip
        print(f"\n{label}: {args.incidents} incidents at {args.latency_ms:g} ms per request")
        pp = PingPong(args, backend, Path(tempfile.mkdtemp(prefix=f"ping-pong-{backend}-")))
        try:
            pp.run()
        except Exception as exc:  # noqa: BLE001 - reported as a failed check, the cast stopped
            pp.failures.append(f"{backend}: the run stopped: {exc!r}"[:2000])
        finally:
            pp.bench.close()
        return pp.results, pp.failures


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``--help``); bad values end with argparse's usage error."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=1000)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--attachment-kb", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=2, help="Pool processes per worker.")
    parser.add_argument(
        "--poll-interval", type=float, default=10.0, help="CHANGE_POLL_INTERVAL, s."
    )
    parser.add_argument(
        "--phase-timeout", type=float, default=0.0, help="Seconds per phase (default 120 + N)."
    )
    args = parser.parse_args(argv)
    if args.incidents < 1 or args.attachment_kb < 1 or args.concurrency < 1:
        parser.error("--incidents, --attachment-kb and --concurrency must be at least 1")
    args.phase_timeout = args.phase_timeout or 120 + args.incidents
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark on the chosen back ends and print the tables; 1 when a check failed."""
    args = arguments(argv)
    print(f"Ping-pong benchmark on {common.machine_line()}")
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    tables, failures = [], []
    for backend in backends:
        results, failed = run_backend(args, backend)
        label = "PostgreSQL + Redis" if backend == "postgres" else "SQLite"
        if results:
            tables.append(table(label, results))
            print("\n" + tables[-1])
        print(f"\nchecks on {label}: " + ("OK" if not failed else "; ".join(failed)))
        failures += failed
    print(f"\nMachine after the run: {common.machine_line()}")
    print(f"Targets: exalate >= {TARGETS['per_minute']} incidents/min; <= {TARGETS['calls_bulk']} calls per"
          f" incident in a trigger run; webhook p50 <= {TARGETS['p50']:g} s, p95 <= {TARGETS['p95']:g} s")  # fmt: skip
    if len(tables) > 1:
        print("\n" + "\n\n".join(tables))
    for f in failures:
        print(f"FAILED: {f}")
    print("checks: OK" if not failures else f"checks: {len(failures)} FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
