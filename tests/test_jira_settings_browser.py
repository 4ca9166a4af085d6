"""A browser switches General settings to Jira: the form asks for Jira's fields (the select
presses "Use this tracker" through static/js/console.js), tests and saves the connection."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from connections.selectors import node_settings_get
from tests.jira_live import EMAIL, TOKEN, JiraSandbox, sandbox_installed

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.integration]


def test_switching_to_jira_asks_for_its_fields_and_saves_after_a_test(
    page, live_server, django_user_model, tmp_path, artifacts, settings
):
    if not sandbox_installed():
        pytest.skip("the Jira sandbox is not part of this tree")
    settings.SERVICENOW_INSTANCE_URL = ""
    django_user_model.objects.create_superuser("ada", password="ada-password-123", email="")
    site = JiraSandbox(tmp_path, "cloud")
    try:
        page.goto(f"{live_server.url}/connections/settings/")
        page.get_by_label("User name").fill("ada")
        page.get_by_label("Password").fill("ada-password-123")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="General settings")).to_be_visible()
        expect(page.get_by_label("OAuth client id")).to_be_visible()

        page.get_by_label("Tracker").select_option(
            label="Jira"
        )  # the page reloads with Jira's fields
        expect(page.get_by_label("Jira site URL")).to_be_visible()
        expect(page.get_by_label("OAuth client id")).to_have_count(0)
        expect(page.get_by_label("Jira Cloud (e-mail and API token)")).to_be_checked()
        page.get_by_label("Jira site URL").fill(site.url)
        page.get_by_label("E-mail", exact=True).fill(EMAIL)
        page.get_by_label("API token / personal access token").fill("wrong-token")
        page.get_by_role("button", name="Test connection").click()
        expect(page.locator("#test-result")).to_contain_text("refused")
        page.get_by_label("API token / personal access token").fill(TOKEN)
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status")).to_contain_text("Settings saved")
        expect(page.locator("#webhook-help")).to_contain_text("X-Hub-Signature")
        page.screenshot(path=str(artifacts / "settings-jira-saved.png"), full_page=True)
        node = node_settings_get()
        assert (node.tracker, node.auth_method, node.instance_url) == ("jira", "cloud", site.url)
        assert TOKEN not in page.content()
    finally:
        site.stop()
