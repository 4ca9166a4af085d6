"""Page speed without timing (issue 12): what a search matches, that it reads an index, and
that the Sync queue and Entity sync status cost the same number of queries for 3 rows as
for 40 (no N+1). The timings themselves are measured by ``make bench-pages``."""

from __future__ import annotations

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext

from connections.models import Connection
from sync import selectors
from sync.models import SyncEvent, Twin

pytestmark = pytest.mark.django_db


@pytest.fixture
def left(db):
    return Connection.objects.create(
        name="Left", type=Connection.Type.LOCAL, status=Connection.Status.ACTIVE, secret="s" * 32
    )


def _twins(connection, count, start=10001):
    twins = Twin.objects.bulk_create(
        Twin(
            connection=connection,
            local_entity_id=f"{n:032x}",
            local_key=f"INC{n:07d}",
            remote_entity_id=f"{n + 5_000_000:032x}",
            remote_key=f"SUP-{n - start + 1}",
        )
        for n in range(start, start + count)
    )
    SyncEvent.objects.bulk_create(
        SyncEvent(connection=connection, twin=t, direction=direction, status=status)
        for t in twins
        for direction, status in (("out", "queued"), ("out", "done"), ("in", "error"))
    )
    return twins


def _keys(query):
    return sorted(t.local_key for t in selectors.twin_search(query=query))


def test_a_search_matches_a_whole_number_or_sys_id_or_the_start_or_end_of_a_number(left):
    _twins(left, 20)
    assert _keys("INC0010005") == _keys("inc0010005") == ["INC0010005"]
    assert _keys(f"{10005 + 5_000_000:032x}") == ["INC0010005"]  # the remote sys_id
    assert _keys("SUP-5") == ["INC0010005"]  # the remote number, exactly
    assert _keys("10005") == ["INC0010005"]  # the end of a number
    assert _keys("INC001001") == [f"INC00{n}" for n in range(10010, 10020)]  # its start
    assert _keys("sup-1") == ["INC0010001"]  # exact, any case
    assert _keys("SUP-") == _keys("")  # a start ending in punctuation
    assert _keys("1000") == []  # a piece from the middle is not a match
    assert _keys("no such thing") == []


@pytest.mark.skipif("db.vendor != 'sqlite'")
@pytest.mark.parametrize("query", ["10005", "INC00100", "SUP-1", "INC0010005"])
def test_every_search_reads_an_index_never_the_whole_twin_table(left, query):
    _twins(left, 5)
    qs = selectors._twins_matching(Twin.objects.all(), query).order_by("-id")[:26]
    sql, params = qs.query.sql_with_params()
    with db.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        plan = [row[-1] for row in cursor.fetchall()]
    assert not [step for step in plan if step.startswith("SCAN sync_twin")], plan


def _queries(client, url, params=None):
    with CaptureQueriesContext(db) as captured:
        assert client.get(url, params or {}).status_code == 200
    return len(captured)


PAGES = [
    ("/sync-queue/", {}),
    ("/sync-queue/", {"status": "done"}),
    ("/sync-queue/", {"tab": "incoming", "status": "all"}),
    ("/sync-queue/", {"key": "INC0010002", "status": "all"}),
    ("/entity-sync-status/", {}),
    ("/entity-sync-status/", {"q": "1000"}),
    ("/errors/", {}),
    ("/dashboard/", {}),
]


@pytest.mark.parametrize(("url", "params"), PAGES)
def test_a_page_costs_the_same_queries_for_3_rows_as_for_40(admin_client, left, url, params):
    _twins(left, 3)
    admin_client.get(url, params)  # warm: sessions, node settings
    few = _queries(admin_client, url, params)
    _twins(left, 37, start=20001)
    assert _queries(admin_client, url, params) == few
