"""The console's pages satisfy its Content-Security-Policy: Chromium reports no violation.

Each page is loaded (and its htmx dialogs opened) while the browser listens for
``securitypolicyviolation`` events and CSP console errors; there must be none.
"""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

from connections.models import Connection
from connections.services import connection_initiate
from sync.models import SyncError, Twin

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.integration]

LISTENER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber})`);
});
"""


def test_the_console_pages_raise_no_csp_violation(page, live_server, django_user_model, settings):
    settings.NODE_PUBLIC_URL = live_server.url
    admin = django_user_model.objects.create_superuser("ada", password="ada-password-123", email="")
    pending, _ = connection_initiate(
        destination_url="", no_url=True, mode="basic", name="Pending_one", user=admin
    )
    active = Connection.objects.create(
        name="Active_one",
        status="active",
        type="public",
        remote_node_id=uuid.uuid4(),
        remote_url="http://127.0.0.1:9",
        remote_name="Node B",
        secret="s",
    )
    twin = Twin.objects.create(
        connection=active,
        local_entity_id="a" * 32,
        local_key="INC0010001",
        local_url="http://127.0.0.1:9/incident.do",
        remote_key="INC0010002",
        remote_url="http://127.0.0.1:9/incident.do",
        status="error",
    )
    SyncError.objects.create(level="error", connection=active, twin=twin, message="It failed.")

    console_messages: list[str] = []
    page.on(
        "console",
        lambda m: (
            console_messages.append(m.text)
            if m.type == "error" or "Content Security Policy" in m.text
            else None
        ),
    )
    page.add_init_script(LISTENER)

    def violations() -> list[str]:
        return page.evaluate("window.__cspViolations") + [
            m for m in console_messages if "Content Security Policy" in m
        ]

    page.goto(f"{live_server.url}/login/")
    page.get_by_label("User name").fill("ada")
    page.get_by_label("Password").fill("ada-password-123")
    page.get_by_role("button", name="Log in").click()
    # A connection exists, so the login lands on the Dashboard (issue 12, item 7).
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()

    paths = [
        "/getting-started/",
        "/connections/",
        "/connections/initiate/",
        "/connections/accept/",
        f"/connections/{active.id}/",
        f"/connections/{pending.id}/invitation/",
        "/connections/settings/",
        "/entity-sync-status/",
        f"/twins/{twin.id}/",
        "/errors/",
        "/sync-queue/",
        "/dashboard/",  # issue 12: the SVG chart
        "/clean-up/",
        f"/twins/{twin.id}/replica/local/",
        "/triggers/",
        "/api/docs/",
    ]
    seen = {}
    for path in paths:
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200, path
        assert "script-src 'self'" in response.headers["content-security-policy"], path
        page.wait_for_load_state("networkidle")
        seen[path] = violations()
        if path == "/api/docs/":
            docs_rendered = "Exalate console API" in page.locator("body").inner_text()

    assert all(not v for v in seen.values()), {k: v for k, v in seen.items() if v}

    # The htmx dialogs and the confirm before Deactivate (formerly an inline handler).
    page.goto(f"{live_server.url}/connections/")
    page.locator("#initiate-connection").click()
    expect(page.locator("#initiate-dialog")).to_be_visible()
    page.keyboard.press("Escape")
    page.locator("#accept-invitation").click()
    expect(page.locator("#accept-dialog")).to_be_visible()
    page.keyboard.press("Escape")
    questions: list[str] = []
    page.once("dialog", lambda d: (questions.append(d.message), d.dismiss()))
    page.get_by_role("button", name="Deactivate").click()
    expect(page.locator("tr", has_text="Active_one").locator(".badge")).to_have_text("Active")
    assert questions and questions[0].startswith("Deactivate Active_one?")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Deactivate").click()
    expect(page.locator("tr", has_text="Active_one").locator(".badge")).to_have_text("Deactivated")
    assert not violations()
    assert docs_rendered, "the API docs page did not render"
