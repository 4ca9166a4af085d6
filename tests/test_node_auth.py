"""Node-to-node JWTs: signing, verification, replay, expiry, body hash (connections/node_auth.py)."""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import timedelta

import jwt
import pytest
from django.utils import timezone
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from connections.invitations import new_secret
from connections.models import Connection, UsedNodeToken
from connections.node_auth import (
    IsRemoteNode,
    NodeAuthError,
    NodeJWTAuthentication,
    sign_node_request,
    sign_token,
    verify_node_request,
)
from connections.selectors import node_identity_get

pytestmark = pytest.mark.django_db


@pytest.fixture
def remote_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def connection(remote_id) -> Connection:
    return Connection.objects.create(
        name="A_to_B",
        type=Connection.Type.PUBLIC,
        status=Connection.Status.ACTIVE,
        remote_node_id=remote_id,
        remote_url="http://127.0.0.1:9",
        secret=new_secret(),
    )


def remote_token(connection: Connection, remote_id: str, body: bytes, **claims) -> str:
    """A token as the remote node would make it, with ``claims`` overriding the defaults."""
    now = int(time.time())
    values = {
        "iss": remote_id,
        "aud": node_identity_get().node_id,
        "cid": str(connection.id),
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
        "bsha": hashlib.sha256(body).hexdigest(),
    }
    values.update(claims)
    secret = values.pop("secret", connection.secret)
    return jwt.encode(values, secret, algorithm="HS256")


def test_sign_node_request_makes_the_documented_claims(connection, remote_id):
    body = b'{"hello":"world"}'
    token = sign_node_request(connection, body)
    claims = jwt.decode(token, connection.secret, algorithms=["HS256"], audience=remote_id)
    assert claims["iss"] == node_identity_get().node_id
    assert claims["cid"] == str(connection.id)
    assert claims["bsha"] == hashlib.sha256(body).hexdigest()
    assert 0 < claims["exp"] - claims["iat"] <= 60
    assert len(claims["jti"]) == 32


def test_a_signed_request_from_the_remote_node_names_its_connection(connection, remote_id):
    body = b'{"event": 1}'
    assert verify_node_request(remote_token(connection, remote_id, body), body) == connection


def test_a_replayed_token_is_refused(connection, remote_id):
    body = b"{}"
    token = remote_token(connection, remote_id, body)
    verify_node_request(token, body)
    with pytest.raises(NodeAuthError, match="already used once"):
        verify_node_request(token, body)


def test_an_expired_token_is_refused(connection, remote_id):
    now = int(time.time())
    token = remote_token(connection, remote_id, b"", iat=now - 100, exp=now - 40)
    with pytest.raises(NodeAuthError, match="expired"):
        verify_node_request(token, b"")


def test_a_token_just_expired_within_the_clock_skew_is_accepted(connection, remote_id):
    now = int(time.time())
    token = remote_token(connection, remote_id, b"", iat=now - 65, exp=now - 5)
    assert verify_node_request(token, b"") == connection


def test_a_token_issued_in_the_future_is_refused(connection, remote_id):
    now = int(time.time())
    token = remote_token(connection, remote_id, b"", iat=now + 120, exp=now + 150)
    with pytest.raises(NodeAuthError, match="future"):
        verify_node_request(token, b"")


def test_a_token_valid_for_longer_than_a_minute_is_refused(connection, remote_id):
    now = int(time.time())
    token = remote_token(connection, remote_id, b"", iat=now, exp=now + 3600)
    with pytest.raises(NodeAuthError, match="longer than 60 seconds"):
        verify_node_request(token, b"")


def test_a_token_signed_with_another_secret_is_refused(connection, remote_id):
    token = remote_token(connection, remote_id, b"", secret=new_secret())
    with pytest.raises(NodeAuthError, match="signature does not match"):
        verify_node_request(token, b"")


def test_a_token_made_for_another_node_is_refused(connection, remote_id):
    token = remote_token(connection, remote_id, b"", aud=str(uuid.uuid4()))
    with pytest.raises(NodeAuthError, match="made for another node"):
        verify_node_request(token, b"")


def test_a_token_from_a_node_that_is_not_the_remote_is_refused(connection, remote_id):
    token = remote_token(connection, str(uuid.uuid4()), b"")
    with pytest.raises(NodeAuthError, match="not this connection's remote node"):
        verify_node_request(token, b"")


def test_a_changed_body_is_refused(connection, remote_id):
    token = remote_token(connection, remote_id, b'{"amount": 1}')
    with pytest.raises(NodeAuthError, match="body does not match"):
        verify_node_request(token, b'{"amount": 1000}')


