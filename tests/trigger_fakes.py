"""A fake tracker that runs trigger queries, for in-process tests of triggers and bulk runs.

``QueryFake`` extends ``tests.sync_fakes.FakeAdapter`` with the ``query_*`` capabilities
of ``trackers.interface.TrackerAdapter``: conditions ``field=value``, ``field!=value`` and
``fieldLIKEtext`` ANDed with ``^`` over ``short_description`` (the summary), ``number``,
``sys_id`` and any extra field of a seeded incident (``fields={"priority": "1"}``).
Syntax is checked with the ServiceNow adapter's own parser, and a field the fake does not
know is refused as the adapter would. ``calls`` counts every query like a request.
"""

from __future__ import annotations

import pytest

from connections.models import Connection
from servicenow_adapter import encoded
from sync import nudge
from sync.models import Twin
from tests.sync_fakes import FakeAdapter, plug
from trackers.interface import QueryMatch, QueryPage

KNOWN = {
    "short_description",
    "number",
    "sys_id",
    "priority",
    "active",
    "category",
    "sys_updated_on",
}


class QueryFake(FakeAdapter):
    supports_queries = True
    query_language = "encoded query"

    @classmethod
    def query_syntax_problem(cls, query):
        try:
            encoded.parse(query)
        except encoded.QueryError as exc:
            return str(exc)
        return None

    def query_problem(self, query):
        self._call("query_problem")
        problem = self.query_syntax_problem(query)
        if problem:
            return problem
        for term in encoded.parse(query):
            if term.field.split(".")[0] not in KNOWN:
                return f"'{term.raw}': the incident table has no field '{term.field}'."
        return None

    def _value(self, inc, field):
        if field == "short_description":
            return inc["summary"]
        if field == "number":
            return inc["key"]
        if field == "sys_id":
            return inc["id"]
        return str(inc.get("fields", {}).get(field, ""))

    def _matching(self, query):
        terms = encoded.parse(query)
        out = []
        for inc in self.incidents.values():
            ok = True
            for t in terms:
                v = self._value(inc, t.field)
                if t.op == "=":
                    ok = v == t.value
                elif t.op == "!=":
                    ok = v != t.value
                elif t.op == "LIKE":
                    ok = t.value.lower() in v.lower()
                else:
                    raise AssertionError(f"the fake knows no {t.op}")
                if not ok:
                    break
            if ok:
                out.append(inc)
        return sorted(out, key=lambda i: i["id"])

    def seed(self, *, fields=None, **kw):
        inc = super().seed(**kw)
        inc["fields"] = dict(fields or {})
        return inc

    def query_count(self, query):
        self._call("query_count")
        return len(self._matching(query))

    def query_entities(self, query, *, since=None, after_id="", limit=100):
        self._call("query_entities")
        rows = [
            i
            for i in self._matching(query)
            if i["id"] > after_id and (since is None or i["updated"] >= since)
        ]
        page = rows[:limit]
        return QueryPage(
            matches=[
                QueryMatch(i["id"], i["key"], self.entity_url(i["id"]), i["summary"]) for i in page
            ],
            more=len(rows) > limit,
        )

    def query_contains(self, query, entity_ids):
        self._call("query_contains")
        wanted = set(entity_ids)
        return {i["id"] for i in self._matching(query) if i["id"] in wanted}

    def read_replicas(self, entity_ids):
        self._call("read_replicas")
        return {e: self.read_replica(e) for e in entity_ids if e in self.incidents}

    def find_entities(self, keys):
        self._call("find_entities")
        out = {}
        for key in keys:
            found = [i for i in self.incidents.values() if i["key"] == key.upper()]
            if len(found) == 1:
                out[key.upper()] = self.get_entity(found[0]["id"])
        return out


# --- fixtures shared by the trigger and bulk tests (import them by these names) -----------


class Runner:
    """Collects the services' nudges (``sync.nudge.nudge``) and runs their tasks in order."""

    def __init__(self):
        self.queue = []

    def enqueue(self, task, *args, countdown=None):
        self.queue.append((task, args))

    def run(self, max_steps=5000):
        steps = 0
        while self.queue and steps < max_steps:
            task, args = self.queue.pop(0)
            task(*args)
            steps += 1
        assert not self.queue
        return steps


@pytest.fixture(name="tracker")
def tracker_fixture(settings, monkeypatch):
    """The query-running fake, plugged in as this node's tracker."""
    return plug(settings, monkeypatch, QueryFake())


@pytest.fixture(name="runner")
def runner_fixture(monkeypatch):
    """Tasks nudged by the services, run in this process when the test calls ``run()``."""
    r = Runner()
    monkeypatch.setattr(nudge, "nudge", r.enqueue)
    return r


@pytest.fixture(name="pair")
def pair_fixture(db):
    """A local connection: two Active rows on this node, each the other's peer."""
    a = Connection.objects.create(
        name="Left", type=Connection.Type.LOCAL, status=Connection.Status.ACTIVE, secret="s" * 32
    )
    b = Connection.objects.create(
        name="Right", type=Connection.Type.LOCAL, status=Connection.Status.ACTIVE, secret="s" * 32
    )
    a.local_peer, b.local_peer = b, a
    a.save()
    b.save()
    return a, b


def twins_on(conn):
    """The twins of ``conn`` that have a local entity."""
    return Twin.objects.filter(connection=conn).exclude(local_entity_id="")
