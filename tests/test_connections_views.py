"""The Connections tab and the wizards without JavaScript (plain POSTs), in one process.

Cross-node flows run against live nodes in test_connections_live.py; here the
destination is this node itself (a local connection), a URL that is not a node, or none.
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connections.models import Connection, Invitation
from connections.services import connection_initiate
from tests.live import free_port

pytestmark = pytest.mark.django_db
OWN_URL = "http://node-a.example:8000"


@pytest.fixture(autouse=True)
def node_url(settings):
    settings.NODE_PUBLIC_URL = OWN_URL
    settings.NODE_NAME = "Node A"
    # The cast's passwords need no real hashing here; it keeps each test well under a second.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def not_a_node():
    """A web server on 127.0.0.1 that answers every page with HTML (it is no console node)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<html><body>Welcome to nginx!</body></html>"
            self.send_response(200)
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


def post_step(client, **data):
    return client.post("/connections/initiate/", data)


def text(response) -> str:
    return response.content.decode()


def test_the_connections_tab_lists_nothing_yet_and_offers_both_wizards(admin_client):
    page = text(admin_client.get("/connections/"))
    assert "No connections yet." in page
    assert "Initiate connection" in page and "Accept invitation" in page


def test_connection_pages_need_an_admin(client, outsider):
    assert client.get("/connections/initiate/")["Location"].startswith("/login/")
    client.force_login(outsider)
    assert client.get("/connections/accept/").status_code == 403


def test_a_local_connection_can_be_made_without_javascript(admin_client):
    step1 = admin_client.get("/connections/initiate/")
    assert "Destination Instance URL" in text(step1) and "I don't have a URL" in text(step1)

    step2 = post_step(admin_client, step="destination", destination_url=OWN_URL + "/")
    page = text(step2)
    assert "Choose the configuration type" in page and "local connection" in page
    assert re.search(r'value="visual" disabled', page) and re.search(
        r'value="script" disabled', page
    )

    step3 = post_step(
        admin_client,
        step="mode",
        destination_url=OWN_URL,
        type="local",
        remote_name="Node A",
        mode="basic",
    )
    page = text(step3)
    assert 'value="NodeA_to_NodeA"' in page
    assert "Do you have admin access" not in page  # both ends are here

    initiated = post_step(
        admin_client,
        step="name",
        destination_url=OWN_URL,
        type="local",
        mode="basic",
        name="Local pair",
    )
    assert initiated.status_code == 302 and initiated["Location"] == "/connections/accept/"
    confirm = admin_client.get("/connections/accept/")
    page = text(confirm)
    assert "Confirm" in page and "Local pair" in page and "ServiceNow has no projects" in page
    code = re.search(r'name="code" value="([^"]+)"', page).group(1)

    established = admin_client.post("/connections/accept/", {"step": "confirm", "code": code})
    assert established.status_code == 302
    page = text(admin_client.get(established["Location"]))
    assert "Connection established successfully" in page
    assert "Please enter an incident number to proceed" in page
    peer = Connection.objects.get(is_initiator=False)
    assert f'action="/connections/{peer.id}/exalate/"' in page and 'name="number"' in page
    assert "csrfmiddlewaretoken" in page

    first, second = Connection.objects.order_by("-is_initiator")
    assert (first.status, second.status) == ("active", "active")
    assert first.local_peer == second and second.local_peer == first
    assert first.type == second.type == "local" and first.secret == second.secret
    listing = text(admin_client.get("/connections/"))
    assert listing.count('data-connection-id="') == 1  # a local connection shows once


def test_previous_goes_back_with_the_answers_kept(admin_client):
    back = post_step(
        admin_client, step="mode", destination_url=OWN_URL, type="local", mode="basic", back="1"
    )
    page = text(back)
    assert (
        'name="destination_url" id="id_destination_url" value="http://node-a.example:8000"' in page
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://files.example/", "starting with http:// or https://"),
        ("node-b.example", "starting with http:// or https://"),
        ("", "Enter the Destination Instance URL"),
    ],
)
def test_a_destination_url_that_is_not_http_is_refused_in_the_dialog(admin_client, url, message):
    page = text(post_step(admin_client, step="destination", destination_url=url))
    assert message in page and 'id="wizard-error"' in page
    assert not Connection.objects.exists()


