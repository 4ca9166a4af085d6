"""Invitation links create no session for anonymous visitors; Accept checks the code's name."""

from __future__ import annotations

import secrets
import time
import uuid

import pytest
from django.contrib.sessions.models import Session
from knox.models import AuthToken
from rest_framework.test import APIClient

from connections.invitations import InvitationPayload, encode_invitation
from connections.models import Connection
from connections.services import connection_initiate

pytestmark = pytest.mark.django_db
OWN_URL = "http://node-a.example:8000"


@pytest.fixture(autouse=True)
def node_url(settings):
    settings.NODE_PUBLIC_URL = OWN_URL
    settings.NODE_NAME = "Node A"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def foreign_code(name: str) -> str:
    """A well-formed invitation from another node (127.0.0.1:9, which nobody answers)."""
    return encode_invitation(
        InvitationPayload(
            invitation_id=str(uuid.uuid4()),
            connection_id=str(uuid.uuid4()),
            name=name,
            type="public",
            mode="basic",
            node_id=str(uuid.uuid4()),
            node_name="Node B",
            node_url="http://127.0.0.1:9",
            tracker="servicenow",
            to_node_id=None,
            secret=secrets.token_urlsafe(32),
            expires_at=int(time.time()) + 3600,
        )
    )


def test_an_anonymous_invitation_link_creates_no_session_row(client, admin_user):
    _, code = connection_initiate(
        destination_url="", no_url=True, mode="basic", name="P", user=admin_user
    )
    for _ in range(3):
        landing = client.get("/api/node/v1/accept-invitation", {"code": code})
        assert landing["Location"] == "/connections/accept/"
        assert client.get("/connections/accept/", {"code": code}).status_code == 302
        assert client.get("/connections/accept/")["Location"].startswith("/login/")
    assert Session.objects.count() == 0

    client.force_login(admin_user)
    page = client.get("/connections/accept/").content.decode()
    assert code in page  # the code waited for the admin to log in
    assert code not in client.get("/connections/accept/").content.decode()  # read once


def test_a_forged_code_cookie_is_ignored(client, admin_user, settings):
    client.force_login(admin_user)
    client.cookies[f"{settings.SESSION_COOKIE_NAME}_invitation"] = "exalate1.forged"
    assert "exalate1.forged" not in client.get("/connections/accept/").content.decode()


BAD_NAMES = [
    ("<script>alert(1)</script>", "not a usable connection name"),
    ("x" * 500, "not a usable connection name"),
    ("   ", "not a usable connection name"),
    ("Existing", "already exists on this node"),
]


@pytest.mark.parametrize(("name", "said"), BAD_NAMES)
def test_accept_checks_the_code_s_connection_name_like_initiate(admin_client, name, said):
    Connection.objects.create(name="existing", status="active", remote_node_id=uuid.uuid4())
    code = foreign_code(name)
    page = admin_client.post("/connections/accept/", {"step": "code", "code": code})
    text = page.content.decode()
    assert 'id="wizard-error"' in text and said in text
    assert "<script>alert(1)</script>" not in text
    confirm = admin_client.post("/connections/accept/", {"step": "confirm", "code": code})
    assert said in confirm.content.decode()
    assert Connection.objects.count() == 1


@pytest.mark.parametrize(("name", "said"), BAD_NAMES)
def test_the_accept_api_checks_the_name_too(admin_user, name, said):
    Connection.objects.create(name="existing", status="active", remote_node_id=uuid.uuid4())
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user=admin_user)[1]}")
    response = api.post("/api/connections/accept/", {"code": foreign_code(name)}, format="json")
    assert response.status_code == (409 if said.startswith("already") else 400)
    assert said in response.json()["error"]
    assert Connection.objects.count() == 1
