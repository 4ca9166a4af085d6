"""Connections across live nodes: two public nodes (A, B) and one without a URL (C).

Each node is ``manage.py serve`` (gunicorn + Celery worker) with its own database. The
nodes are shared by every test of this module (started once, in parallel); each test
makes its own connections. Browser tests drive Chromium through both branches of the
Initiate wizard and save a screenshot of each step in test-artifacts/.
"""

from __future__ import annotations

import re
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from connections.invitations import _check, decode_invitation, encode_invitation
from tests.live import ADMIN_PASSWORD, ADMIN_USER, LiveNode, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    """``{"A": node, "B": node, "C": node}``: A and B public, C without a URL (private)."""
    made = {
        "A": LiveNode(tmp_path_factory.mktemp("node-a"), name="Node A"),
        "B": LiveNode(tmp_path_factory.mktemp("node-b"), name="Node B"),
        "C": LiveNode(tmp_path_factory.mktemp("node-c"), name="Node C", public=False),
    }
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            for future in [pool.submit(node.start) for node in made.values()]:
                future.result()
        yield made
    finally:
        for node in made.values():  # throw-away databases: no need for a graceful stop
            node.stop(sig=signal.SIGKILL)
            node.close()


@pytest.fixture(scope="module")
def api(nodes):
    """Logged-in requests sessions per node (session auth with the CSRF header set)."""
    return {name: node.login() for name, node in nodes.items()}


def connections_of(api, node) -> dict:
    """``{connection id: connection}`` on ``node`` ("A", "B" or "C"), from its API."""
    response = api[node].get(f"{api_url(api, node)}/api/connections/", timeout=10)
    response.raise_for_status()
    return {c["id"]: c for c in response.json()}


def api_url(api, node) -> str:
    return api[node].headers["Referer"].rstrip("/")


def initiate(api, node, **data) -> dict:
    response = api[node].post(
        f"{api_url(api, node)}/api/connections/initiate/", json=data, timeout=20
    )
    assert response.status_code == 201, response.text
    return response.json()


def accept(api, node, code) -> requests.Response:
    return api[node].post(
        f"{api_url(api, node)}/api/connections/accept/", json={"code": code}, timeout=30
    )


def resign(code: str, **changes) -> str:
    """The code with payload fields changed and its check recomputed, as someone holding it could."""
    payload = decode_invitation(code)
    changed = encode_invitation(payload.__class__(**{**payload.__dict__, **changes}))
    if "secret" in changes:  # sign with the new secret: a consistent code whose secret is wrong
        prefix, encoded, _ = changed.split(".")
        changed = f"{prefix}.{encoded}.{_check(changes['secret'], f'{prefix}.{encoded}')}"
    return changed


# --- Across processes, through the API -------------------------------------------------------


def test_a_public_connection_is_active_on_both_nodes_with_the_same_id(nodes, api):
    made = initiate(api, "A", destination_url=nodes["B"].url, name="API_A_to_B")
    cid = made["connection"]["id"]
    assert connections_of(api, "A")[cid]["status"] == "pending"
    response = accept(api, "B", made["invitation_code"])
    assert response.status_code == 201, response.text
    on_a, on_b = connections_of(api, "A")[cid], connections_of(api, "B")[cid]
    assert on_a["status"] == on_b["status"] == "active"
    assert on_a["remote_url"] == nodes["B"].url and on_b["remote_url"] == nodes["A"].url
    assert on_a["remote_name"] == "Node B" and on_b["remote_name"] == "Node A"
    assert on_a["is_initiator"] and not on_b["is_initiator"]
    # The secret agreed in the handshake signs requests that the other node accepts.
    check = (
        "from connections.models import Connection\n"
        "from connections.node_auth import sign_node_request\n"
        f"print(sign_node_request(Connection.objects.get(pk='{cid}'), b'ping'))\n"
    )
    token = nodes["A"].shell(check).strip().splitlines()[-1]
    verified = nodes["B"].shell(
        "from connections.node_auth import verify_node_request\n"
        f"print(verify_node_request('{token}', b'ping').pk)\n"
    )
    assert verified.strip().splitlines()[-1] == cid


