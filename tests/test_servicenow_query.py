"""Encoded queries: escaping user text on the client, and the sandbox's reading of queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from servicenow_adapter import query as q
from servicenow_adapter.sandbox import query as sq
from servicenow_adapter.sandbox.schema import known_field

ROWS = [
    {"number": "INC1", "state": "1", "short_description": "VPN down ^ again", "assigned_to": ""},
    {"number": "INC2", "state": "2", "short_description": "Printer a=b & c", "assigned_to": "u1"},
    {"number": "INC3", "state": "7", "short_description": "Mail", "assigned_to": "u2"},
]


def run(text: str) -> list[str]:
    parsed = sq.parse(text, lambda name: known_field("incident", name))
    return [r["number"] for r in ROWS if sq.evaluate(parsed, r.get)]


def test_a_caret_in_user_text_cannot_add_query_terms():
    attack = "nothing^NQstateISNOTEMPTY"
    assert run(q.term("number", "=", attack)) == []
    assert run(q.term("short_description", "=", "VPN down ^ again")) == ["INC1"]


def test_ampersand_and_equals_in_a_value_are_plain_text():
    assert run(q.term("short_description", "=", "Printer a=b & c")) == ["INC2"]


def test_in_lists_refuse_values_with_commas():
    with pytest.raises(ValueError):
        q.in_list(["a,b"])
    assert q.in_list(["1", "2"]) == "1,2"


def test_field_names_and_operators_are_checked():
    with pytest.raises(ValueError):
        q.term("number^NQ", "=", "x")
    with pytest.raises(ValueError):
        q.term("number", "~", "x")


def test_date_literals_are_utc_without_zone_suffix():
    moment = datetime(2026, 3, 1, 1, 30, 5, tzinfo=timezone(timedelta(hours=2)))
    assert q.sn_datetime(moment) == "2026-02-28 23:30:05"
    assert q.sn_datetime(datetime(2026, 3, 1, 1, 30, 5)) == "2026-03-01 01:30:05"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("state=1", ["INC1"]),
        ("state!=1", ["INC2", "INC3"]),
        ("state>1", ["INC2", "INC3"]),
        ("state<=2", ["INC1", "INC2"]),
        ("stateIN1,7", ["INC1", "INC3"]),
        ("stateNOT IN1,7", ["INC2"]),
        ("short_descriptionLIKEprinter", ["INC2"]),
        ("short_descriptionNOT LIKEprinter", ["INC1", "INC3"]),
        ("numberSTARTSWITHINC", ["INC1", "INC2", "INC3"]),
        ("numberENDSWITH3", ["INC3"]),
        ("assigned_toISEMPTY", ["INC1"]),
        ("assigned_toISNOTEMPTY", ["INC2", "INC3"]),
        ("state=1^ORstate=7", ["INC1", "INC3"]),
        ("state=2^assigned_to=u1", ["INC2"]),
        ("state=1^NQstate=7", ["INC1", "INC3"]),
        ("stateBETWEEN2@7", ["INC2", "INC3"]),
        ("no_such_field=1^state=7", ["INC3"]),  # unknown fields are dropped, not rejected
        ("", ["INC1", "INC2", "INC3"]),
    ],
)
def test_sandbox_reads_encoded_query_operators(text, expected):
    assert run(text) == expected


def test_sandbox_keeps_order_terms_apart_from_conditions():
    parsed = sq.parse(
        "state=1^ORDERBYDESCnumber^ORDERBYsys_id", lambda n: known_field("incident", n)
    )
    assert parsed.order == [("number", True), ("sys_id", False)]
    assert len(parsed.groups) == 1


def test_sandbox_evaluates_only_known_date_helpers():
    now = datetime(2026, 5, 4, 12, 30, 15, tzinfo=UTC)
    assert sq.resolve_script("javascript:gs.daysAgoStart(1)", now) == "2026-05-03 00:00:00"
    assert sq.resolve_script("javascript:gs.minutesAgoStart(10)", now) == "2026-05-04 12:20:00"
    assert sq.resolve_script("javascript:gs.eval('x')", now) is None
