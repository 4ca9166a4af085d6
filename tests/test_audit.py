"""The audit log (issue 11): every admin action leaves one entry naming who, what and when;
the Audit log page and ``GET /api/audit/`` show them with filters and paging."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from audit.models import AuditEntry
from audit.services import audit_record
from connections.models import Connection
from connections.settings_services import node_settings_update
from sync.models import SyncError, Twin

pytestmark = pytest.mark.django_db
OWN_URL = "http://node-a.example:8000"


@pytest.fixture(autouse=True)
def node_url(settings):
    settings.NODE_PUBLIC_URL = OWN_URL
    settings.NODE_NAME = "Node A"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def api(admin_user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user=admin_user)[1]}")
    return client


def entries(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action))


def local_connection(api, name="Loop") -> tuple[dict, str]:
    made = api.post(
        "/api/connections/initiate/", {"destination_url": OWN_URL, "name": name}, format="json"
    )
    assert made.status_code == 201, made.content
    return made.json()["connection"], made.json()["invitation_code"]


def test_audit_record_names_users_strings_and_the_system(admin_user):
    assert audit_record(actor=admin_user, action="renamed").actor == "ada"
    assert audit_record(actor="grace", action="renamed").actor == "grace"
    assert audit_record(actor=None, action="renamed").actor == "system"
    long = audit_record(actor="x", action="renamed", target="t" * 999, detail="d" * 9999)
    assert len(long.target) == 255 and len(long.detail) == 2000


def test_initiate_and_accept_are_recorded_with_the_user(api):
    connection, code = local_connection(api)
    [initiated] = entries("initiated")
    assert initiated.actor == "ada" and initiated.target == "connection Loop"
    assert "local" in initiated.detail
    assert api.post("/api/connections/accept/", {"code": code}, format="json").status_code == 201
    [accepted] = entries("accepted")
    assert accepted.actor == "ada" and "connection Loop" in accepted.target
    assert "Node A" in accepted.detail


def test_revoke_is_recorded(api):
    connection, _ = local_connection(api, "Pending")
    r = api.post(f"/api/connections/{connection['id']}/revoke-invitation/")
    assert r.status_code in (200, 204), r.content
    [revoked] = entries("revoked")
    assert revoked.actor == "ada" and revoked.target == "connection Pending"


def test_deactivate_activate_and_delete_are_recorded_once_each(api):
    connection, code = local_connection(api)
    api.post("/api/connections/accept/", {"code": code}, format="json")
    cid = connection["id"]
    assert api.post(f"/api/connections/{cid}/deactivate/").status_code == 200
    assert api.post(f"/api/connections/{cid}/deactivate/").status_code == 200  # no change
    assert api.post(f"/api/connections/{cid}/activate/").status_code == 200
    assert api.delete(f"/api/connections/{cid}/").status_code in (200, 204)
    assert [e.detail for e in entries("deactivated")] == ["was Active"]
    assert [e.detail for e in entries("activated")] == ["was Deactivated"]
    [deleted] = entries("deleted")
    assert deleted.actor == "ada" and deleted.target == "connection Loop"


def test_the_console_pages_pass_the_user_too(admin_client):
    connection = Connection.objects.create(
        name="Console", type="public", status="active", secret="s" * 32, remote_url="http://b"
    )
    admin_client.post(reverse("connections:deactivate", args=[connection.pk]))
    assert [(e.actor, e.target) for e in entries("deactivated")] == [("ada", "connection Console")]


@pytest.fixture
def entity_error(db):
    connection = Connection.objects.create(
        name="Peer", type="public", status="active", secret="s" * 32, remote_url="http://b"
    )
    twin = Twin.objects.create(
        connection=connection, local_entity_id="a" * 32, local_key="INC0010001", status="error"
    )
    return SyncError.objects.create(
        level=SyncError.Level.ENTITY, connection=connection, twin=twin, message="Data policy"
    )


def test_retry_and_resolve_on_the_errors_page_are_recorded(admin_client, entity_error):
    admin_client.post(reverse("sync:error-retry", args=[entity_error.pk]))
    [retried] = [e for e in entries("retried") if "error #" in e.target]
    assert retried.actor == "ada" and "INC0010001" in retried.target
    assert retried.detail == "Data policy"
    again = SyncError.objects.create(
        level=SyncError.Level.ENTITY,
        connection=entity_error.connection,
        twin=entity_error.twin,
        message="Other",
    )
    admin_client.post(reverse("sync:error-resolve", args=[again.pk]))
    [resolved] = [e for e in entries("resolved") if "error #" in e.target]
    assert resolved.actor == "ada" and f"#{again.pk}" in resolved.target


def test_a_twin_retry_is_recorded(admin_client, entity_error):
    admin_client.post(reverse("sync:twin-retry", args=[entity_error.twin.pk]))
    [retried] = entries("retried")
    assert retried.actor == "ada" and retried.target == "twin INC0010001"


def test_settings_changes_name_the_fields_but_never_a_secret(admin_user):
    node_settings_update(
        data={"name": "EU node", "password": "hunter2-secret"}, locked={}, user=admin_user
    )
    [changed] = entries("settings-changed")
    assert changed.actor == "ada" and changed.target == "General settings"
    assert "name" in changed.detail and "password" in changed.detail
    assert "hunter2" not in changed.detail and "EU node" not in changed.detail
    node_settings_update(data={"name": "EU node"}, locked={}, user=admin_user)
    assert len(entries("settings-changed")) == 1  # nothing changed: nothing recorded


def test_rotating_the_webhook_token_is_recorded_without_the_token(admin_client):
    page = admin_client.post("/connections/settings/", {"action": "rotate-webhook"})
    assert page.status_code == 200
    [rotated] = entries("webhook-token-rotated")
    from connections.selectors import node_settings_get

    assert rotated.actor == "ada" and node_settings_get().webhook_token not in rotated.detail


def test_logins_and_failed_logins_are_recorded(client, admin_user):
    client.post("/login/", {"username": "ada", "password": "Tr0ub4dor-guess"})
    [failed] = entries("login-failed")
    assert failed.actor == "ada" and "Tr0ub4dor" not in failed.detail
    assert "127.0.0.1" in failed.detail
    client.post("/login/", {"username": "ada", "password": "ada-password-123"})
    [login] = entries("login")
    assert login.actor == "ada" and "127.0.0.1" in login.detail


def test_the_audit_log_page_needs_login_filters_and_pages(admin_client):
    assert Client().get("/audit/").status_code == 302
    for i in range(60):
        audit_record(actor="grace", action="deleted", target=f"connection C{i}")
    audit_record(actor="ada", action="revoked", target="connection Special")
    page = admin_client.get("/audit/").content.decode()
    assert "Audit log" in page and page.count('class="audit-entry"') == 50
    assert "Page 1 of 2" in page and 'rel="next"' in page
    assert 'href="/audit/"' in page  # in the menu
    second = admin_client.get("/audit/?action=deleted&page=2").content.decode()
    assert second.count('class="audit-entry"') == 10 and "Special" not in second
    only = admin_client.get("/audit/?actor=ADA&q=special").content.decode()
    assert only.count('class="audit-entry"') == 1 and "connection Special" in only
    bad = admin_client.get("/audit/?since=2026-12-02&until=2026-12-01").content.decode()
    assert "swap them" in bad


def test_the_audit_api_lists_filters_and_pages(api):
    assert Client().get("/api/audit/").status_code in (401, 403)
    old = audit_record(actor="ada", action="revoked", target="connection Old")
    AuditEntry.objects.filter(pk=old.pk).update(when=timezone.now() - timedelta(days=10))
    for i in range(3):
        audit_record(actor="grace", action="deleted", target=f"connection C{i}")
    body = api.get("/api/audit/", {"page_size": 2}).json()
    assert body["count"] == 4 and len(body["results"]) == 2 and body["next"]
    assert set(body["results"][0]) == {"id", "when", "actor", "action", "target", "detail"}
    assert body["results"][0]["target"] == "connection C2"  # newest first
    since = (timezone.localdate() - timedelta(days=1)).isoformat()
    assert api.get("/api/audit/", {"since": since}).json()["count"] == 3
    assert api.get("/api/audit/", {"action": "revoked"}).json()["results"][0]["target"] == (
        "connection Old"
    )
    bad = api.get("/api/audit/", {"since": "yesterday"})
    assert bad.status_code == 400 and "error" in bad.json()


def test_the_audit_api_is_in_the_openapi_schema(admin_client):
    schema = admin_client.get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    assert "/api/audit/" in schema