def test_a_private_connection_makes_the_side_without_url_poll(nodes, api):
    made = initiate(api, "A", no_url=True, name="API_A_to_C")
    cid = made["connection"]["id"]
    assert accept(api, "C", made["invitation_code"]).status_code == 201
    on_a, on_c = connections_of(api, "A")[cid], connections_of(api, "C")[cid]
    assert on_a["status"] == on_c["status"] == "active"
    assert on_a["type"] == on_c["type"] == "private"
    assert on_c["polls_remote"] and on_c["remote_url"] == nodes["A"].url
    assert not on_a["polls_remote"] and on_a["remote_url"] == ""


def test_a_handshake_with_the_wrong_secret_leaves_nothing_on_either_node(nodes, api):
    made = initiate(api, "A", destination_url=nodes["B"].url, name="Wrong_secret")
    cid = made["connection"]["id"]
    forged = resign(made["invitation_code"], secret="x" * 43)
    response = accept(api, "B", forged)
    assert response.status_code == 400
    assert (
        "refused the invitation" in response.json()["error"]
        and "secret" in response.json()["error"]
    )
    assert cid not in connections_of(api, "B")
    assert connections_of(api, "A")[cid]["status"] == "pending"


def test_a_code_made_for_another_node_is_refused_on_both_sides(nodes, api):
    made = initiate(api, "A", destination_url=nodes["B"].url, name="For_B_only")
    cid = made["connection"]["id"]
    response = accept(api, "C", made["invitation_code"])
    assert response.status_code == 403 and "made for another node" in response.json()["error"]
    # Even edited to name C (check recomputed), A refuses: it made the invitation for B.
    c_id = requests.get(f"{nodes['C'].url}/api/node/v1/info", timeout=5).json()["node_id"]
    response = accept(api, "C", resign(made["invitation_code"], to_node_id=c_id))
    assert response.status_code == 403 and "made for another node" in response.json()["error"]
    assert cid not in connections_of(api, "C")
    assert connections_of(api, "A")[cid]["status"] == "pending"


def test_a_reused_code_is_refused(nodes, api):
    made = initiate(api, "A", no_url=True, name="Used_once")
    cid = made["connection"]["id"]
    assert accept(api, "C", made["invitation_code"]).status_code == 201
    again = accept(api, "C", made["invitation_code"])
    assert again.status_code == 409 and "already been accepted" in again.json()["error"]
    elsewhere = accept(api, "B", made["invitation_code"])
    assert elsewhere.status_code == 409 and "already been accepted" in elsewhere.json()["error"]
    assert cid not in connections_of(api, "B")


def test_a_revoked_code_is_refused(nodes, api):
    made = initiate(api, "A", no_url=True, name="Revoked")
    cid = made["connection"]["id"]
    revoke = api["A"].post(f"{nodes['A'].url}/api/connections/{cid}/revoke-invitation/", timeout=10)
    assert revoke.status_code == 204
    response = accept(api, "C", made["invitation_code"])
    assert response.status_code == 410 and "revoked" in response.json()["error"]
    assert cid not in connections_of(api, "C") and cid not in connections_of(api, "A")


def test_an_unreachable_initiator_is_reported_and_nothing_is_stored(nodes, api):
    made = initiate(api, "A", no_url=True, name="Unreachable")
    moved = resign(made["invitation_code"], node_url=f"http://127.0.0.1:{free_port()}")
    response = accept(api, "C", moved)
    assert response.status_code == 502 and "cannot be reached" in response.json()["error"]
    assert made["connection"]["id"] not in connections_of(api, "C")


# --- In the browser --------------------------------------------------------------------------


def login(page, node: LiveNode) -> None:
    page.goto(f"{node.url}/login/")
    page.fill("#id_username", ADMIN_USER)
    page.fill("#id_password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/(getting-started|dashboard)/$"))  # the landing page