def test_a_token_for_an_unknown_connection_is_refused(connection, remote_id):
    token = remote_token(connection, remote_id, b"", cid=str(uuid.uuid4()))
    with pytest.raises(NodeAuthError, match="does not exist on this node"):
        verify_node_request(token, b"")


def test_a_token_for_a_pending_connection_is_refused(connection, remote_id):
    Connection.objects.filter(pk=connection.pk).update(status=Connection.Status.PENDING)
    with pytest.raises(NodeAuthError, match="not established yet"):
        verify_node_request(remote_token(connection, remote_id, b""), b"")


def test_a_token_without_a_body_hash_is_refused(connection, remote_id):
    now = int(time.time())
    claims = {
        "iss": remote_id,
        "aud": node_identity_get().node_id,
        "cid": str(connection.id),
        "iat": now,
        "exp": now + 30,
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(claims, connection.secret, algorithm="HS256")
    with pytest.raises(NodeAuthError, match="bsha"):
        verify_node_request(token, b"")


@pytest.mark.filterwarnings("ignore:The HMAC key")
def test_a_token_with_another_algorithm_is_refused(connection, remote_id):
    token = jwt.encode({"cid": str(connection.id)}, connection.secret, algorithm="HS512")
    with pytest.raises(NodeAuthError, match="HS256"):
        verify_node_request(token, b"")


def test_garbage_is_not_a_token(connection):
    with pytest.raises(NodeAuthError, match="not a valid JWT"):
        verify_node_request("not-a-jwt", b"")


def test_used_token_ids_are_forgotten_once_they_could_no_longer_pass(
    connection, remote_id, monkeypatch
):
    from connections import node_auth

    monkeypatch.setattr(node_auth, "JTI_SWEEP_SHARE", 1.0)  # the sweep runs on this request
    UsedNodeToken.objects.create(
        jti="old" + "0" * 29, expires_at=timezone.now() - timedelta(seconds=1)
    )
    verify_node_request(remote_token(connection, remote_id, b""), b"")
    assert not UsedNodeToken.objects.filter(jti__startswith="old").exists()
    assert UsedNodeToken.objects.count() == 1


def test_a_local_connection_signs_for_its_peer_row():
    secret = new_secret()
    me = node_identity_get().node_id
    first = Connection.objects.create(
        name="L", type="local", status="active", remote_node_id=me, secret=secret
    )
    second = Connection.objects.create(
        name="L",
        type="local",
        status="active",
        remote_node_id=me,
        secret=secret,
        local_peer=first,
        is_initiator=False,
    )
    Connection.objects.filter(pk=first.pk).update(local_peer=second)
    first.refresh_from_db()
    token = sign_node_request(first, b"x")
    assert verify_node_request(token, b"x") == second


def test_signing_a_pending_connection_without_remote_node_fails_clearly():
    pending = Connection.objects.create(
        name="P", type="private", status="pending", secret=new_secret()
    )
    with pytest.raises(NodeAuthError, match="has not been accepted"):
        sign_node_request(pending, b"")


def test_sign_token_needs_a_secret():
    with pytest.raises(NodeAuthError, match="no shared secret"):
        sign_token(secret="", issuer="a", audience="b", connection_id="c", body=b"")


class _Echo(APIView):
    authentication_classes = [NodeJWTAuthentication]
    permission_classes = [IsRemoteNode]

    def post(self, request):
        return Response({"connection": str(request.auth.id), "node": request.user.node_id})


def test_node_jwt_authentication_gives_the_view_the_connection(connection, remote_id):
    body = b'{"a":1}'
    request = APIRequestFactory().post(
        "/x",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {remote_token(connection, remote_id, body)}",
    )
    response = _Echo.as_view()(request)
    assert response.status_code == 200
    assert response.data == {"connection": str(connection.id), "node": remote_id}


def test_node_jwt_authentication_failures_are_401_with_a_json_error(connection, remote_id):
    factory = APIRequestFactory()
    missing = _Echo.as_view()(factory.post("/x", b"{}", content_type="application/json"))
    assert missing.status_code == 401
    assert "Bearer" in missing.data["error"]
    assert missing["WWW-Authenticate"].startswith("Bearer")
    token = remote_token(connection, remote_id, b"{}")
    tampered = _Echo.as_view()(
        factory.post(
            "/x", b'{"b":2}', content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
        )
    )
    assert tampered.status_code == 401
    assert tampered.data == {
        "error": "The request body does not match the body hash the node token was signed for."
    }
