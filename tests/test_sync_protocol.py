"""The node-to-node message envelope: one schema (``sync.protocol``) that checks every
received message and is the one the OpenAPI document shows; and the generic webhook."""

from __future__ import annotations

import copy

import pytest

from sync.protocol import message_problem

pytestmark = pytest.mark.django_db

REPLICA = {
    "event_id": "6f1c1e5e-7c55-4a34-9d5a-0a5a2f6b1f00",
    "seq": 1,
    "kind": "replica",
    "entity_id": "e" * 32,
    "peer_entity_id": "",
    "changed": ["summary"],
    "new_attachments": [],
    "replica": {
        "schema": 1,
        "tracker": "servicenow",
        "entity": {
            "id": "e" * 32,
            "key": "INC0000001",
            "url": "https://x.test",
            "type": "incident",
        },
        "summary": "s",
        "description": "d",
        "comments": [],
        "attachments": [],
        "updated": "2026-11-29T10:00:00Z",
        "mod_count": 1,
    },
}
ACK = {
    "event_id": "6f1c1e5e-7c55-4a34-9d5a-0a5a2f6b1f01",
    "seq": 2,
    "kind": "ack",
    "entity_id": "f" * 32,
    "peer_entity_id": "e" * 32,
    "entity": {"id": "f" * 32, "key": "INC0010002", "url": "https://y.test"},
    "acked_event_id": "6f1c1e5e-7c55-4a34-9d5a-0a5a2f6b1f00",
    "error": "",
}


def changed(base: dict, **fields) -> dict:
    message = copy.deepcopy(base)
    message.update(fields)
    return message


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (REPLICA, None),
        (ACK, None),
        ("x", "a message must be a JSON object"),
        (changed(REPLICA, event_id="nope"), "event_id must be a uuid"),
        (changed(REPLICA, event_id=5), "event_id must be a uuid"),
        (changed(REPLICA, seq="1"), "seq must be a whole number"),
        (changed(REPLICA, seq=True), "seq must be a whole number"),
        (changed(REPLICA, entity_id=7), "entity_id must be a string of at most 64 characters"),
        (
            changed(REPLICA, entity_id="e" * 65),
            "entity_id must be a string of at most 64 characters",
        ),
        (changed(REPLICA, entity_id=""), "entity_id must not be empty"),
        (
            changed(REPLICA, peer_entity_id=None),
            "peer_entity_id must be a string of at most 64 characters",
        ),
        (changed(REPLICA, kind="patch"), "kind must be replica, ack or unexalate"),
        (changed(REPLICA, entity_id="-"), "a replica names its entity"),
        (changed(REPLICA, entity_id="z" * 32), "replica.entity.id differs from entity_id"),
        (changed(REPLICA, changed=["priority"]), "changed must be a list of summary, description"),
        (
            changed(REPLICA, replica={**REPLICA["replica"], "summary": 5}),
            "replica.summary: 5 is not of type 'string'",
        ),
        (changed(ACK, entity={"id": "f" * 32}), "an ack carries entity {id, key, url}"),
        (changed(ACK, entity="f"), "an ack carries entity {id, key, url}"),
        (
            changed(ACK, acked_event_id="x"),
            "an ack names the entity it comes from and the acked event id",
        ),
        (
            changed(ACK, entity={**ACK["entity"], "id": "g"}),
            "an ack names the entity it comes from and the acked event id",
        ),
        (changed(ACK, error=None), "error must be a string"),
    ],
)
def test_each_message_is_checked_against_the_one_schema(message, problem):
    assert message_problem(message) == problem


def test_the_openapi_document_shows_the_schema_the_node_api_checks(admin_client):
    schema = admin_client.get("/api/schema/?format=json").json()
    message = schema["components"]["schemas"]["SyncMessage"]
    assert {"event_id", "seq", "kind", "entity_id", "replica", "changed", "entity"} <= set(
        message["properties"]
    )
    poll = schema["paths"]["/api/node/v1/sync/poll"]["post"]
    answer = poll["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert (
        "need_attachments"
        in schema["components"]["schemas"][answer.rsplit("/", 1)[1]]["properties"]
    )


def test_a_webhook_for_a_tracker_without_adapter_is_404(client):
    from connections.selectors import node_settings_get

    token = node_settings_get().webhook_token
    response = client.post(
        "/api/webhooks/youtrack/",
        {"issue": {"id": "1"}},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 404 and "No tracker adapter" in response.json()["error"]
    bad = client.post(
        "/api/webhooks/servicenow/",
        {"number": "INC0010001"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert bad.status_code == 400 and bad.json() == {"error": "sys_id is missing."}
