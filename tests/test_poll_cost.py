"""What one poll costs with 100,000 twins (issues 13 and 14): a count of ServiceNow calls.

A real ServiceNow sandbox over HTTP and the node's real adapter (the registry's, from the
environment's settings); 100,000 twins on one connection (random sys_ids, as a real instance has), plus
10 twinned incidents that changed and 10 new incidents matching a trigger. Change
detection must cost the same whatever the number of twins (it lists what changed since
the watermark and looks the ids up in the database, never the other way round), and the
trigger's poll must find its 10 new matches in at most 3 calls. These are call counts,
not timings: they hold on any machine.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import requests
from django.db import connection as db_connection
from django.utils import timezone

from sync import services
from sync.models import Trigger, Twin
from tests.live import LiveSandbox
from tests.trigger_fakes import pair_fixture, runner_fixture  # noqa: F401 - fixtures

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

TWINS = 100_000


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    sb = LiveSandbox(tmp_path_factory.mktemp("poll-cost"), seed="none").start()
    yield sb
    sb.stop()


@pytest.fixture
def plugged(sandbox, settings):
    """This node's instance is the sandbox, fixed by the environment's settings (the path a
    scripted install takes), so the registry hands out the real ServiceNow adapter."""
    settings.SERVICENOW_INSTANCE_URL = sandbox.url
    settings.SERVICENOW_AUTH = "basic"
    settings.SERVICENOW_USERNAME = "admin"
    settings.SERVICENOW_PASSWORD = "admin"
    return sandbox


def calls(sandbox) -> dict:
    return requests.get(f"{sandbox.url}/sandbox/stats", timeout=10).json()


def reset_calls(sandbox) -> None:
    requests.delete(f"{sandbox.url}/sandbox/stats", timeout=10).raise_for_status()


def incident(sandbox, summary: str, priority: str) -> dict:
    r = sandbox.session().post(
        f"{sandbox.url}/api/now/table/incident",
        json={"short_description": summary, "priority": priority},
        timeout=10,
    )
    r.raise_for_status()
    return r.json()["result"]


def seed_twins(connection, n: int) -> None:
    """``n`` Synchronized twins with random sys_ids, inserted in one ``executemany``: the ORM's
    bulk_create spends ~1 ms of Python per row, which would make this test minutes long."""
    template = Twin(connection=connection, status=Twin.Status.SYNCHRONIZED)
    fields = [f for f in Twin._meta.concrete_fields if not f.primary_key]
    base = [f.get_db_prep_save(f.pre_save(template, True), db_connection) for f in fields]
    names = [f.column for f in fields]
    at = {
        name: names.index(name)
        for name in ("local_entity_id", "local_key", "remote_entity_id", "remote_key")
    }
    rows = []
    for i in range(n):
        row = list(base)
        row[at["local_entity_id"]] = uuid.uuid4().hex
        row[at["local_key"]] = f"INC{9_000_000 + i:07d}"
        row[at["remote_entity_id"]] = uuid.uuid4().hex
        row[at["remote_key"]] = f"INC{8_000_000 + i:07d}"
        rows.append(row)
    quote = db_connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(Twin._meta.db_table)} ({', '.join(quote(c) for c in names)}) "
        f"VALUES ({', '.join(['%s'] * len(names))})"
    )
    with db_connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def test_a_poll_among_100000_twins_costs_the_same_few_calls(plugged, pair, runner):
    sandbox = plugged
    left, _ = pair
    seed_twins(left, TWINS)
    changed = [incident(sandbox, f"Twinned {i}", "3") for i in range(10)]
    for row in changed:
        Twin.objects.create(
            connection=left,
            local_entity_id=row["sys_id"],
            local_key=row["number"],
            remote_entity_id=uuid.uuid4().hex,
            status=Twin.Status.SYNCHRONIZED,
        )
    assert Twin.objects.filter(connection=left).count() == TWINS + 10

    # Change detection: the 10 changed twins marked for a scan.
    reset_calls(sandbox)
    marked = services.connection_detect_changes(left.pk)
    detect_calls = calls(sandbox)
    assert marked == 10, detect_calls
    assert detect_calls["total"] <= 3, detect_calls

    # A trigger's poll: 10 new matches among the 100,010 twins.
    trigger = Trigger.objects.create(
        connection=left,
        query="short_descriptionSTARTSWITHNew match",
        active=True,
        watermark=timezone.now(),
    )
    new = [incident(sandbox, f"New match {i}", "1") for i in range(10)]
    Trigger.objects.filter(pk=trigger.pk).update(watermark=timezone.now() - timedelta(seconds=5))
    reset_calls(sandbox)
    made = services.trigger_detect(trigger.pk)
    trigger_calls = calls(sandbox)
    assert made == 10, (trigger.refresh_from_db(), trigger.last_error, trigger_calls)
    assert trigger_calls["total"] <= 3, trigger_calls
    assert set(
        Twin.objects.filter(
            connection=left, local_entity_id__in=[r["sys_id"] for r in new]
        ).values_list("local_entity_id", flat=True)
    ) == {r["sys_id"] for r in new}
    print(
        f"\n{TWINS:,} twins: change detection {detect_calls['total']} call(s) for 10 changed "
        f"incidents, trigger poll {trigger_calls['total']} call(s) for 10 new matches"
    )
