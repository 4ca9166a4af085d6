"""The ServiceNow side of triggers against a real sandbox: fields from sys_dictionary (or a
sample record when it is unreadable), counts, key-set listing, batch reads."""

from __future__ import annotations

import pytest
import requests

from tests.live import LiveSandbox
from tests.test_servicenow_adapter import adapter, make_user

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    sb = LiveSandbox(tmp_path_factory.mktemp("sn-triggers"), seed="demo").start()
    yield sb
    sb.stop()


def stats(sandbox):
    return requests.get(f"{sandbox.url}/sandbox/stats", timeout=5).json()


def test_the_dictionary_names_the_incident_fields_and_their_references(sandbox):
    rows = requests.get(
        f"{sandbox.url}/api/now/table/sys_dictionary",
        params={"sysparm_query": "name=incident^element=assignment_group"},
        auth=("admin", "admin"),
        timeout=5,
    ).json()["result"]
    assert rows and rows[0]["reference"] == "sys_user_group"


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("active=true^priorty<=2", "no field 'priorty'"),
        ("active=true^assignment_group.nmae=Network", "sys_user_group table has no field 'nmae'"),
        ("active=true^priority=<>2^categoryLESS1", "not a ServiceNow operator"),
        ("caller_id=javascript:gs.getUserID()", "runs a script"),
        ("active=true^", "ends with '^'"),
        ("numberIN" + ",".join(f"INC{i:07d}" for i in range(400)), "at most 4,000"),
    ],
    ids=["unknown-field", "unknown-dotwalk", "unknown-operator", "javascript", "trailing", "long"],
)
def test_a_bad_query_is_refused_naming_the_term(sandbox, query, words):
    problem = adapter(sandbox.url).query_problem(query)
    assert problem and words in problem


def test_a_good_query_passes_and_counts_with_one_request(sandbox):
    a = adapter(sandbox.url)
    assert a.query_problem("active=true^priority<=2^assignment_group.name=Network") is None
    requests.delete(f"{sandbox.url}/sandbox/stats", timeout=5)
    count = a.query_count("active=true")
    assert count > 0 and stats(sandbox)["total"] == 1


def test_without_dictionary_rights_the_fields_of_a_sample_record_are_used(sandbox):
    make_user(sandbox, "nodict", {"sys_dictionary": "deny"})
    a = adapter(sandbox.url, user="nodict", password="pw-123")
    problem = a.query_problem("priorty=1")
    assert "no field 'priorty'" in problem and "sample incident record" in problem
    assert a.query_problem("priority=1^short_descriptionLIKEmail") is None


def test_listing_pages_by_sys_id_and_counts_match(sandbox):
    a = adapter(sandbox.url)
    total = a.query_count("")
    seen, after = [], ""
    while True:
        page = a.query_entities("", after_id=after, limit=3)
        seen += [m.id for m in page.matches]
        if not page.more:
            break
        after = page.matches[-1].id
    assert len(seen) == len(set(seen)) == total and seen == sorted(seen)


def test_batch_reads_equal_one_by_one_reads_with_three_requests_per_hundred(sandbox):
    a = adapter(sandbox.url)
    ids = [m.id for m in a.query_entities("", limit=20).matches]
    one_by_one = {i: a.read_replica(i) for i in ids}
    requests.delete(f"{sandbox.url}/sandbox/stats", timeout=5)
    batch = a.read_replicas(ids)
    assert stats(sandbox)["total"] <= 4  # incident, journal, attachment (+ authors once)
    assert batch == one_by_one


def test_query_contains_and_nq_blocks_keep_their_meaning(sandbox):
    a = adapter(sandbox.url)
    ids = [m.id for m in a.query_entities("", limit=50).matches]
    p1 = set(a.query_contains("priority=1", ids))
    p1_or_5 = set(a.query_contains("priority=1^NQpriority=5", ids))
    p5 = set(a.query_contains("priority=5", ids))
    assert p1_or_5 == p1 | p5