def test_a_destination_that_does_not_answer_is_refused(admin_client):
    url = f"http://127.0.0.1:{free_port()}"
    page = text(post_step(admin_client, step="destination", destination_url=url))
    assert "cannot be reached from this node" in page
    assert not Connection.objects.exists()


def test_a_destination_that_is_not_a_node_is_refused(admin_client, not_a_node):
    page = text(post_step(admin_client, step="destination", destination_url=not_a_node))
    assert "is not an Exalate console node" in page
    assert not Connection.objects.exists()


def test_no_url_on_a_node_without_its_own_url_points_to_general_settings(admin_client, settings):
    settings.NODE_PUBLIC_URL = ""
    page = text(post_step(admin_client, step="destination", no_url="on"))
    assert "This node has no Exalate URL" in page and "/connections/settings/" in page
    assert not Connection.objects.exists()


def test_a_private_invitation_code_is_shown_with_copy_and_done(admin_client):
    step2 = text(post_step(admin_client, step="destination", no_url="on"))
    assert "private connection" in step2
    step3 = text(post_step(admin_client, step="mode", no_url="on", type="private", mode="basic"))
    assert 'value="NodeA_to_Remote"' in step3
    done = post_step(
        admin_client, step="name", no_url="on", type="private", mode="basic", name="NodeA_to_Remote"
    )
    assert done.status_code == 302
    page = text(admin_client.get(done["Location"]))
    connection = Connection.objects.get()
    assert connection.status == "pending" and connection.type == "private"
    assert connection.invitation.code in page
    assert "Copy invitation code" in page and ">Done<" in page and "Revoke invitation" in page


def test_a_duplicate_connection_name_is_refused_on_the_last_step(admin_client, admin_user):
    connection_initiate(destination_url="", no_url=True, mode="basic", name="Twin", user=admin_user)
    page = text(
        post_step(admin_client, step="name", no_url="on", type="private", mode="basic", name="twin")
    )
    assert "already exists" in page and Connection.objects.count() == 1


def test_public_initiate_asks_about_admin_access_before_initiating(admin_client):
    page = text(
        post_step(
            admin_client,
            step="name",
            destination_url="http://b.example",
            type="public",
            mode="basic",
            name="X",
        )
    )
    assert "Choose whether you have admin access" in page
    assert not Connection.objects.exists()


@pytest.mark.parametrize("code", ["garbage", "exalate1.eyJ2Ijo", ""])
def test_a_bad_code_is_explained_in_the_accept_dialog(admin_client, code):
    page = text(admin_client.post("/connections/accept/", {"step": "code", "code": code}))
    assert 'id="wizard-error"' in page
    assert not Connection.objects.exists()


def test_an_invitation_link_keeps_the_code_out_of_the_login_url(client, admin_user):
    _, code = connection_initiate(
        destination_url="", no_url=True, mode="basic", name="P", user=admin_user
    )
    landing = client.get("/api/node/v1/accept-invitation", {"code": code})
    assert landing["Location"] == "/connections/accept/"
    to_login = client.get("/connections/accept/")
    assert to_login["Location"] == "/login/?next=/connections/accept/"
    client.force_login(admin_user)
    page = text(client.get("/connections/accept/"))
    # This node made the code for another node: the dialog says so, with the code filled in.
    assert "made by this node for another node" in page and code in page


def test_revoking_a_pending_invitation_removes_the_connection_and_kills_the_code(
    admin_client, admin_user
):
    connection, code = connection_initiate(
        destination_url="", no_url=True, mode="basic", name="P", user=admin_user
    )
    response = admin_client.post(f"/connections/{connection.id}/invitation/revoke/")
    assert response.status_code == 302
    assert not Connection.objects.exists()
    invitation = Invitation.objects.get()
    assert invitation.status == "revoked" and invitation.code == ""
    assert "is revoked" in text(admin_client.get("/connections/"))


def test_deactivate_keeps_the_connection_and_activate_turns_it_back(admin_client):
    connection = Connection.objects.create(
        name="C", status="active", remote_node_id="5" * 32, secret="s"
    )
    admin_client.post(f"/connections/{connection.id}/deactivate/")
    connection.refresh_from_db()
    assert connection.status == "deactivated"
    page = text(admin_client.get("/connections/"))
    assert "Changes stay queued" in page and ">Activate<" in page
    admin_client.post(f"/connections/{connection.id}/activate/")
    connection.refresh_from_db()
    assert connection.status == "active"


