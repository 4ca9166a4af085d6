"""The sandbox is never friendlier than a real instance: random sys_ids, no order, and knobs.

Knobs on the command line and at run time (``/sandbox/...``): frozen clock, rows hidden
after paging (still counted), a journal the user may not read (200, no rows, count 0),
long ``Retry-After``, hibernation, a maximum attachment size.
"""

from __future__ import annotations

import pytest
import requests

from tests.live import LiveSandbox

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    sb = LiveSandbox(tmp_path_factory.mktemp("sn-knobs"), seed="none").start()
    yield sb
    sb.stop()


@pytest.fixture
def api(sandbox):
    s = sandbox.session()
    s.headers["Accept"] = "application/json"
    yield s
    requests.delete(f"{sandbox.url}/sandbox/faults", timeout=5)
    requests.post(f"{sandbox.url}/sandbox/clock", json={"frozen": False}, timeout=5)
    requests.delete(f"{sandbox.url}/sandbox/limits", timeout=5)


def _create(api, sandbox, text: str = "x") -> dict:
    r = api.post(
        f"{sandbox.url}/api/now/table/incident", json={"short_description": text}, timeout=5
    )
    assert r.status_code == 201, r.text
    return r.json()["result"]


def _list(api, sandbox, table: str, **params) -> requests.Response:
    r = api.get(f"{sandbox.url}/api/now/table/{table}", params=params, timeout=5)
    assert r.status_code == 200, r.text
    return r


def test_sys_ids_are_random_not_increasing(api, sandbox):
    ids = [_create(api, sandbox, f"r{i}")["sys_id"] for i in range(12)]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert ids != sorted(ids)  # increasing sys_ids would hide same-second order bugs


def test_rows_come_in_no_fixed_order_without_orderby_and_among_ties(api, sandbox):
    for _ in range(8):
        _create(api, sandbox, "tie")
    orders, tie_orders = set(), set()
    for _ in range(8):
        rows = _list(api, sandbox, "incident", sysparm_query="short_description=tie",
                     sysparm_fields="sys_id").json()["result"]  # fmt: skip
        orders.add(tuple(r["sys_id"] for r in rows))
        rows = _list(api, sandbox, "incident",
                     sysparm_query="short_description=tie^ORDERBYshort_description",
                     sysparm_fields="sys_id").json()["result"]  # fmt: skip
        tie_orders.add(tuple(r["sys_id"] for r in rows))
    assert len(orders) > 1 and len(tie_orders) > 1


def test_frozen_clock_puts_every_write_in_one_second_and_the_display_keeps_their_order(
    api, sandbox
):
    r = requests.post(f"{sandbox.url}/sandbox/clock", json={"frozen": True}, timeout=5)
    assert r.json()["frozen"] is True
    inc = _create(api, sandbox, "frozen")
    for i in range(1, 6):
        api.patch(f"{sandbox.url}/api/now/table/incident/{inc['sys_id']}",
                  json={"comments": f"comment {i:02d}"}, timeout=5).raise_for_status()  # fmt: skip
    rows = _list(api, sandbox, "sys_journal_field", sysparm_query=f"element_id={inc['sys_id']}",
                 sysparm_fields="sys_id,sys_created_on,value").json()["result"]  # fmt: skip
    assert len({r["sys_created_on"] for r in rows}) == 1 and len(rows) == 5
    shown = api.get(f"{sandbox.url}/api/now/table/incident/{inc['sys_id']}",
                    params={"sysparm_display_value": "true", "sysparm_fields": "comments"},
                    timeout=5).json()["result"]["comments"]  # fmt: skip
    positions = [shown.index(f"\ncomment {i:02d}\n") for i in range(1, 6)]
    assert positions == sorted(positions, reverse=True)  # newest first, in writing order


def test_rows_hidden_after_paging_are_still_counted_and_cannot_be_read_or_written(api, sandbox):
    _create(api, sandbox, "visible-row")
    hidden = _create(api, sandbox, "secret-row")
    requests.post(f"{sandbox.url}/sandbox/users", json={
        "user_name": "limited", "password": "pw-123", "name": "Limited",
        "acl": {"incident": "hide:short_descriptionSTARTSWITHsecret"}}, timeout=5).raise_for_status()  # fmt: skip
    limited = requests.Session()
    limited.auth = ("limited", "pw-123")
    r = limited.get(f"{sandbox.url}/api/now/table/incident",
                    params={"sysparm_query": "short_descriptionENDSWITH-row"}, timeout=5)  # fmt: skip
    assert r.headers["X-Total-Count"] == "2" and len(r.json()["result"]) == 1
    url = f"{sandbox.url}/api/now/table/incident/{hidden['sys_id']}"
    assert limited.get(url, timeout=5).status_code == 404
    assert limited.patch(url, json={"comments": "x"}, timeout=5).status_code == 404


