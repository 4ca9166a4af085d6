"""The Triggers and Bulk operations pages (Django test client, the query-running fake)."""

from __future__ import annotations

import pytest

from sync.models import BulkRun, Trigger
from tests.trigger_fakes import pair_fixture, runner_fixture, tracker_fixture  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db


def test_pages_need_a_login(client):
    for url in ("/triggers/", "/bulk/"):
        assert client.get(url).status_code == 302


def test_create_edit_disable_enable_and_delete_a_trigger(admin_client, tracker, pair, runner):
    left, _ = pair
    tracker.seed(summary="Hit", fields={"priority": "1"})
    r = admin_client.post(
        "/triggers/",
        {"entity_type": "incident", "query": "priorty=1", "connection": left.pk, "active": "on"},
    )
    assert r.status_code == 400 and "no field &#x27;priorty&#x27;" in r.content.decode()
    r = admin_client.post(
        "/triggers/",
        {"entity_type": "incident", "query": "priority=1", "connection": left.pk, "active": "on"},
        follow=True,
    )
    trigger = Trigger.objects.get()
    assert "1 incident match it now" in r.content.decode()
    assert admin_client.get(f"/triggers/{trigger.pk}/preview/").content.decode().count("INC") == 1
    admin_client.post(
        f"/triggers/{trigger.pk}/",
        {"entity_type": "incident", "query": "priority=2", "connection": left.pk, "notes": "P2"},
    )
    trigger.refresh_from_db()
    assert (trigger.query, trigger.notes, trigger.active, trigger.last_count) == (
        "priority=2",
        "P2",
        False,
        0,
    )
    admin_client.post(f"/triggers/{trigger.pk}/active/", {"active": "1"})
    trigger.refresh_from_db()
    assert trigger.active
    admin_client.post(f"/triggers/{trigger.pk}/delete/")
    assert not Trigger.objects.exists()


def test_an_empty_query_asks_to_confirm_with_the_count(admin_client, tracker, pair):
    left, _ = pair
    tracker.seed()
    tracker.seed()
    data = {"entity_type": "incident", "query": "", "connection": left.pk, "active": "on"}
    r = admin_client.post("/triggers/", data)
    assert r.status_code == 400 and "Yes, exalate all 2" in r.content.decode()
    assert not Trigger.objects.exists()
    admin_client.post("/triggers/", {**data, "confirm_all": "true"})
    assert Trigger.objects.get().query == ""


def test_the_progress_page_polls_while_the_run_is_open_and_stops_after(
    admin_client, tracker, pair, runner
):
    left, _ = pair
    tracker.seed(summary="Hit", fields={"priority": "1"})
    trigger = Trigger.objects.create(connection=left, query="priority=1", active=False)
    r = admin_client.post(f"/triggers/{trigger.pk}/bulk-exalate/")
    run = BulkRun.objects.get()
    assert r["Location"] == f"/bulk/runs/{run.pk}/"
    page = admin_client.get(r["Location"]).content.decode()
    assert 'hx-trigger="every 1s"' in page and "<script>" not in page
    runner.run()
    part = admin_client.get(f"/bulk/runs/{run.pk}/progress/").content.decode()
    assert "hx-trigger" not in part and 'value="100"' in part
