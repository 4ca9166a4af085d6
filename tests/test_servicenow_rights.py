"""Test connection's rights lines (issue 12): one line per right, found without writing anything.

Unit tests of the role inference (:mod:`servicenow_adapter.rights`) with a stand-in client,
then the whole check against a live sandbox whose users carry roles (``sys_user_has_role``)
and table ACLs, as an instance's do.
"""

from __future__ import annotations

import pytest
import requests

from servicenow_adapter import rights
from servicenow_adapter.adapter import ServiceNowAdapter
from servicenow_adapter.client import BasicCredentials, Page, RetryPolicy, ServiceNowClient
from tests.live import LiveSandbox
from trackers.errors import TrackerPermissionError
from trackers.interface import ConnectionReport, RightCheck

FAST = RetryPolicy(max_attempts=2, max_total_seconds=3, base_delay=0.01, max_delay=0.05)


# -- unit: the role inference -------------------------------------------------------------------


class _Roles:
    """A client whose sys_user_has_role answers ``rows`` (or raises ``error``); records queries."""

    def __init__(self, names=(), error=None):
        self.names, self.error, self.queries = list(names), error, []

    def table_page(self, table, *, query, fields, limit):
        assert table == "sys_user_has_role" and fields == ("role.name",)
        self.queries.append(query)
        if self.error:
            raise self.error
        wanted = None
        if "role.nameIN" in query:
            wanted = set(query.split("role.nameIN", 1)[1].split(","))
        rows = [{"role.name": n} for n in self.names if wanted is None or n in wanted]
        return Page(rows=rows[:limit], total=len(rows), has_next=False)


def test_a_writer_role_is_found_with_one_query_naming_the_user_and_active_state():
    client = _Roles(["snc_internal", "itil"])
    assert rights.user_roles(client, "svc.exalate") == (["itil"], [], "")
    assert client.queries == [
        "user.user_name=svc.exalate^state=active^role.nameINadmin,itil,sn_incident_write,"
        "sn_service_desk_agent,incident_manager,sn_incident_admin"
    ]


def test_a_caret_in_the_user_name_cannot_add_query_terms():
    client = _Roles([])
    rights.user_roles(client, "x^NQrole.name=admin")
    assert client.queries[0].startswith("user.user_name=x^^NQrole.name=admin^state=active")


def test_roles_without_a_writer_make_the_write_lines_missing_and_name_the_roles():
    writers, others, why = rights.user_roles(_Roles(["snc_internal", "rest_api_explorer"]), "u")
    lines = rights.write_lines(writers, others, why, "u")
    assert [line.right for line in lines] == [
        rights.WRITE_ATTACHMENTS,
        rights.CREATE_INCIDENTS,
        rights.UPDATE_INCIDENTS,
    ]
    assert {line.state for line in lines} == {rights.MISSING}
    assert "(rest_api_explorer, snc_internal)" in lines[1].how
    assert "Give it the role itil" in lines[1].how


def test_admin_is_probably_granted_and_says_so_honestly():
    lines = rights.write_lines(*rights.user_roles(_Roles(["admin", "itil"]), "admin"), "admin")
    assert all(line.state == rights.PROBABLY for line in lines)
    assert lines[0].how.startswith("probably granted (role admin")


def test_a_refused_role_read_or_no_role_at_all_is_could_not_be_verified():
    refused = TrackerPermissionError(
        "Insufficient rights", status=403, detail="Insufficient rights to query records"
    )
    for client, said in (
        (_Roles(error=refused), "403 on sys_user_has_role"),
        (_Roles([]), "lists no active role"),
    ):
        lines = rights.write_lines(*rights.user_roles(client, "u"), "u")
        assert {line.state for line in lines} == {rights.UNVERIFIED}
        assert said in lines[0].how and "could not be verified" in lines[0].how


def test_the_summary_counts_lines_by_state():
    lines = [
        RightCheck("a", rights.GRANTED, ""),
        RightCheck("b", rights.PROBABLY, ""),
        RightCheck("c", rights.PROBABLY, ""),
        RightCheck("d", rights.MISSING, ""),
    ]
    assert rights.summary(lines) == "Rights: 1 verified, 2 probably granted, 1 missing."


def test_a_plain_report_has_no_rights_and_stays_a_string():
    report = ConnectionReport("Connected")
    assert report == "Connected" and report.rights == () and "Conn" in report


# -- against a live sandbox -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    sb = LiveSandbox(tmp_path_factory.mktemp("sn-rights"), seed="demo").start()
    yield sb
    sb.stop()


def _adapter(sandbox, user="admin", password="admin") -> ServiceNowAdapter:
    creds = BasicCredentials(username=user, password=password)
    return ServiceNowAdapter(
        ServiceNowClient(sandbox.url, credentials=creds, retry=FAST, timeout=5)
    )


def _user(sandbox, user_name: str, **body) -> None:
    body = {"user_name": user_name, "password": "pw-123", "name": user_name, **body}
    requests.post(f"{sandbox.url}/sandbox/users", json=body, timeout=5).raise_for_status()


