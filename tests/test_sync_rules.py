"""Pure parts of the sync engine: replica validation, Basic rules, echo suppression, backoff."""

from __future__ import annotations

import copy

import pytest

from sync import rules
from sync.nudge import backoff_seconds
from trackers.registry import adapter_class
from trackers.replica import ReplicaInvalid, replica_validate

SHA = "a" * 64


def replica(**over) -> dict:
    data = {
        "schema": 1,
        "tracker": "servicenow",
        "entity": {
            "id": "e" * 32,
            "key": "INC0010001",
            "url": "https://a.test/x",
            "type": "incident",
        },
        "summary": "Printer on fire",
        "description": "Third floor",
        "comments": [
            {
                "id": "c1",
                "author": "Beth Anglin",
                "created": "2026-11-29T10:00:00Z",
                "body": "Hello",
                "public": True,
            },
            {
                "id": "w1",
                "author": "Beth Anglin",
                "created": "2026-11-29T10:01:00Z",
                "body": "internal",
                "public": False,
            },
        ],
        "attachments": [
            {
                "id": "a1",
                "file_name": "x.png",
                "content_type": "image/png",
                "size": 3,
                "sha256": SHA,
            }
        ],
        "updated": "2026-11-29T10:02:00Z",
        "mod_count": 4,
    }
    data.update(over)
    return data


def test_valid_replica_passes_unchanged():
    data = replica()
    assert replica_validate(data) is data


def test_replica_validation_names_the_bad_field():
    data = replica()
    data["attachments"][0]["sha256"] = "not-a-hash"
    with pytest.raises(ReplicaInvalid, match=r"replica\.attachments\[0\]\.sha256"):
        replica_validate(data)


def test_replica_missing_summary_is_refused():
    data = replica()
    del data["summary"]
    with pytest.raises(ReplicaInvalid, match="summary"):
        replica_validate(data)


def test_replica_of_another_schema_version_is_refused():
    with pytest.raises(ReplicaInvalid, match="version 2 is not supported"):
        replica_validate(replica(schema=2))


def test_type_is_mirrored_when_the_tracker_has_it_and_becomes_task_otherwise():
    assert rules.incoming_entity_type("incident", local_types=("incident",)) == "incident"
    assert rules.incoming_entity_type("Bug", local_types=("task", "bug")) == "bug"
    assert rules.incoming_entity_type("bug", local_types=("incident",)) == "task"
    assert adapter_class("servicenow").entity_types == ("incident",)


def test_outgoing_replica_drops_work_notes_and_what_the_sync_wrote():
    out = rules.outgoing_replica(replica(), echo_comment_ids={"c1"}, echo_attachment_ids={"a1"})
    assert out["comments"] == [] and out["attachments"] == []
    out = rules.outgoing_replica(replica(), echo_comment_ids=set(), echo_attachment_ids=set())
    assert [c["id"] for c in out["comments"]] == ["c1"]


def test_a_change_made_only_by_the_sync_sends_nothing():
    sent = rules.outgoing_replica(replica(), echo_comment_ids=set(), echo_attachment_ids=set())
    known = {"summary": "Printer on fire", "description": "Third floor"}
    # The sync then wrote a remote comment (echo id c9) and bumped mod_count: nothing to send.
    later = replica(mod_count=9)
    later["comments"].append(
        {
            "id": "c9",
            "author": "x",
            "created": "2026-11-29T10:03:00Z",
            "body": "[x] hi",
            "public": True,
        }
    )
    out = rules.outgoing_replica(later, echo_comment_ids={"c9"}, echo_attachment_ids=set())
    assert not rules.outgoing_changes(out, known=known, last_sent=sent)


def test_outgoing_changes_name_new_items_and_changed_fields():
    sent = rules.outgoing_replica(replica(), echo_comment_ids=set(), echo_attachment_ids=set())
    later = copy.deepcopy(sent)
    later["description"] = "Fourth floor"
    later["comments"].append(
        {"id": "c2", "author": "x", "created": "2026-11-29T10:03:00Z", "body": "b", "public": True}
    )
    changes = rules.outgoing_changes(
        later, known={"summary": "Printer on fire", "description": "Third floor"}, last_sent=sent
    )
    assert (
        changes.fields == ("description",)
        and changes.comment_ids == ("c2",)
        and changes.attachment_ids == ()
    )


def test_first_incoming_replica_creates_with_all_fields_and_public_comments_only():
    plan = rules.incoming_plan(
        replica(),
        changed=[],
        has_local_entity=False,
        known={},
        mirrored_comment_ids=set(),
        mirrored_attachment_ids=set(),
    )
    assert plan.create and plan.fields == {
        "summary": "Printer on fire",
        "description": "Third floor",
    }
    assert [c["id"] for c in plan.comments] == ["c1"] and [a["id"] for a in plan.attachments] == [
        "a1"
    ]


def test_incoming_update_does_not_overwrite_fields_the_sender_did_not_change():
    plan = rules.incoming_plan(
        replica(summary="Old summary"),
        changed=["description"],
        has_local_entity=True,
        known={"summary": "Local edit on its way", "description": "Second floor"},
        mirrored_comment_ids={"c1"},
        mirrored_attachment_ids={"a1"},
    )
    assert plan.fields == {"description": "Third floor"}
    assert plan.comments == [] and plan.attachments == []


def test_comment_copy_is_recognised_by_body_and_author():
    def local(body, author="System Administrator"):
        return {"author": author, "body": body}

    assert rules.comment_matches(
        local("[Beth Anglin] Hello\n  world"), body="Hello world", author="Beth Anglin"
    )
    # the adapter may read the author line back as the comment's author
    assert rules.comment_matches(
        local("Hello\n  world", author="Beth Anglin"), body="Hello world", author="Beth Anglin"
    )
    assert not rules.comment_matches(
        local("[Beth Anglin] Hello"), body="Goodbye", author="Beth Anglin"
    )
    assert not rules.comment_matches(local("Hello world"), body="Hello world", author="Beth Anglin")


def test_backoff_doubles_is_capped_and_honours_retry_after(settings):
    settings.SYNC_RETRY_BASE = 2
    settings.SYNC_RETRY_MAX = 60
    assert 1.6 <= backoff_seconds(1) <= 2.4
    assert 6.4 <= backoff_seconds(3) <= 9.6
    assert backoff_seconds(30) <= 72
    assert backoff_seconds(1, retry_after=30) >= 30