def test_a_journal_the_user_may_not_read_is_empty_with_count_zero(api, sandbox):
    inc = _create(api, sandbox, "journal")
    api.patch(f"{sandbox.url}/api/now/table/incident/{inc['sys_id']}",
              json={"comments": "hello"}, timeout=5).raise_for_status()  # fmt: skip
    requests.post(f"{sandbox.url}/sandbox/users", json={
        "user_name": "nojournal", "password": "pw-123", "name": "No Journal",
        "acl": {"sys_journal_field": "empty"}}, timeout=5).raise_for_status()  # fmt: skip
    s = requests.Session()
    s.auth = ("nojournal", "pw-123")
    r = s.get(f"{sandbox.url}/api/now/table/sys_journal_field",
              params={"sysparm_query": f"element_id={inc['sys_id']}"}, timeout=5)  # fmt: skip
    assert r.status_code == 200 and r.json()["result"] == [] and r.headers["X-Total-Count"] == "0"
    shown = s.get(f"{sandbox.url}/api/now/table/incident/{inc['sys_id']}",
                  params={"sysparm_display_value": "true", "sysparm_fields": "comments"},
                  timeout=5).json()["result"]["comments"]  # fmt: skip
    assert "hello" in shown  # the incident's own field still shows the entries


def test_maximum_attachment_size_refuses_like_an_instance(api, sandbox):
    inc = _create(api, sandbox, "files")
    r = requests.post(
        f"{sandbox.url}/sandbox/limits", json={"max_attachment_bytes": 100}, timeout=5
    )
    assert r.json() == {"max_attachment_bytes": 100}
    params = {"table_name": "incident", "table_sys_id": inc["sys_id"], "file_name": "big.bin"}
    r = api.post(f"{sandbox.url}/api/now/attachment/file", params=params, data=b"x" * 101,
                 headers={"Content-Type": "application/octet-stream"}, timeout=5)  # fmt: skip
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "Failed to create the attachment"
    assert "com.glide.attachment.max_size" in r.json()["error"]["detail"]
    listed = api.get(f"{sandbox.url}/api/now/attachment",
                     params={"sysparm_query": f"table_sys_id={inc['sys_id']}"}, timeout=5)  # fmt: skip
    assert listed.json()["result"] == []
    params["file_name"] = "small.bin"
    r = api.post(f"{sandbox.url}/api/now/attachment/file", params=params, data=b"x" * 100,
                 headers={"Content-Type": "application/octet-stream"}, timeout=5)  # fmt: skip
    assert r.status_code == 201


def test_long_retry_after_and_hibernation_at_run_time(api, sandbox):
    requests.post(f"{sandbox.url}/sandbox/faults", json={"status": 429, "retry_after": 120},
                  timeout=5).raise_for_status()  # fmt: skip
    r = api.get(f"{sandbox.url}/api/now/table/incident", timeout=5)
    assert r.status_code == 429 and r.headers["Retry-After"] == "120"
    requests.post(f"{sandbox.url}/sandbox/faults", json={"html": True}, timeout=5)
    r = api.get(f"{sandbox.url}/api/now/table/incident", timeout=5)
    assert "hibernating" in r.text and r.headers["Content-Type"].startswith("text/html")


def test_every_knob_on_the_command_line(tmp_path):
    sb = LiveSandbox(tmp_path / "a", seed="none", extra_args=[
        "--freeze-clock", "--hide", "incident=short_descriptionSTARTSWITHsecret",
        "--hide-journal", "--max-attachment-bytes", "10"]).start()  # fmt: skip
    try:
        s = sb.session()
        first = s.post(f"{sb.url}/api/now/table/incident", json={"short_description": "secret 1"},
                       timeout=5).json()["result"]  # fmt: skip
        s.post(f"{sb.url}/api/now/table/incident", json={"short_description": "open 2"}, timeout=5)
        r = s.get(f"{sb.url}/api/now/table/incident", timeout=5)
        assert r.headers["X-Total-Count"] == "2" and len(r.json()["result"]) == 1
        r = s.get(f"{sb.url}/api/now/table/sys_journal_field", timeout=5)
        assert r.json()["result"] == [] and r.headers["X-Total-Count"] == "0"
        assert requests.get(f"{sb.url}/sandbox/clock", timeout=5).json()["frozen"] is True
        assert requests.get(f"{sb.url}/sandbox/limits", timeout=5).json() == {
            "max_attachment_bytes": 10
        }
        assert first["sys_created_on"]
    finally:
        sb.stop()
    sb = LiveSandbox(tmp_path / "b", seed="none", extra_args=["--retry-after", "120"])
    sb._ready = lambda: requests.get(f"{sb.url}/sandbox/faults", timeout=2).ok  # type: ignore[method-assign]
    sb.start()
    try:
        r = sb.session().get(f"{sb.url}/api/now/table/incident", timeout=5)
        assert r.status_code == 429 and r.headers["Retry-After"] == "120"
        requests.post(f"{sb.url}/sandbox/faults", json={"html": True}, timeout=5)
        assert "hibernating" in sb.session().get(f"{sb.url}/api/now/table/incident", timeout=5).text
    finally:
        sb.stop()