@pytest.mark.browser
def test_initiate_with_admin_access_continues_on_the_destination(nodes, api, browser, artifacts):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        a, b = nodes["A"], nodes["B"]
        login(page, a)
        page.goto(f"{a.url}/connections/")
        page.screenshot(path=str(artifacts / "connections-01-list.png"))
        page.click("text=Initiate connection")
        dialog = page.locator("#initiate-dialog")
        expect(dialog.get_by_text("Destination Instance URL")).to_be_visible()
        page.fill("#id_destination_url", b.url)
        page.screenshot(path=str(artifacts / "connections-02-destination-url.png"))
        dialog.get_by_role("button", name="Next").click()
        expect(dialog.get_by_text("Choose the configuration type")).to_be_visible()
        expect(dialog.locator("#mode-visual input")).to_be_disabled()
        dialog.locator("#mode-basic").click()
        page.screenshot(path=str(artifacts / "connections-03-configuration-type.png"))
        dialog.get_by_role("button", name="Next").click()
        expect(
            dialog.get_by_text("Do you have admin access to the destination instance?")
        ).to_be_visible()
        expect(page.locator("#id_name")).to_have_value("NodeA_to_NodeB")
        page.fill("#id_name", "UI_Yes_A_to_B")
        dialog.get_by_text("Yes, I have admin access").click()
        page.screenshot(path=str(artifacts / "connections-04-admin-access.png"))
        dialog.get_by_role("button", name="Initiate").click()

        # On the destination: log in first (this browser has no session on B yet).
        page.wait_for_url(re.compile(rf"^{re.escape(b.url)}/login/\?next=/connections/accept/$"))
        page.screenshot(path=str(artifacts / "connections-05-destination-login.png"))
        page.fill("#id_username", ADMIN_USER)
        page.fill("#id_password", ADMIN_PASSWORD)
        page.click("button[type=submit]")
        accept_dialog = page.locator("#accept-dialog")
        expect(accept_dialog.get_by_text("UI_Yes_A_to_B")).to_be_visible()
        expect(accept_dialog.get_by_text("ServiceNow has no projects")).to_be_visible()
        page.screenshot(path=str(artifacts / "connections-06-accept-confirm.png"))
        accept_dialog.get_by_role("button", name="Confirm").click()
        expect(page.get_by_text("Connection established successfully")).to_be_visible()
        expect(page.get_by_text("Please enter an incident number to proceed")).to_be_visible()
        expect(page.get_by_role("button", name="Exalate")).to_be_visible()
        page.screenshot(path=str(artifacts / "connections-07-established.png"))
    finally:
        context.close()
    on_a = [c for c in connections_of(api, "A").values() if c["name"] == "UI_Yes_A_to_B"]
    on_b = [c for c in connections_of(api, "B").values() if c["name"] == "UI_Yes_A_to_B"]
    assert len(on_a) == len(on_b) == 1 and on_a[0]["id"] == on_b[0]["id"]
    assert on_a[0]["status"] == on_b[0]["status"] == "active"


@pytest.mark.browser
def test_initiate_without_admin_access_hands_over_a_code(nodes, api, browser, artifacts):
    from playwright.sync_api import expect

    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, permissions=["clipboard-read", "clipboard-write"]
    )
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        a, b = nodes["A"], nodes["B"]
        login(page, b)
        page.goto(f"{b.url}/connections/")
        page.click("text=Initiate connection")
        dialog = page.locator("#initiate-dialog")
        page.fill("#id_destination_url", a.url)
        dialog.get_by_role("button", name="Next").click()
        expect(dialog.get_by_text("Choose the configuration type")).to_be_visible()
        dialog.get_by_role("button", name="Next").click()  # Basic is chosen already
        page.fill("#id_name", "UI_No_B_to_A")
        dialog.get_by_text("No, I don't have admin access").click()
        dialog.get_by_role("button", name="Initiate").click()
        expect(dialog.get_by_role("button", name="Copy invitation code")).to_be_visible()
        code = page.locator("#invitation-code").input_value()
        dialog.get_by_role("button", name="Copy invitation code").click()
        expect(dialog.get_by_role("button", name="Copied")).to_be_visible()
        assert page.evaluate("navigator.clipboard.readText()") == code
        page.screenshot(path=str(artifacts / "connections-08-invitation-code.png"))
        dialog.get_by_role("link", name="Done").click()
        row = page.locator("tr", has_text="UI_No_B_to_A")
        expect(row.locator(".badge")).to_have_text("Pending")
        page.screenshot(path=str(artifacts / "connections-09-pending.png"))

        # The destination's admin accepts on A.
        login(page, a)
        page.goto(f"{a.url}/connections/")
        page.click("text=Accept invitation")
        accept_dialog = page.locator("#accept-dialog")
        page.fill("#id_code", code)
        page.screenshot(path=str(artifacts / "connections-10-accept-paste.png"))
        accept_dialog.get_by_role("button", name="Next").click()
        expect(accept_dialog.get_by_text("UI_No_B_to_A")).to_be_visible()
        accept_dialog.get_by_role("button", name="Confirm").click()
        expect(page.get_by_text("Connection established successfully")).to_be_visible()
        page.goto(f"{a.url}/connections/")
        expect(page.locator("tr", has_text="UI_No_B_to_A").locator(".badge")).to_have_text("Active")
        page.screenshot(path=str(artifacts / "connections-11-active.png"))
    finally:
        context.close()
    on_a = [c for c in connections_of(api, "A").values() if c["name"] == "UI_No_B_to_A"]
    on_b = [c for c in connections_of(api, "B").values() if c["name"] == "UI_No_B_to_A"]
    assert on_a[0]["id"] == on_b[0]["id"] and on_a[0]["status"] == on_b[0]["status"] == "active"


