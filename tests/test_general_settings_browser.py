"""A browser logs in and saves General settings against the ServiceNow sandbox."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from connections.selectors import node_settings_get

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.integration]


def test_admin_logs_in_and_saves_settings_after_a_successful_test(
    page, live_server, sandbox_factory, django_user_model, artifacts
):
    django_user_model.objects.create_superuser("ada", password="ada-password-123", email="")
    sandbox = sandbox_factory(seed="", user="integration", password="s3cret-Pa55")

    page.goto(f"{live_server.url}/connections/settings/")
    expect(page.get_by_role("heading", name="Log in to the Exalate console")).to_be_visible()
    page.get_by_label("User name").fill("ada")
    page.get_by_label("Password").fill("ada-password-123")
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("heading", name="General settings")).to_be_visible()
    page.get_by_label("Node name").fill("ServiceNow EU")
    page.get_by_label("Exalate URL").fill("http://127.0.0.1:8001")
    page.get_by_label("Instance URL").fill(sandbox.url)
    page.get_by_label("User name").fill("integration")
    page.get_by_label("Password", exact=True).fill("wrong-password")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#test-result")).to_contain_text("Test connection failed")
    expect(page.locator("#test-result")).to_contain_text("Nothing was saved")
    assert node_settings_get().instance_url == ""

    page.get_by_label("Password", exact=True).fill("s3cret-Pa55")
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#test-result")).to_contain_text("Test connection succeeded")
    expect(page.locator("#test-rights li")).to_have_count(6)
    expect(page.locator("#test-rights")).to_contain_text("update incidents")
    page.get_by_label("Password", exact=True).fill("s3cret-Pa55")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Settings saved")
    page.screenshot(path=str(artifacts / "settings-01-saved.png"), full_page=True)

    node = node_settings_get()
    assert (node.name, node.instance_url, node.username) == (
        "ServiceNow EU",
        sandbox.url,
        "integration",
    )
    assert "s3cret-Pa55" not in page.content()
