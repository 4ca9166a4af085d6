"""Incident <-> replica mapping, checked against recorded ServiceNow answers.

The recordings are in tests/fixtures/servicenow/ (provenance and licences in its README).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from servicenow_adapter import mapping

FIXTURES = Path(__file__).parent / "fixtures" / "servicenow"


def load(name: str):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))["result"]


def test_recorded_incident_becomes_a_replica_with_summary_and_utc_times():
    incident = load("incident_get_by_sys_id_servicenowdocs.json")
    replica = mapping.incident_to_replica(
        incident, [], [], instance_url="https://acme.service-now.com/"
    )
    assert replica["schema"] == 1 and replica["tracker"] == "servicenow"
    assert replica["entity"] == {
        "id": "a9e30c7dc61122760116894de7bcc7bd",
        "key": "INC0000046",
        "url": "https://acme.service-now.com/nav_to.do?uri=incident.do%3Fsys_id%3Da9e30c7dc61122760116894de7bcc7bd",
        "type": "incident",
    }
    assert replica["summary"] == "Can't access SFA software"
    assert replica["description"] == ""
    assert replica["updated"] == "2015-11-01T22:37:27Z"
    assert replica["mod_count"] == 4
    assert replica["comments"] == [] and replica["attachments"] == []


def test_recorded_journal_keeps_the_public_comment_and_drops_the_work_note():
    rows = load("sys_journal_field_list_rapid7.json")
    comments = mapping.public_comments(rows, {"admin": "System Administrator"})
    assert comments == [
        {
            "id": "4db0e8cb1bcccc106a4a85507e4bcba2",
            "author": "System Administrator",
            "created": "2019-09-26T21:03:07Z",
            "body": "This is Sev1 incident.",
            "public": True,
        }
    ]


def test_author_falls_back_to_the_user_name_when_no_display_name_is_known():
    rows = load("sys_journal_field_list_rapid7.json")
    assert mapping.public_comments(rows, {})[0]["author"] == "admin"


def test_comments_are_ordered_by_created_time_then_id():
    rows = [
        {
            "sys_id": "b" * 32,
            "element": "comments",
            "value": "2nd",
            "sys_created_on": "2026-01-01 10:00:00",
            "sys_created_by": "x",
        },
        {
            "sys_id": "a" * 32,
            "element": "comments",
            "value": "1st",
            "sys_created_on": "2026-01-01 10:00:00",
            "sys_created_by": "x",
        },
        {
            "sys_id": "0" * 32,
            "element": "comments",
            "value": "0th",
            "sys_created_on": "2025-12-31 23:59:59",
            "sys_created_by": "x",
        },
        {
            "sys_id": "c" * 32,
            "element": "work_notes",
            "value": "secret",
            "sys_created_on": "2025-01-01 00:00:00",
            "sys_created_by": "x",
        },
    ]
    assert [c["body"] for c in mapping.public_comments(rows, {})] == ["0th", "1st", "2nd"]


def test_attachment_metadata_keeps_name_type_size_and_sha256():
    row = {
        "sys_id": "41f9dad09783111084d57e121153af94",
        "file_name": "Übersicht – café.txt",
        "content_type": "text/plain (.txt)",
        "size_bytes": "5881",
        "hash": "8671FA6613CD1C6E82C0E1D6B940AE0771D1D8B3F56019F8274ED501407FFC2A",
    }
    assert mapping.attachment_to_replica(row) == {
        "id": "41f9dad09783111084d57e121153af94",
        "file_name": "Übersicht – café.txt",
        "content_type": "text/plain",
        "size": 5881,
        "sha256": "8671fa6613cd1c6e82c0e1d6b940ae0771d1d8b3f56019f8274ed501407ffc2a",
    }


def test_attachment_without_a_sha256_hash_gets_an_empty_digest():
    assert (
        mapping.attachment_to_replica({"sys_id": "x", "hash": "md5:abc", "size_bytes": ""})[
            "sha256"
        ]
        == ""
    )


def test_replica_fields_map_back_to_short_description_and_description():
    assert mapping.replica_to_incident_fields({"summary": "S", "description": "D\nE"}) == {
        "short_description": "S",
        "description": "D\nE",
    }


def test_mirrored_comment_carries_its_author_on_the_first_line():
    assert (
        mapping.comment_body_with_author("Hi\nthere", "Beth  Anglin")
        == "[Beth Anglin wrote]\nHi\nthere"
    )
    assert mapping.comment_body_with_author("Hi", "") == "Hi"


def test_change_rows_are_deduplicated_on_sys_id_and_mod_count_and_ordered():
    rows = [
        {"sys_id": "b" * 32, "sys_mod_count": "3", "sys_updated_on": "2026-01-01 10:00:05"},
        {"sys_id": "a" * 32, "sys_mod_count": "7", "sys_updated_on": "2026-01-01 10:00:05"},
        {"sys_id": "b" * 32, "sys_mod_count": "3", "sys_updated_on": "2026-01-01 10:00:05"},
        {"sys_id": "b" * 32, "sys_mod_count": "4", "sys_updated_on": "2026-01-01 10:00:09"},
    ]
    changes = mapping.changed_entities(rows)
    assert [(c.id[0], c.mod_count) for c in changes] == [("a", 7), ("b", 3), ("b", 4)]
    assert changes[0].updated == datetime(2026, 1, 1, 10, 0, 5, tzinfo=UTC)


def test_reference_objects_and_bare_ids_read_the_same():
    assert mapping.value_of({"link": "https://x/api/now/table/sys_user/1", "value": "1"}) == "1"
    assert mapping.value_of("1") == "1" and mapping.value_of(None) == ""


def test_a_mirrored_comment_keeps_its_original_author_when_it_travels_on():
    row = {
        "sys_id": "a" * 32,
        "sys_created_by": "admin",
        "sys_created_on": "2026-11-29 10:00:00",
        "element": "comments",
        "value": "[Beth Anglin wrote]\nLOOPTEST\nsecond line",
    }
    comment = mapping.journal_row_to_comment(
        row, {"admin": "System Administrator"}, integration_user="admin"
    )
    assert (comment["author"], comment["body"]) == ("Beth Anglin", "LOOPTEST\nsecond line")
    assert mapping.comment_body_with_author(comment["body"], comment["author"]) == row["value"]
    plain = mapping.journal_row_to_comment(
        {**row, "value": "No author line"},
        {"admin": "System Administrator"},
        integration_user="admin",
    )
    assert (plain["author"], plain["body"]) == ("System Administrator", "No author line")


def test_a_person_cannot_write_a_comment_under_another_name():
    """Issue 11: only the node's own integration user's entries carry author lines."""
    row = {
        "sys_id": "b" * 32,
        "sys_created_by": "beth.anglin",
        "sys_created_on": "2026-11-29 10:00:00",
        "element": "comments",
        "value": "[Joe Employee wrote]\nPlease reset my password",
    }
    names = {"beth.anglin": "Beth Anglin", "admin": "System Administrator"}
    comment = mapping.journal_row_to_comment(row, names, integration_user="admin")
    assert (comment["author"], comment["body"]) == ("Beth Anglin", row["value"])
    # Nested author lines on an integration user's entry: only the first (its own) is read.
    nested = {**row, "sys_created_by": "admin", "value": "[Beth Anglin wrote]\n" + row["value"]}
    comment = mapping.journal_row_to_comment(nested, names, integration_user="admin")
    assert (comment["author"], comment["body"]) == ("Beth Anglin", row["value"])