def test_activating_a_pending_connection_is_refused_with_a_message(admin_client, admin_user):
    connection, _ = connection_initiate(
        destination_url="", no_url=True, mode="basic", name="P", user=admin_user
    )
    admin_client.post(f"/connections/{connection.id}/activate/")
    connection.refresh_from_db()
    assert connection.status == "pending"
    assert "still waiting for its invitation" in text(admin_client.get("/connections/"))


def test_delete_asks_first_and_says_what_happens_to_the_synced_pairs(admin_client):
    connection = Connection.objects.create(
        name="C", status="active", remote_node_id="5" * 32, secret="s"
    )
    page = text(admin_client.get(f"/connections/{connection.id}/delete/"))
    assert (
        "The synced incidents stay as they are in both instances; they just stop syncing." in page
    )
    assert Connection.objects.exists()
    admin_client.post(f"/connections/{connection.id}/delete/")
    assert not Connection.objects.exists()


def test_actions_need_post_and_csrf(client, admin_user):
    connection = Connection.objects.create(
        name="C", status="active", remote_node_id="5" * 32, secret="s"
    )
    client.force_login(admin_user)
    assert client.get(f"/connections/{connection.id}/deactivate/").status_code == 405
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    assert strict.post(f"/connections/{connection.id}/deactivate/").status_code == 403
    connection.refresh_from_db()
    assert connection.status == "active"


def test_names_from_other_nodes_are_escaped(admin_client):
    Connection.objects.create(
        name="C",
        status="active",
        remote_node_id="5" * 32,
        remote_name="<script>alert(1)</script>",
        secret="s",
    )
    page = text(admin_client.get("/connections/"))
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


@pytest.fixture
def node_b(monkeypatch):
    """Destination node B as its info endpoint describes it (the one function patched)."""
    from connections import services
    from connections.services import destination

    b = services.RemoteNode(
        node_id="6" * 32,
        name="Node B",
        tracker="servicenow",
        url="http://node-b.example",
        modes={"basic": True, "visual": False, "script": False},
    )
    monkeypatch.setattr(destination, "node_info_fetch", lambda url: b)
    return b


def test_yes_sends_the_browser_to_the_destination_with_the_invitation(admin_client, node_b):
    step2 = text(
        post_step(admin_client, step="destination", destination_url="http://node-b.example/")
    )
    assert "Found node <strong>Node B</strong>" in step2
    step3 = text(
        post_step(
            admin_client,
            step="mode",
            destination_url=node_b.url,
            type="public",
            remote_name="Node B",
            mode="basic",
        )
    )
    assert 'value="NodeA_to_NodeB"' in step3 and "Yes, I have admin access" in step3
    response = post_step(
        admin_client,
        step="name",
        destination_url=node_b.url,
        type="public",
        mode="basic",
        name="NodeA_to_NodeB",
        admin_access="yes",
    )
    assert response.status_code == 302
    assert response["Location"].startswith(
        "http://node-b.example/api/node/v1/accept-invitation?code=exalate1."
    )
    assert Connection.objects.get().status == "pending"


def test_with_htmx_yes_redirects_the_whole_page(admin_client, node_b):
    response = admin_client.post(
        "/connections/initiate/",
        {
            "step": "name",
            "destination_url": node_b.url,
            "type": "public",
            "mode": "basic",
            "name": "N",
            "admin_access": "yes",
        },
        HTTP_HX_REQUEST="true",
    )
    assert response["HX-Redirect"].startswith(
        "http://node-b.example/api/node/v1/accept-invitation?code="
    )


def test_no_shows_the_invitation_code_in_the_dialog_with_htmx(admin_client, node_b):
    response = admin_client.post(
        "/connections/initiate/",
        {
            "step": "name",
            "destination_url": node_b.url,
            "type": "public",
            "mode": "basic",
            "name": "N",
            "admin_access": "no",
        },
        HTTP_HX_REQUEST="true",
    )
    page = text(response)
    assert page.lstrip().startswith('<section class="dialog wizard" id="initiate-dialog"')
    assert Connection.objects.get().invitation.code in page and "Copy invitation code" in page
