"""The Triggers page, a bulk run's progress page and the Bulk Connect preview, in Chromium.

The Triggers page runs against a real ServiceNow sandbox (its sys_dictionary); the bulk
pages use the in-memory tracker with the tasks run after each commit in the web process
(``sync.nudge.nudge`` is the seam), so a run moves without a worker.
"""

from __future__ import annotations

import pytest
from django.db import transaction
from playwright.sync_api import expect

from connections.models import Connection
from sync import nudge
from sync.models import Trigger
from tests.sync_fakes import plug
from tests.trigger_fakes import QueryFake

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.integration]


def login(page, live_server, django_user_model):
    django_user_model.objects.create_superuser("ada", password="ada-password-123", email="")
    page.goto(f"{live_server.url}/triggers/")
    page.get_by_label("User name").fill("ada")
    page.get_by_label("Password").fill("ada-password-123")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Triggers", exact=True)).to_be_visible()


def connection():
    return Connection.objects.create(
        name="To B", type=Connection.Type.PUBLIC, status=Connection.Status.ACTIVE, secret="s" * 32,
        remote_url="http://127.0.0.1:9",
    )  # fmt: skip


def test_the_triggers_page_refuses_bad_queries_in_words_then_saves_with_a_count(
    page, live_server, sandbox_factory, django_user_model, settings, artifacts
):
    sandbox = sandbox_factory(seed="demo")
    settings.SERVICENOW_INSTANCE_URL = sandbox.url
    settings.SERVICENOW_USERNAME, settings.SERVICENOW_PASSWORD = "admin", "admin"
    connection()
    login(page, live_server, django_user_model)
    query = page.get_by_label("If")
    for bad, words in [
        ("active=true^priorty<=2", "no field 'priorty'"),
        ("active=true^priorityLESS2", "is not a ServiceNow operator"),
        ("caller_id=javascript:gs.getUserID()", "runs a script"),
        ("active=true^", "ends with '^'"),
        ("numberIN" + ",".join(f"INC{i:07d}" for i in range(450)), "at most 4,000"),
    ]:
        query.fill(bad)
        page.get_by_role("button", name="Save").click()
        expect(page.locator(".errorlist")).to_contain_text(words)
    assert not Trigger.objects.exists()
    query.fill("")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".errorlist")).to_contain_text("matches every incident")
    page.screenshot(path=str(artifacts / "triggers-01-confirm-all.png"), full_page=True)
    assert not Trigger.objects.exists()
    page.get_by_label("If").fill("active=true^priority<=2")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("match it now")
    expect(page.locator("#trigger-preview a").first).to_contain_text("INC")
    page.screenshot(path=str(artifacts / "triggers-02-saved-preview.png"), full_page=True)
    trigger = Trigger.objects.get()
    assert trigger.query == "active=true^priority<=2" and trigger.last_count > 0


@pytest.fixture
def inline_tasks(monkeypatch):
    def run_after_commit(task, *args, countdown=None):
        if not countdown:
            transaction.on_commit(lambda: task(*args))

    monkeypatch.setattr(nudge, "nudge", run_after_commit)


def test_a_bulk_run_has_its_own_progress_page_and_bulk_connect_previews_rows(
    page, live_server, django_user_model, settings, monkeypatch, inline_tasks, artifacts, tmp_path
):
    tracker = plug(settings, monkeypatch, QueryFake())
    for i in range(5):
        tracker.seed(summary=f"Match {i}", fields={"priority": "1"})
    conn = connection()
    login(page, live_server, django_user_model)
    page.get_by_label("If").fill("priority=1")
    page.get_by_label("Active").uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("5 incidents match it now")
    page.get_by_role("button", name="Bulk Exalate").click()
    expect(page.locator("[data-run-status]")).to_have_text("Done")
    expect(page.locator("[data-done]")).to_have_text("5")
    expect(page.locator("[data-remaining]")).to_have_text("0")
    expect(page.locator("[data-percent]")).to_have_text("100 %")
    page.screenshot(path=str(artifacts / "bulk-01-progress.png"), full_page=True)

    known = tracker.seed(summary="Known")
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text(
        f"local,remote\n{known['key']},REM0000001\nINC0099999,REM0000002\n"
        f"{known['key']},REM0000003\nbroken\n"
    )
    # Delivering to the unreachable remote put the connection in Error: make it active again.
    Connection.objects.filter(pk=conn.pk).update(status=Connection.Status.ACTIVE)
    page.goto(f"{live_server.url}/bulk/")
    page.get_by_label("Connection").select_option(str(conn.pk))
    page.get_by_label("CSV file").set_input_files(str(csv_file))
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("table.valid-rows")).to_contain_text(known["key"])
    bad = page.locator("table.bad-rows")
    expect(bad).to_contain_text("Unknown local number")
    expect(bad).to_contain_text("Duplicate row: local number")
    expect(bad).to_contain_text("Malformed line")
    expect(page.get_by_role("button", name="Confirm: link the 1 valid row")).to_be_visible()
    page.screenshot(path=str(artifacts / "bulk-02-connect-preview.png"), full_page=True)

    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    page.goto(f"{live_server.url}/bulk/")
    page.get_by_label("CSV file").set_input_files(str(empty))
    page.get_by_role("button", name="Preview").click()
    expect(page.locator(".errorlist")).to_contain_text("The file is empty")