@pytest.mark.browser
def test_a_local_and_a_private_connection_in_the_browser(nodes, api, browser, artifacts):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        a, c = nodes["A"], nodes["C"]
        login(page, a)
        # Local: this node's own URL.
        page.goto(f"{a.url}/connections/")
        page.click("text=Initiate connection")
        dialog = page.locator("#initiate-dialog")
        page.fill("#id_destination_url", a.url)
        dialog.get_by_role("button", name="Next").click()
        expect(dialog.get_by_text("local connection")).to_be_visible()
        dialog.get_by_role("button", name="Next").click()
        page.fill("#id_name", "UI_Local")
        dialog.get_by_role("button", name="Initiate").click()
        page.locator("#accept-dialog").get_by_role("button", name="Confirm").click()
        expect(page.get_by_text("Connection established successfully")).to_be_visible()

        # Private: "I don't have a URL"; C (no URL) accepts.
        page.goto(f"{a.url}/connections/")
        page.click("text=Initiate connection")
        page.locator("label.toggle").click()
        expect(page.locator("#id_no_url")).to_be_checked()
        page.screenshot(path=str(artifacts / "connections-12-no-url.png"))
        dialog.get_by_role("button", name="Next").click()
        expect(dialog.get_by_text("private connection")).to_be_visible()
        dialog.get_by_role("button", name="Next").click()
        page.fill("#id_name", "UI_Private")
        dialog.get_by_role("button", name="Initiate").click()
        code = page.locator("#invitation-code").input_value()
        login(page, c)
        page.goto(f"{c.url}/connections/accept/")
        page.fill("#id_code", code)
        page.get_by_role("button", name="Next").click()
        expect(page.get_by_text("this node polls Node A")).to_be_visible()
        page.get_by_role("button", name="Confirm").click()
        expect(page.get_by_text("Connection established successfully")).to_be_visible()
    finally:
        context.close()
    local = [x for x in connections_of(api, "A").values() if x["name"] == "UI_Local"]
    assert (
        len(local) == 2
        and {x["status"] for x in local} == {"active"}
        and {x["type"] for x in local} == {"local"}
    )
    on_c = [x for x in connections_of(api, "C").values() if x["name"] == "UI_Private"]
    assert on_c[0]["status"] == "active" and on_c[0]["polls_remote"]


@pytest.mark.browser
def test_bad_input_is_explained_in_the_dialogs(nodes, api, browser, artifacts):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        a = nodes["A"]
        login(page, a)
        page.goto(f"{a.url}/connections/")
        page.click("text=Initiate connection")
        dialog = page.locator("#initiate-dialog")
        page.fill("#id_destination_url", f"{a.url}/healthz-is-not-a-node")
        dialog.get_by_role("button", name="Next").click()
        expect(dialog.locator("#wizard-error")).to_contain_text("is not an Exalate console node")
        page.screenshot(path=str(artifacts / "connections-13-not-a-node.png"))
        page.fill("#id_destination_url", f"http://127.0.0.1:{free_port()}")
        dialog.get_by_role("button", name="Next").click()
        expect(dialog.locator("#wizard-error")).to_contain_text("cannot be reached")

        made = initiate(api, "B", destination_url=a.url, name="Tampered_in_UI")
        code = made["invitation_code"]
        page.goto(f"{a.url}/connections/accept/")
        accept_dialog = page.locator("#accept-dialog")
        page.fill("#id_code", code[:-10])
        accept_dialog.get_by_role("button", name="Next").click()
        expect(accept_dialog.locator("#wizard-error")).to_contain_text("incomplete")
        page.fill("#id_code", code[:30] + ("A" if code[30] != "A" else "B") + code[31:])
        accept_dialog.get_by_role("button", name="Next").click()
        expect(accept_dialog.locator("#wizard-error")).to_contain_text("changed since it was made")
        page.screenshot(path=str(artifacts / "connections-14-tampered-code.png"))
    finally:
        context.close()
    assert made["connection"]["id"] not in connections_of(api, "A")
