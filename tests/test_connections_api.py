"""The REST API (automation and node-to-node) of connections, in one process.

The accepting node of a handshake is played by signing its token here with the
invitation's secret, as ``connections.services.handshake.handshake_send`` does on a real node.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from knox.models import AuthToken
from rest_framework.test import APIClient

from connections import services
from connections.invitations import decode_invitation, encode_invitation
from connections.models import Connection, Invitation
from connections.node_auth import sign_token
from connections.selectors import node_identity_get
from connections.services import destination

pytestmark = pytest.mark.django_db
OWN_URL = "http://node-a.example:8000"
B_URL = "http://node-b.example:8000"


@pytest.fixture(autouse=True)
def node_url(settings):
    settings.NODE_PUBLIC_URL = OWN_URL
    settings.NODE_NAME = "Node A"
    # The cast's passwords need no real hashing here; it keeps each test well under a second.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def api(admin_user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user=admin_user)[1]}")
    return client


@pytest.fixture
def node_b(monkeypatch) -> services.RemoteNode:
    """The destination node B as its info endpoint would describe it (the one function patched)."""
    b = services.RemoteNode(
        node_id=str(uuid.uuid4()),
        name="Node B",
        tracker="servicenow",
        url=B_URL,
        modes={"basic": True, "visual": False, "script": False},
    )
    monkeypatch.setattr(destination, "node_info_fetch", lambda url: b)
    return b


def handshake(
    client: APIClient,
    code: str,
    *,
    node_id: str,
    secret: str | None = None,
    url: str = B_URL,
    token_body: bytes | None = None,
):
    """POST the handshake as the accepting node ``node_id`` would."""
    payload = decode_invitation(code)
    body = json.dumps(
        {
            "invitation_id": payload.invitation_id,
            "connection_id": payload.connection_id,
            "node": {"id": node_id, "name": "Node B", "url": url, "tracker": "servicenow"},
        }
    ).encode()
    token = sign_token(
        secret=secret or payload.secret,
        issuer=node_id,
        audience=payload.node_id,
        connection_id=payload.connection_id,
        body=token_body if token_body is not None else body,
        extra={"iid": payload.invitation_id},
    )
    return (
        client.generic(
            "POST",
            "/api/node/v1/handshake",
            body,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        ),
        token,
        body,
    )


def initiate(api: APIClient, **data):
    return api.post("/api/connections/initiate/", data, format="json")


def test_node_information_is_public_and_holds_no_secret(client):
    info = client.get("/api/node/v1/info").json()
    assert info == {
        "product": "exalate-console",
        "node_id": node_identity_get().node_id,
        "name": "Node A",
        "tracker": "servicenow",
        "url": OWN_URL,
        "modes": {"basic": True, "visual": False, "script": False},
        "api_version": 1,
    }


def test_the_automation_api_needs_an_admin_token(client, outsider):
    assert client.get("/api/connections/").status_code in (401, 403)
    outsider_api = APIClient()
    outsider_api.credentials(
        HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user=outsider)[1]}"
    )
    response = outsider_api.get("/api/connections/")
    assert response.status_code == 403 and "error" in response.json()


def test_initiate_returns_the_pending_connection_and_its_code(api, node_b):
    response = initiate(api, destination_url=B_URL, name="A_to_B")
    assert response.status_code == 201
    data = response.json()
    assert data["connection"]["status"] == "pending" and data["connection"]["type"] == "public"
    assert data["connection"]["remote_node_id"] == node_b.node_id
    assert "secret" not in data["connection"]
    payload = decode_invitation(data["invitation_code"])
    assert payload.to_node_id == node_b.node_id and payload.node_url == OWN_URL
    assert payload.expires_at - time.time() == pytest.approx(7 * 86400, abs=60)
    listed = api.get("/api/connections/").json()
    assert [c["name"] for c in listed] == ["A_to_B"]


def test_the_default_name_is_local_to_remote(api, node_b):
    assert initiate(api, destination_url=B_URL).json()["connection"]["name"] == "NodeA_to_NodeB"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"destination_url": "ftp://x.example"}, "http:// or https://"),
        ({"destination_url": ""}, "Enter the Destination Instance URL"),
        ({"no_url": True, "mode": "script"}, "Only Basic mode"),
        ({"no_url": True, "name": "bad/name"}, "letters, digits"),
    ],
)
def test_bad_initiate_input_is_a_400_with_a_json_error(api, data, message):
    response = initiate(api, **data)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert not Connection.objects.exists()


def test_a_local_connection_over_the_api(api):
    code = initiate(api, destination_url=OWN_URL, name="Loop").json()["invitation_code"]
    accepted = api.post("/api/connections/accept/", {"code": code}, format="json")
    assert accepted.status_code == 201
    assert accepted.json()["connection"]["status"] == "active"
    assert Connection.objects.filter(status="active", type="local").count() == 2
    again = api.post("/api/connections/accept/", {"code": code}, format="json")
    assert again.status_code == 409 and "already been accepted" in again.json()["error"]
    assert Connection.objects.count() == 2


def test_the_handshake_turns_the_pending_connection_active(api, client, node_b):
    code = initiate(api, destination_url=B_URL, name="A_to_B").json()["invitation_code"]
    response, _, _ = handshake(client, code, node_id=node_b.node_id)
    assert response.status_code == 200, response.content
    assert response.json()["node"]["node_id"] == node_identity_get().node_id
    connection = Connection.objects.get()
    assert connection.status == "active" and connection.remote_url == B_URL
    assert str(connection.remote_node_id) == node_b.node_id and connection.established_at
    invitation = Invitation.objects.get()
    assert invitation.status == "accepted" and invitation.code == ""


def test_a_handshake_retried_by_the_same_node_is_answered_again(api, client, node_b):
    code = initiate(api, destination_url=B_URL, name="A_to_B").json()["invitation_code"]
    assert handshake(client, code, node_id=node_b.node_id)[0].status_code == 200
    assert handshake(client, code, node_id=node_b.node_id)[0].status_code == 200


def test_a_handshake_with_the_wrong_secret_is_refused_and_changes_nothing(api, client, node_b):
    code = initiate(api, destination_url=B_URL, name="A_to_B").json()["invitation_code"]
    response, _, _ = handshake(client, code, node_id=node_b.node_id, secret="not-the-secret" * 3)
    assert response.status_code == 401
    assert "does not match the invitation's secret" in response.json()["error"]
    assert (
        Connection.objects.get().status == "pending"
        and Invitation.objects.get().status == "pending"
    )


def test_a_replayed_handshake_token_is_refused(api, client, node_b):
    code = initiate(api, destination_url=B_URL, name="A_to_B").json()["invitation_code"]
    response, token, body = handshake(client, code, node_id=node_b.node_id)
    assert response.status_code == 200
    replay = client.generic(
        "POST",
        "/api/node/v1/handshake",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert replay.status_code == 401 and "already used once" in replay.json()["error"]


def test_a_handshake_whose_body_was_changed_is_refused(api, client, node_b):
    code = initiate(api, destination_url=B_URL, name="A_to_B").json()["invitation_code"]
    response, _, _ = handshake(client, code, node_id=node_b.node_id, token_body=b"{}")
    assert response.status_code == 401 and "body does not match" in response.json()["error"]
    assert Connection.objects.get().status == "pending"


def test_a_code_already_accepted_by_another_node_is_refused(api, client, node_b):
    code = initiate(api, destination_url=B_URL, name="A_to_B").json()["invitation_code"]
    handshake(client, code, node_id=node_b.node_id)
    response, _, _ = handshake(client, code, node_id=str(uuid.uuid4()))
    assert response.status_code == 409 and "already been accepted" in response.json()["error"]
    assert str(Connection.objects.get().remote_node_id) == node_b.node_id


def test_a_code_made_for_another_node_is_refused_by_the_initiator(api, client, node_b):
    code = initiate(api, destination_url=B_URL, name="A_to_B").json()["invitation_code"]
    response, _, _ = handshake(client, code, node_id=str(uuid.uuid4()))
    assert response.status_code == 403 and "made for another node" in response.json()["error"]
    assert Connection.objects.get().status == "pending"


def test_a_revoked_code_is_refused_by_the_initiator(api, client, node_b):
    created = initiate(api, destination_url=B_URL, name="A_to_B").json()
    revoked = api.post(f"/api/connections/{created['connection']['id']}/revoke-invitation/")
    assert revoked.status_code == 204
    response, _, _ = handshake(client, created["invitation_code"], node_id=node_b.node_id)
    assert response.status_code == 410 and "revoked" in response.json()["error"]
    assert not Connection.objects.exists()


def test_an_expired_code_is_refused_by_the_initiator(api, client, node_b):
    code = initiate(api, destination_url=B_URL, name="A_to_B").json()["invitation_code"]
    Invitation.objects.update(expires_at="2020-01-01T00:00:00Z")
    response, _, _ = handshake(client, code, node_id=node_b.node_id)
    assert response.status_code == 410 and "expired" in response.json()["error"]
    assert Connection.objects.get().status == "pending"


def test_a_handshake_without_a_token_is_a_401(client):
    response = client.post("/api/node/v1/handshake", {}, content_type="application/json")
    assert response.status_code == 401 and "Bearer" in response.json()["error"]


def test_a_private_connection_remembers_no_url_for_the_polling_side(api, client):
    code = initiate(api, no_url=True, name="A_to_Private").json()["invitation_code"]
    node_id = str(uuid.uuid4())
    response, _, _ = handshake(client, code, node_id=node_id, url="")
    assert response.status_code == 200
    connection = Connection.objects.get()
    assert (
        connection.type == "private" and connection.remote_url == "" and not connection.polls_remote
    )


def test_an_expired_code_is_refused_before_anything_is_sent(api):
    code = initiate(api, no_url=True, name="P").json()["invitation_code"]
    payload = decode_invitation(code)
    expired = encode_invitation(
        payload.__class__(**{**payload.__dict__, "expires_at": int(time.time()) - 60})
    )
    response = api.post("/api/connections/accept/", {"code": expired}, format="json")
    assert response.status_code == 410 and "expired" in response.json()["error"]


@pytest.mark.parametrize("code", ["hello", "exalate1.abc", ""])
def test_a_malformed_or_truncated_code_is_a_400(api, code):
    response = api.post("/api/connections/accept/", {"code": code}, format="json")
    assert response.status_code == 400 and response.json()["error"]
    assert not Connection.objects.exists()


def test_activate_deactivate_and_delete(api):
    connection = Connection.objects.create(
        name="C", status="active", remote_node_id=uuid.uuid4(), secret="s"
    )
    assert (
        api.post(f"/api/connections/{connection.id}/deactivate/").json()["status"] == "deactivated"
    )
    assert api.post(f"/api/connections/{connection.id}/activate/").json()["status"] == "active"
    assert api.delete(f"/api/connections/{connection.id}/").status_code == 204
    missing = api.post(f"/api/connections/{connection.id}/activate/")
    assert missing.status_code == 404 and "error" in missing.json()


def test_the_api_is_in_the_openapi_schema(admin_client):
    schema = admin_client.get("/api/schema/?format=json").json()
    for path in [
        "/api/connections/",
        "/api/connections/initiate/",
        "/api/connections/accept/",
        "/api/connections/{connection_id}/",
        "/api/connections/{connection_id}/activate/",
        "/api/connections/{connection_id}/deactivate/",
        "/api/connections/{connection_id}/revoke-invitation/",
        "/api/node/v1/info",
        "/api/node/v1/handshake",
    ]:
        assert path in schema["paths"], path
    assert "InvitationJWT" in schema["components"]["securitySchemes"]
    assert admin_client.get("/api/docs/").status_code == 200
