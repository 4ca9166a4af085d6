"""Seed twins, events and errors for the operations pages' benchmark (issue 12).

    manage.py seed_operations [--twins 100000] [--events 1000000] [--connection-name Benchmark]

Writes one active connection with ``--twins`` twins (INC numbers, sys_id-like ids, mostly
Synchronized, a few in Error) and ``--events`` sync events spread over them and over the
last 60 days: mostly finished replicas and acknowledgements, some queued, waiting, failed;
plus one open entity error per twin in Error. Rows go in with ``bulk_create`` in batches
inside one transaction per batch (SQLite: synchronous writes off while seeding), so a
million events take a minute or two, not an hour. It refuses to seed twice into the same
connection name. Nothing talks to a tracker or another node.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import connection as db
from django.db import transaction
from django.utils import timezone

from connections.models import Connection
from sync.models import SyncError, SyncEvent, Twin

BATCH = 5000


class Command(BaseCommand):
    help = "Seed twins and sync events for the page-timing benchmark (benchmarks/pages.py)."

    def add_arguments(self, parser):
        parser.add_argument("--twins", type=int, default=100_000)
        parser.add_argument("--events", type=int, default=1_000_000)
        parser.add_argument("--connection-name", default="Benchmark")
        parser.add_argument("--seed", type=int, default=12)

    def handle(self, *args, twins: int, events: int, connection_name: str, seed: int, **opts):
        if twins < 1 or events < 0:
            raise CommandError("--twins must be at least 1 and --events at least 0.")
        if Connection.objects.filter(name=connection_name).exists():
            raise CommandError(
                f"A connection named {connection_name} exists already: seeded before?"
            )
        rng = random.Random(seed)
        started = time.monotonic()
        if db.vendor == "sqlite" and not db.in_atomic_block:
            with db.cursor() as c:
                c.execute("PRAGMA synchronous=OFF")
        conn = Connection.objects.create(
            name=connection_name,
            type=Connection.Type.PUBLIC,
            status=Connection.Status.ACTIVE,
            remote_url="http://127.0.0.1:9",
            remote_name="Benchmark remote",
            secret="b" * 43,
        )
        now = timezone.now()
        first_id = None
        for start in range(0, twins, BATCH):
            rows = []
            for n in range(start, min(twins, start + BATCH)):
                error = rng.random() < 0.002
                rows.append(
                    Twin(
                        connection=conn,
                        local_entity_id=uuid.UUID(int=rng.getrandbits(128)).hex,
                        local_key=f"INC{1_000_000 + n:07d}",
                        local_url=f"https://a.service-now.test/incident.do?n={n}",
                        remote_entity_id=uuid.UUID(int=rng.getrandbits(128)).hex,
                        remote_key=f"INC{2_000_000 + n:07d}",
                        remote_url=f"https://b.service-now.test/incident.do?n={n}",
                        status=Twin.Status.ERROR if error else Twin.Status.SYNCHRONIZED,
                        last_synced_at=now - timedelta(minutes=rng.randint(0, 86_400)),
                        last_error="The remote incident no longer exists" if error else "",
                    )
                )
            with transaction.atomic():
                made = Twin.objects.bulk_create(rows, batch_size=BATCH)
            if first_id is None:
                first_id = (
                    made[0].pk or Twin.objects.filter(connection=conn).order_by("id").first().pk
                )
        twin_ids = list(
            Twin.objects.filter(connection=conn).order_by("id").values_list("pk", flat=True)
        )
        self.stdout.write(f"{len(twin_ids)} twins in {time.monotonic() - started:.1f} s")
        statuses = (
            [SyncEvent.Status.DONE] * 960
            + [SyncEvent.Status.QUEUED] * 15
            + [SyncEvent.Status.SENT] * 15
            + [SyncEvent.Status.ERROR] * 5
            + [SyncEvent.Status.IN_PROGRESS] * 5
        )
        self._events(conn, twin_ids, events, rng, now, statuses)
        errored = list(
            Twin.objects.filter(connection=conn, status=Twin.Status.ERROR).values_list(
                "pk", flat=True
            )
        )
        SyncError.objects.bulk_create(
            [
                SyncError(
                    level=SyncError.Level.ENTITY,
                    connection=conn,
                    twin_id=t,
                    message="The remote incident no longer exists (deleted there).",
                    code="entity_gone",
                    remote=True,
                )
                for t in errored
            ],
            batch_size=BATCH,
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded {len(twin_ids)} twins, {events} events and {len(errored)} errors on "
                f"{connection_name} in {time.monotonic() - started:.1f} s."
            )
        )

    def _events(self, conn, twin_ids, events, rng, now, statuses) -> None:
        """Insert the events with ``executemany`` (no model instances: ~10x faster)."""
        meta = SyncEvent._meta
        fields = [
            "event_id",
            "connection_id",
            "twin_id",
            "direction",
            "kind",
            "status",
            "seq",
            "payload",
            "attempts",
            "next_attempt_at",
            "last_error",
            "created_at",
            "updated_at",
            "done_at",
        ]
        columns = ", ".join(
            db.ops.quote_name(
                meta.get_field(
                    f.removesuffix("_id") if f in ("connection_id", "twin_id") else f
                ).column
            )
            for f in fields
        )
        sql = f"INSERT INTO {db.ops.quote_name(meta.db_table)} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"
        uuid_field = meta.get_field("event_id")
        conn_id = meta.get_field("connection").get_db_prep_value(conn.pk, db)
        payload_field = meta.get_field("payload")
        replica_payload = payload_field.get_db_prep_save({"changed": ["summary"]}, db)
        ack_payload = payload_field.get_db_prep_save({}, db)
        stamp = db.ops.adapt_datetimefield_value(now)
        for start in range(0, events, BATCH * 4):
            rows = []
            for n in range(start, min(events, start + BATCH * 4)):
                kind = SyncEvent.Kind.ACK if n % 3 == 2 else SyncEvent.Kind.REPLICA
                status = (
                    SyncEvent.Status.DONE if kind == SyncEvent.Kind.ACK else rng.choice(statuses)
                )
                done = db.ops.adapt_datetimefield_value(
                    now - timedelta(seconds=rng.randint(0, 60 * 86_400))
                )
                rows.append(
                    (
                        uuid_field.get_db_prep_value(uuid.UUID(int=rng.getrandbits(128)), db),
                        conn_id,
                        twin_ids[n % len(twin_ids)],
                        SyncEvent.Direction.OUT.value if n % 2 else SyncEvent.Direction.IN.value,
                        kind.value,
                        status.value,
                        n,
                        replica_payload if kind == SyncEvent.Kind.REPLICA else ack_payload,
                        rng.randint(0, 3) if status == SyncEvent.Status.QUEUED else 1,
                        done,
                        "HTTP 503 from the remote node"
                        if status in (SyncEvent.Status.ERROR, SyncEvent.Status.QUEUED)
                        and n % 7 == 0
                        else "",
                        stamp,
                        stamp,
                        done if status == SyncEvent.Status.DONE else None,
                    )
                )
            with transaction.atomic(), db.cursor() as cursor:
                cursor.executemany(sql, rows)
            if start and start % 200_000 == 0:
                self.stdout.write(f"  {start} events…")
