"""Benchmark: page timings of the Sync queue and Entity sync status on a big node (issue 12).

    .venv/bin/python benchmarks/pages.py [--twins 100000] [--events 1000000] [--rounds 20]
        [--db var/bench-pages.sqlite3]

Seeds a database of its own (``manage.py seed_operations``: ``--twins`` twins and
``--events`` events on one connection; kept between runs, so only the first run pays for
seeding; delete the file to seed again), then requests each page ``--rounds`` times with
Django's test client as a logged-in admin (the whole view, template included, no network)
and prints p50 / p95 / max in milliseconds (wall clock) and the p95 of the process's own
CPU time (what the page costs when the machine is not shared), with the load average.
Target: p95 < 150 ms for every page.

Pages: the Sync queue's default tab, filtered by status (waiting, failed, done), by key,
its third page (keyset), the incoming tab and the htmx part; Entity sync status, a
lookup by number and by sys_id, a search by the end of a number, an older page; the
Dashboard (the landing page; once with its activity counts cached, once counted afresh)
and the Errors page.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 150.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--twins", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--db", default=str(ROOT / "var" / "bench-pages.sqlite3"))
    args = parser.parse_args()
    db = Path(args.db).resolve()
    db.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "DEBUG": "false"}
    env.setdefault("SECRET_KEY", "bench-pages-only")
    manage = [sys.executable, str(ROOT / "manage.py")]
    fresh = not db.exists()
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=ROOT)
    if fresh:
        print(f"Seeding {args.twins} twins and {args.events} events into {db} …", flush=True)
        t0 = time.monotonic()
        subprocess.run(
            [*manage, "seed_operations", "--twins", str(args.twins), "--events", str(args.events)],
            env=env,
            check=True,
            cwd=ROOT,
        )
        print(f"Seeded in {time.monotonic() - t0:.0f} s.", flush=True)
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exalate_console.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.test import Client

    from sync.models import SyncEvent, Twin

    settings.ALLOWED_HOSTS = ["*"]
    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    twins, events = Twin.objects.count(), SyncEvent.objects.count()
    sample = Twin.objects.order_by("id")[twins // 2]
    marker = (
        SyncEvent.objects.filter(direction="out").order_by("-id").values_list("id", flat=True)[100]
    )
    older_twin = Twin.objects.order_by("-id").values_list("id", flat=True)[50]
    pages = [
        ("Sync queue (open, outgoing)", "/sync-queue/", {}),
        ("Sync queue: waiting", "/sync-queue/", {"status": "waiting"}),
        ("Sync queue: failed", "/sync-queue/", {"status": "failed"}),
        ("Sync queue: done", "/sync-queue/", {"status": "done"}),
        ("Sync queue: by key", "/sync-queue/", {"key": sample.local_key, "status": "all"}),
        ("Sync queue: 3rd page (keyset)", "/sync-queue/", {"status": "done", "before": marker}),
        ("Sync queue: incoming tab", "/sync-queue/", {"tab": "incoming"}),
        ("Sync queue: htmx part", "/sync-queue/", {"status": "done", "_hx": "1"}),
        ("Entity sync status", "/entity-sync-status/", {}),
        ("Entity sync status: by number", "/entity-sync-status/", {"q": sample.local_key}),
        ("Entity sync status: by sys_id", "/entity-sync-status/", {"q": sample.remote_entity_id}),
        (
            "Entity sync status: end of a number",
            "/entity-sync-status/",
            {"q": sample.local_key[-5:]},
        ),
        ("Entity sync status: older page", "/entity-sync-status/", {"before": older_twin}),
        ("Dashboard (the landing page)", "/dashboard/", {}),
        ("Dashboard: activity not cached", "/dashboard/", {"_nocache": "1"}),
        ("Errors", "/errors/", {}),
    ]
    print(f"\n{twins} twins, {events} events; {args.rounds} rounds per page (after one warm-up)\n")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'page':<40} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'cpu p95':>8}")
    worst = 0.0
    for label, url, params in pages:
        params = dict(params)
        headers = {}
        if params.pop("_hx", None):
            headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "queue-results"}
        uncached = params.pop("_nocache", None)  # the Dashboard's activity, counted afresh
        response = client.get(url, params, **headers)
        assert response.status_code == 200, (label, response.status_code)
        times, cpu = [], []
        for _ in range(args.rounds):
            if uncached:
                cache.clear()
            t0, c0 = time.perf_counter(), time.process_time()
            client.get(url, params, **headers)
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        times.sort()
        cpu.sort()
        p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
        cpu95 = cpu[min(len(cpu) - 1, int(round(0.95 * (len(cpu) - 1))))]
        worst = max(worst, p95)
        print(
            f"{label:<40} {statistics.median(times):8.1f} {p95:8.1f} {times[-1]:8.1f} {cpu95:8.1f}"
        )
    verdict = "met" if worst < TARGET_MS else "NOT met"
    print(f"\nWorst p95 {worst:.1f} ms; target p95 < {TARGET_MS:.0f} ms per page: {verdict}.")
    return 0 if worst < TARGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
