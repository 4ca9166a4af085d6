"""The landing page (issue 12 item 7): login and ``/`` go to the Dashboard once a connection
exists (not a pending invitation), else to Getting started; a ``?next=`` on this site wins."""

from __future__ import annotations

import pytest

from connections.models import Connection

pytestmark = pytest.mark.django_db


def _connection(status):
    return Connection.objects.create(
        name="Left", type=Connection.Type.LOCAL, status=status, secret="s" * 32
    )


def _log_in(client, **params):
    query = f"?next={params['next']}" if "next" in params else ""
    return client.post(
        f"/login/{query}", {"username": "ada", "password": "ada-password-123", **params}
    )


def test_root_asks_for_a_login_first(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/login/?next=/"


def test_without_a_connection_the_landing_page_is_getting_started(admin_client):
    assert admin_client.get("/")["Location"] == "/getting-started/"


def test_a_pending_invitation_alone_still_lands_on_getting_started(admin_client):
    _connection(Connection.Status.PENDING)
    assert admin_client.get("/")["Location"] == "/getting-started/"


@pytest.mark.parametrize(
    "status",
    [Connection.Status.ACTIVE, Connection.Status.DEACTIVATED, Connection.Status.ERROR],
)
def test_with_a_connection_the_landing_page_is_the_dashboard(admin_client, status):
    _connection(status)
    response = admin_client.get("/", follow=True)
    assert response.redirect_chain == [("/dashboard/", 302)]
    assert response.status_code == 200


def test_login_lands_on_the_dashboard_once_a_connection_exists(client, admin_user):
    assert _log_in(client)["Location"] == "/"
    assert client.get("/")["Location"] == "/getting-started/"
    _connection(Connection.Status.ACTIVE)
    assert client.get("/")["Location"] == "/dashboard/"


def test_next_on_this_site_wins_and_another_site_is_ignored(client, admin_user):
    assert _log_in(client, next="/errors/")["Location"] == "/errors/"
    client.logout()
    assert _log_in(client, next="https://evil.example/x")["Location"] == "/"
    assert client.get("/", {"next": "/sync-queue/"})["Location"] == "/sync-queue/"
    for outside in ("https://evil.example/", "//evil.example/", "javascript:alert(1)"):
        assert client.get("/", {"next": outside})["Location"] == "/getting-started/"
