"""General settings: Test connection against the ServiceNow sandbox, clear errors, nothing lost."""

from __future__ import annotations

import re

import pytest
from django.db import connection as db

from connections.models import NodeSettings
from connections.selectors import node_settings_get
from tests.live import free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    from tests.live import LiveSandbox

    sb = LiveSandbox(
        tmp_path_factory.mktemp("settings-sandbox"),
        seed="",
        user="integration",
        password="s3cret-Pa55",
    ).start()
    yield sb
    sb.stop()


def _form(instance_url: str, password: str, **extra) -> dict:
    data = {
        "name": "ServiceNow EU",
        "public_url": "http://127.0.0.1:8000",
        "tracker": "servicenow",
        "instance_url": instance_url,
        "auth_method": "basic",
        "username": "integration",
        "password": password,
        "client_id": "",
        "client_secret": "",
        "action": "save",
    }
    data.update(extra)
    return data


def _save_good(admin_client, sandbox):
    response = admin_client.post(
        "/connections/settings/", _form(sandbox.url, sandbox.password), follow=True
    )
    assert response.status_code == 200
    assert "Test connection succeeded" in response.content.decode()
    return response


def test_saving_settings_tests_the_connection_and_stores_the_password_encrypted(
    admin_client, sandbox
):
    response = _save_good(admin_client, sandbox)
    page = response.content.decode()
    assert sandbox.password not in page
    node = node_settings_get()
    assert node.instance_url == sandbox.url
    assert node.password == sandbox.password
    assert node.last_test_ok is True
    with db.cursor() as cursor:
        cursor.execute("SELECT password FROM connections_nodesettings WHERE id = %s", [node.pk])
        raw = cursor.fetchone()[0]
    assert raw and sandbox.password not in raw


@pytest.mark.parametrize(
    ("what", "expected"),
    [
        ("wrong-password", re.compile(r"user name or password|credentials|401", re.I)),
        ("unreachable", re.compile(r"reach|unreachable|connect", re.I)),
        (
            "not-servicenow",
            re.compile(r"not a ServiceNow instance|does not look like|not.*ServiceNow", re.I),
        ),
    ],
)
def test_a_failed_test_says_what_failed_and_keeps_the_saved_settings(
    admin_client, sandbox, live_server, what, expected
):
    _save_good(admin_client, sandbox)
    before = node_settings_get()
    if what == "wrong-password":
        data = _form(sandbox.url, "not-the-password")
    elif what == "unreachable":
        data = _form(f"http://127.0.0.1:{free_port()}", "whatever")
    else:
        data = _form(live_server.url, "whatever")  # this console itself: a web site, not ServiceNow
    data["name"] = "Changed name"
    response = admin_client.post("/connections/settings/", data)
    page = response.content.decode()
    assert response.status_code == 200
    assert "Test connection failed" in page
    assert expected.search(page), page
    assert "Nothing was saved" in page
    assert "not-the-password" not in page and "whatever" not in page
    after = NodeSettings.objects.get(pk=before.pk)
    assert (after.name, after.instance_url, after.password) == (
        before.name,
        before.instance_url,
        before.password,
    )


def test_test_connection_button_saves_nothing(admin_client, sandbox):
    response = admin_client.post(
        "/connections/settings/", _form(sandbox.url, sandbox.password, action="test")
    )
    page = response.content.decode()
    assert "Test connection succeeded" in page
    assert node_settings_get().instance_url == ""
    # issue 12: one line per right, reads verified, writes from the user's role (itil)
    assert 'id="test-rights"' in page and page.count('<li class="right-') == 6
    assert "read public comments (sys_journal_field)" in page
    assert "create incidents</strong>:" in page and "probably granted (role itil" in page


def test_invalid_urls_are_refused_by_the_form(admin_client):
    response = admin_client.post(
        "/connections/settings/", _form("javascript:alert(1)", "x", public_url="nope")
    )
    page = response.content.decode()
    assert "Instance URL must start with https://" in page
    assert "Exalate URL must start with https://" in page
    assert node_settings_get().instance_url == ""


def test_blank_password_keeps_the_stored_one(admin_client, sandbox):
    _save_good(admin_client, sandbox)
    response = admin_client.post(
        "/connections/settings/", _form(sandbox.url, "", name="Renamed"), follow=True
    )
    assert "Test connection succeeded" in response.content.decode()
    node = node_settings_get()
    assert node.name == "Renamed" and node.password == sandbox.password


def test_new_webhook_token_is_shown_once(admin_client):
    response = admin_client.post("/connections/settings/", {"action": "rotate-webhook"})
    token = re.search(r'id="new-webhook-token">([^<]+)<', response.content.decode()).group(1)
    assert node_settings_get().webhook_token == token
    assert token not in admin_client.get("/connections/settings/").content.decode()


def test_outsider_cannot_open_general_settings(client, outsider):
    client.force_login(outsider)
    response = client.get("/connections/settings/")
    assert response.status_code in (302, 403)


def test_settings_from_the_environment_are_shown_read_only_with_their_values(
    admin_client, settings
):
    settings.SERVICENOW_INSTANCE_URL = "https://acme.service-now.com"
    settings.SERVICENOW_USERNAME = "svc.exalate"
    settings.SERVICENOW_PASSWORD = "env-secret-Pa55"
    settings.NODE_PUBLIC_URL = "https://exalate.acme.com"
    page = admin_client.get("/connections/settings/").content.decode()
    assert 'value="https://acme.service-now.com"' in page and 'value="svc.exalate"' in page
    assert 'value="https://exalate.acme.com"' in page
    assert "Set by the environment" in page and "disabled" in page
    assert "env-secret-Pa55" not in page


def test_test_connection_names_an_unreadable_journal_and_acl_hidden_incidents(
    admin_client, sandbox
):
    """Issue 10 items 5 and 6: rights the instance hides behind 200s are found and named."""
    import requests

    s = sandbox.session()
    made = s.post(f"{sandbox.url}/api/now/table/incident",
                  json={"short_description": "secret: hidden from some"}, timeout=5).json()  # fmt: skip
    s.patch(f"{sandbox.url}/api/now/table/incident/{made['result']['sys_id']}",
            json={"comments": "a comment people can see"}, timeout=5).raise_for_status()  # fmt: skip
    for user_name, acl in (("nojournal", {"sys_journal_field": "empty"}),
                           ("partial", {"incident": "hide:short_descriptionSTARTSWITHsecret"})):  # fmt: skip
        requests.post(f"{sandbox.url}/sandbox/users", json={
            "user_name": user_name, "password": "pw-12345", "name": user_name, "acl": acl,
        }, timeout=5).raise_for_status()  # fmt: skip
    page = admin_client.post(
        "/connections/settings/",
        _form(sandbox.url, "pw-12345", username="nojournal", action="test"),
    ).content.decode()
    assert "sys_journal_field" in page and "Test connection succeeded" not in page
    assert '<li class="right-missing"><strong>read public comments (sys_journal_field)' in page
    page = admin_client.post(
        "/connections/settings/", _form(sandbox.url, "pw-12345", username="partial", action="test")
    ).content.decode()
    assert "hidden by ACLs" in page and "Test connection succeeded" not in page