def _by_right(lines) -> dict[str, RightCheck]:
    assert [line.right for line in lines] == list(rights.RIGHTS)
    return {line.right: line for line in lines}


@pytest.mark.integration
def test_admin_gets_six_lines_reads_verified_writes_probable_and_nothing_is_written(sandbox):
    requests.delete(f"{sandbox.url}/sandbox/stats", timeout=5)
    report = _adapter(sandbox).test_connection()
    lines = _by_right(report.rights)
    for right in (rights.READ_INCIDENTS, rights.READ_COMMENTS, rights.READ_ATTACHMENTS):
        assert lines[right].state == rights.GRANTED and "verified by reading" in lines[right].how
    for right in (rights.WRITE_ATTACHMENTS, rights.CREATE_INCIDENTS, rights.UPDATE_INCIDENTS):
        assert lines[right].state == rights.PROBABLY and "role admin" in lines[right].how
    assert "Rights: 3 verified, 3 probably granted." in report
    stats = requests.get(f"{sandbox.url}/sandbox/stats", timeout=5).json()
    assert stats["GET /api/now/table/sys_user_has_role"] == 1
    assert all(key.startswith("GET ") for key in stats if key != "total"), stats


@pytest.mark.integration
def test_a_user_without_a_writer_role_reads_but_is_told_what_to_grant(sandbox):
    _user(sandbox, "reader.only", roles=["snc_internal"])
    report = _adapter(sandbox, "reader.only", "pw-123").test_connection()
    lines = _by_right(report.rights)
    assert lines[rights.READ_INCIDENTS].state == rights.GRANTED
    assert lines[rights.CREATE_INCIDENTS].state == rights.MISSING
    assert "(snc_internal)" in lines[rights.CREATE_INCIDENTS].how
    assert "the role itil" in lines[rights.UPDATE_INCIDENTS].how
    # ... and the sandbox refuses that user's writes as an instance would
    s = requests.Session()
    s.auth = ("reader.only", "pw-123")
    created = s.post(f"{sandbox.url}/api/now/table/incident", json={"short_description": "x"})
    assert created.status_code == 403
    incident = _adapter(sandbox).find_entity("INC0010001")
    upload = s.post(
        f"{sandbox.url}/api/now/attachment/file",
        params={"table_name": "incident", "table_sys_id": incident.id, "file_name": "a.txt"},
        data=b"hello",
        headers={"Content-Type": "text/plain"},
    )
    assert upload.status_code == 403


@pytest.mark.integration
def test_an_itil_user_is_probably_granted_by_itil(sandbox):
    _user(sandbox, "agent.itil", roles=["itil"])
    lines = _by_right(_adapter(sandbox, "agent.itil", "pw-123").test_connection().rights)
    assert lines[rights.CREATE_INCIDENTS].how.startswith("probably granted (role itil")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("user_name", "body", "said"),
    [
        ("roles.hidden", {"acl": {"sys_user_has_role": "deny"}}, "403 on sys_user_has_role"),
        ("roles.none", {"roles": []}, "lists no active role"),
    ],
)
def test_roles_the_instance_will_not_show_make_writes_could_not_be_verified(
    sandbox, user_name, body, said
):
    _user(sandbox, user_name, **body)
    lines = _by_right(_adapter(sandbox, user_name, "pw-123").test_connection().rights)
    for right in (rights.WRITE_ATTACHMENTS, rights.CREATE_INCIDENTS, rights.UPDATE_INCIDENTS):
        assert lines[right].state == rights.UNVERIFIED and said in lines[right].how


@pytest.mark.integration
def test_an_unreadable_journal_fails_the_test_and_still_carries_every_line(sandbox):
    _user(sandbox, "journal.blind", acl={"sys_journal_field": "empty"})
    with pytest.raises(TrackerPermissionError) as caught:
        _adapter(sandbox, "journal.blind", "pw-123").test_connection()
    lines = _by_right(caught.value.rights)
    assert lines[rights.READ_COMMENTS].state == rights.MISSING
    assert "sys_journal_field" in lines[rights.READ_COMMENTS].how
    assert lines[rights.READ_INCIDENTS].state == rights.GRANTED
    assert lines[rights.CREATE_INCIDENTS].state == rights.PROBABLY


@pytest.mark.integration
def test_the_sandbox_answers_the_role_query_like_an_instance(sandbox):
    s = sandbox.session()
    r = s.get(
        f"{sandbox.url}/api/now/table/sys_user_has_role",
        params={
            "sysparm_query": "user.user_name=beth.anglin^state=active",
            "sysparm_fields": "role.name",
        },
        timeout=5,
    )
    assert r.status_code == 200 and r.json()["result"] == [{"role.name": "itil"}]
    assert r.headers["X-Total-Count"] == "1"
    joe = s.get(
        f"{sandbox.url}/api/now/table/sys_user_has_role",
        params={"sysparm_query": "user.user_name=joe.employee", "sysparm_fields": "role.name"},
        timeout=5,
    ).json()["result"]
    assert joe == [{"role.name": "snc_internal"}]
