"""A console node on Jira (issue #15), in one process against a real Jira sandbox process:
General settings per tracker and Test connection, Accept with "Select a project for the
incoming sync", the established dialog, changing the project on the connection page, the
signed Jira webhook, and the engine passing the connection's project to the adapter.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connections.models import Connection, NodeSettings
from connections.services import connection_initiate
from tests.jira_live import EMAIL, TOKEN, JiraSandbox, sandbox_installed

pytestmark = pytest.mark.django_db
OWN_URL = "http://node-c.example:8000"


@pytest.fixture(scope="module")
def jira(tmp_path_factory):
    """One Jira Cloud sandbox process (seeded: TEST, OPS, SUP) for the module."""
    if not sandbox_installed():
        pytest.skip("the Jira sandbox is not part of this tree")
    site = JiraSandbox(tmp_path_factory.mktemp("jira-node"), "cloud")
    yield site
    site.stop()


@pytest.fixture
def node(settings):
    settings.NODE_PUBLIC_URL = OWN_URL
    settings.NODE_NAME = "Jira C"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.SERVICENOW_INSTANCE_URL = ""
    return settings


@pytest.fixture
def jira_node(node, jira):
    """This node's tracker is the Jira sandbox (fixed by the environment, as JIRA_* do)."""
    node.JIRA_INSTANCE_URL, node.JIRA_AUTH = jira.url, "cloud"
    node.JIRA_EMAIL, node.JIRA_API_TOKEN = EMAIL, TOKEN
    node.JIRA_RETRY_ATTEMPTS = 1
    return node


@pytest.fixture
def not_jira():
    """A web server on 127.0.0.1 that answers / with HTML and everything else 404 (no Jira)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            found = self.path == "/"
            body = b"<html><body>Welcome to nginx!</body></html>" if found else b"Not found"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def text(response) -> str:
    return response.content.decode()


# --- General settings ------------------------------------------------------------------------


def test_general_settings_asks_each_tracker_for_its_own_fields(admin_client, node):
    servicenow = text(admin_client.get("/connections/settings/"))
    assert "User name" in servicenow and "OAuth client id" in servicenow
    assert "https://yourcompany.service-now.com" in servicenow
    assert 'value="jira"' in servicenow and 'data-change-submit="#switch-tracker"' in servicenow
    switched = text(
        admin_client.post(
            "/connections/settings/",
            {"action": "switch", "tracker": "jira", "name": "Jira C", "instance_url": ""},
        )
    )
    assert "E-mail" in switched and "API token / personal access token" in switched
    assert "Jira site URL" in switched and "https://yourcompany.atlassian.net" in switched
    assert "Jira Cloud (e-mail and API token)" in switched
    assert "Jira Data Center (personal access token)" in switched
    assert "OAuth client id" not in switched and "errorlist" not in switched
    assert "X-Hub-Signature" in switched  # the Jira webhook's own instructions


def test_general_settings_of_a_jira_node_fixed_by_the_environment(admin_client, node):
    node.JIRA_INSTANCE_URL, node.JIRA_AUTH = "https://acme.atlassian.net", "cloud"
    node.JIRA_EMAIL, node.JIRA_API_TOKEN = EMAIL, "secret-token-value"
    page = text(admin_client.get("/connections/settings/"))
    assert "Jira site URL" in page and "https://acme.atlassian.net" in page and EMAIL in page
    assert "Set by the environment; change it there." in page and "OAuth" not in page
    assert "secret-token-value" not in page and 'id="switch-tracker"' not in page
    assert "/api/webhooks/jira/" in page and "X-Hub-Signature" in page


@pytest.mark.integration
def test_test_connection_says_what_is_wrong_with_a_jira_site(admin_client, node, jira, not_jira):
    def post(**data):
        return text(
            admin_client.post(
                "/connections/settings/",
                {"tracker": "jira", "auth_method": "cloud", "username": EMAIL, **data},
            )
        )

    page = post(action="test", instance_url=not_jira, password="whatever")
    assert "Test connection failed" in page and "is not a Jira site" in page
    page = post(action="test", instance_url=jira.url, password="wrong-token")
    assert "Test connection failed" in page and "refused" in page and "(401)" in page
    assert "wrong-token" not in page
    page = post(action="test", instance_url=jira.url, password="")
    assert "Enter the API token / personal access token." in page
    page = post(action="test", instance_url=jira.url, username="", password=TOKEN)
    assert "Enter the integration account&#x27;s e-mail." in page
    page = post(action="test", instance_url=jira.url, password=TOKEN)
    assert "Test connection succeeded" in page and "Jira Cloud" in page and "TEST" in page
    saved = admin_client.post(
        "/connections/settings/",
        {"action": "save", "tracker": "jira", "auth_method": "cloud", "username": EMAIL,
         "password": TOKEN, "instance_url": jira.url},
    )  # fmt: skip
    assert saved.status_code == 302
    stored = NodeSettings.objects.get()
    assert (stored.tracker, stored.auth_method, stored.username) == ("jira", "cloud", EMAIL)
    assert stored.password == TOKEN


# --- Accept with the project step --------------------------------------------------------------


def _local_invitation(admin_user) -> str:
    connection, code = connection_initiate(
        destination_url=OWN_URL, no_url=False, mode="basic", name="Jira pair", user=admin_user
    )
    assert connection.type == Connection.Type.LOCAL
    return code


@pytest.mark.integration
def test_accept_on_a_jira_node_selects_the_project_for_the_incoming_sync(
    admin_client, admin_user, jira_node
):
    code = _local_invitation(admin_user)
    step = text(admin_client.post("/connections/accept/", {"step": "code", "code": code}))
    assert "Select a project for the incoming sync" in step
    assert "Issue types are mirrored." in step and "it will be synced as a task" in step
    assert "Please select the project where you want to create entities" in step
    options = [
        '<option value="">Select Project</option>',
        '<option value="OPS">Operations (OPS)</option>',
        '<option value="SUP">Support desk (SUP)</option>',
        '<option value="TEST">Test project (TEST)</option>',
    ]
    assert all(o in step for o in options) and step.index(options[1]) < step.index(options[3])
    assert "has no projects to select" not in step

    refused = text(admin_client.post("/connections/accept/", {"step": "confirm", "code": code}))
    assert "Please select the project where you want to create entities" in refused
    assert 'role="alert"' in refused and Connection.objects.filter(status="active").count() == 0
    unknown = admin_client.post(
        "/connections/accept/", {"step": "confirm", "code": code, "project": "NOPE"}
    )
    assert "Project NOPE is not one of the projects" in text(unknown)

    done = admin_client.post(
        "/connections/accept/", {"step": "confirm", "code": code, "project": "TEST"}
    )
    assert done.status_code == 302
    both = Connection.objects.filter(name="Jira pair")
    assert {(c.status, c.incoming_project_key, c.incoming_project_name) for c in both} == {
        ("active", "TEST", "Test project")
    }
    established = text(admin_client.get(done["Location"]))
    assert (
        "Please enter an issue key from the project <strong>Test project (TEST)</strong> to proceed"
        in established
    )
    assert 'placeholder="TEST-1"' in established and "Sync your first issue" in established


@pytest.mark.integration
def test_a_project_the_account_cannot_create_in_is_refused_and_nothing_is_stored(
    admin_client, admin_user, jira_node
):
    jira_node.JIRA_EMAIL, jira_node.JIRA_API_TOKEN = "lee.viewer@example.com", "lee-token"
    code = _local_invitation(admin_user)
    step = text(admin_client.post("/connections/accept/", {"step": "code", "code": code}))
    assert "Select a project for the incoming sync" in step and 'value="TEST"' not in step
    refused = text(
        admin_client.post(
            "/connections/accept/", {"step": "confirm", "code": code, "project": "TEST"}
        )
    )
    assert "Project TEST is not one of the projects" in refused
    assert not Connection.objects.filter(status="active").exists()


@pytest.mark.integration
def test_the_project_can_be_changed_on_the_connection_page(admin_client, admin_user, jira_node):
    code = _local_invitation(admin_user)
    admin_client.post("/connections/accept/", {"step": "confirm", "code": code, "project": "TEST"})
    connection = Connection.objects.get(name="Jira pair", is_initiator=False)
    page = text(admin_client.get(f"/connections/{connection.pk}/"))
    assert "Project for the incoming sync" in page and "Test project (TEST)" in page
    assert '<option value="OPS">Operations (OPS)</option>' in page
    changed = admin_client.post(f"/connections/{connection.pk}/project/", {"project": "OPS"})
    assert changed.status_code == 302
    connection.refresh_from_db()
    assert (connection.incoming_project_key, connection.incoming_project_name) == (
        "OPS",
        "Operations",
    )
    page = text(admin_client.get(f"/connections/{connection.pk}/"))
    assert "New mirrors of Jira pair are created in Operations (OPS)." in page
    admin_client.post(f"/connections/{connection.pk}/project/", {"project": "NOPE"})
    connection.refresh_from_db()
    assert connection.incoming_project_key == "OPS"
    assert "Project NOPE is not one of the projects" in text(
        admin_client.get(f"/connections/{connection.pk}/")
    )


def test_a_servicenow_node_has_no_project_step(admin_client, admin_user, node):
    code = _local_invitation(admin_user)
    step = text(admin_client.post("/connections/accept/", {"step": "code", "code": code}))
    assert "ServiceNow has no projects to select" in step
    assert "Select a project for the incoming sync" not in step
    done = admin_client.post("/connections/accept/", {"step": "confirm", "code": code})
    assert done.status_code == 302
    page = text(admin_client.get(done["Location"]))
    assert "Please enter an incident number to proceed" in page
    assert 'placeholder="INC0010001"' in page


# --- the signed Jira webhook ---------------------------------------------------------------------


def _sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_the_jira_webhook_is_checked_by_its_signature(client, node):
    node.JIRA_WEBHOOK_SECRET = "hook-secret"
    event = {"webhookEvent": "jira:issue_updated", "issue": {"id": "10001", "key": "TEST-1"}}
    body = json.dumps({**event, "padding": "x" * 50_000}).encode()  # a whole issue: > 10 KB

    def post(headers):
        return client.post(
            "/api/webhooks/jira/", body, content_type="application/json", headers=headers
        )

    assert post({"X-Hub-Signature": _sign(body, "hook-secret")}).status_code == 202
    wrong = post({"X-Hub-Signature": _sign(body, "other")})
    assert wrong.status_code == 401 and "does not match" in wrong.json()["error"]
    assert post({}).status_code == 401
    token = NodeSettings.objects.get().webhook_token
    assert post({"Authorization": f"Bearer {token}"}).status_code == 401  # Jira signs, no bearer
    node.JIRA_WEBHOOK_SECRET = ""  # then the node's webhook token is the secret
    assert post({"X-Hub-Signature": _sign(body, token)}).status_code == 202
    too_big = json.dumps({**event, "padding": "x" * 1_000_001}).encode()
    assert (
        client.post(
            "/api/webhooks/jira/",
            too_big,
            content_type="application/json",
            headers={"X-Hub-Signature": _sign(too_big, token)},
        ).status_code
        == 413
    )


def test_the_servicenow_webhook_keeps_its_bearer_token_and_small_body(client, node):
    token = NodeSettings.objects.get_or_create(
        pk=1, defaults={"webhook_token": NodeSettings.new_webhook_token()}
    )[0].webhook_token
    ok = client.post(
        "/api/webhooks/servicenow/",
        {"sys_id": "a" * 32},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert ok.status_code == 202
    big = client.post(
        "/api/webhooks/servicenow/",
        {"sys_id": "a" * 32, "padding": "x" * 20_000},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert big.status_code == 413


# --- the engine passes the connection's project ------------------------------------------------


def test_apply_creates_the_mirror_in_the_connections_project(settings, monkeypatch):
    from sync import nudge, services
    from sync.models import Twin
    from tests.sync_fakes import FakeAdapter, plug
    from tests.test_sync_engine import Runner

    fake, runner = plug(settings, monkeypatch, FakeAdapter()), Runner()
    monkeypatch.setattr(nudge, "nudge", runner.enqueue)
    left = Connection.objects.create(name="L", type="local", status="active", secret="s" * 32)
    right = Connection.objects.create(
        name="R", type="local", status="active", secret="s" * 32,
        incoming_project_key="OPS", incoming_project_name="Operations",
    )  # fmt: skip
    left.local_peer, right.local_peer = right, left
    left.save()
    right.save()
    source = fake.seed()
    services.entity_exalate(connection=left, key=source["key"])
    runner.run()
    assert fake.projects_used == ["OPS"]
    mirror = Twin.objects.get(connection=right)
    assert mirror.local_entity_id and mirror.entity_type == "incident"


@pytest.mark.integration
def test_the_api_accepts_with_a_project_on_a_jira_node(admin_client, admin_user, jira_node):
    code = _local_invitation(admin_user)
    missing = admin_client.post(
        "/api/connections/accept/", {"code": code}, content_type="application/json"
    )
    assert missing.status_code == 400 and "select the project" in missing.json()["error"]
    accepted = admin_client.post(
        "/api/connections/accept/",
        {"code": code, "project": "OPS"},
        content_type="application/json",
    )
    assert accepted.status_code == 201, accepted.content
    assert accepted.json()["connection"]["incoming_project_key"] == "OPS"
    assert accepted.json()["connection"]["incoming_project_name"] == "Operations"


@pytest.mark.integration
def test_test_connection_on_data_center_uses_the_personal_access_token(
    admin_client, node, tmp_path
):
    site = JiraSandbox(tmp_path, "dc")
    try:

        def post(token):
            return text(
                admin_client.post(
                    "/connections/settings/",
                    {
                        "action": "test",
                        "tracker": "jira",
                        "auth_method": "dc",
                        "username": "",
                        "password": token,
                        "instance_url": site.url,
                    },
                )  # fmt: skip
            )

        page = post("wrong-pat")
        assert "Test connection failed" in page and "personal access token (401)" in page
        page = post(TOKEN)
        assert "Test connection succeeded" in page and "Jira Data Center" in page
    finally:
        site.stop()
