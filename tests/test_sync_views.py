"""Sync pages and API in one process: login, CSRF, forms, the live status part, Errors, webhook."""

from __future__ import annotations

import pytest

from connections.models import Connection, NodeSettings
from connections.selectors import node_settings_get
from sync import nudge, services
from sync.models import ExalateRequest, SyncError, SyncEvent, Twin
from tests.sync_fakes import FakeAdapter, plug
from tests.test_sync_engine import Runner

pytestmark = pytest.mark.django_db


@pytest.fixture
def engine(settings, monkeypatch):
    fake, runner = plug(settings, monkeypatch, FakeAdapter()), Runner()
    monkeypatch.setattr(nudge, "nudge", runner.enqueue)
    return fake, runner


@pytest.fixture
def pair(db):
    a = Connection.objects.create(name="Left", type="local", status="active", secret="s" * 32)
    b = Connection.objects.create(name="Right", type="local", status="active", secret="s" * 32)
    a.local_peer, b.local_peer = b, a
    a.save()
    b.save()
    return a, b


def test_sync_pages_need_login(client, pair):
    twin = Twin.objects.create(connection=pair[0], local_entity_id="a" * 32)
    for url in ["/entity-sync-status/", "/errors/", "/sync-queue/", f"/twins/{twin.pk}/"]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url
    response = client.post(f"/connections/{pair[0].pk}/exalate/", {"number": "INC0010001"})
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert not ExalateRequest.objects.exists()


def test_exalate_form_needs_csrf(admin_user, pair):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(f"/connections/{pair[0].pk}/exalate/", {"number": "INC0010001"})
    assert response.status_code == 403
    assert not ExalateRequest.objects.exists()


def test_exalate_from_connection_page_goes_to_a_status_page_that_ends_synchronized(
    admin_client, engine, pair
):
    fake, runner = engine
    source = fake.seed(comments=[("Beth Anglin", "<script>alert(1)</script>")])
    response = admin_client.post(f"/connections/{pair[0].pk}/exalate/", {"number": source["key"]})
    request = ExalateRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/exalate/{request.pk}/"
    page = admin_client.get(response["Location"]).content.decode()
    assert "Queued" in page and 'hx-trigger="every 1s"' in page
    runner.run()
    part = admin_client.get(f"/exalate/{request.pk}/status/").content.decode()
    twin = Twin.objects.get(connection=pair[0])
    assert "Synchronized" in part
    assert (
        f'<a class="twin-local" href="{twin.local_url}"' in part and f">{source['key']}</a>" in part
    )
    assert (
        f'<a class="twin-remote" href="{twin.remote_url}"' in part
        and f">{twin.remote_key}</a>" in part
    )
    detail = admin_client.get(f"/twins/{twin.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in detail and "&lt;script&gt;" in detail


def test_bad_number_is_refused_with_a_message_and_nothing_queued(admin_client, pair):
    response = admin_client.post(f"/connections/{pair[0].pk}/exalate/", {"number": "INC 1'; --"})
    assert response.status_code == 400
    assert "Enter an incident number" in response.content.decode()
    assert not ExalateRequest.objects.exists()


def test_entity_sync_status_exalates_and_looks_up(admin_client, engine, pair):
    fake, runner = engine
    source = fake.seed()
    response = admin_client.post(
        "/entity-sync-status/exalate/", {"connection": pair[0].pk, "number": source["key"]}
    )
    assert response.status_code == 302
    runner.run()
    page = admin_client.get("/entity-sync-status/", {"q": source["key"]}).content.decode()
    assert source["key"] in page and "Synchronized" in page
    assert "/api/webhooks/servicenow/" in page


def test_errors_page_retries_an_entity_error(admin_client, engine, pair):
    fake, runner = engine
    from trackers.errors import TrackerBadRequest

    source = fake.seed()
    fake.fail_next("create_entity", TrackerBadRequest("Data policy: caller is mandatory"))
    services.entity_exalate(connection=pair[0], key=source["key"])
    runner.run()
    # Shown on both nodes: where it failed, and (reported back) where the change came from.
    assert SyncError.objects.filter(resolved_at__isnull=True, remote=True).count() == 1
    error = SyncError.objects.get(resolved_at__isnull=True, remote=False)
    page = admin_client.get("/errors/").content.decode()
    assert "Data policy: caller is mandatory" in page and f"/errors/{error.pk}/retry/" in page
    twin_page = admin_client.get(f"/twins/{error.twin_id}/").content.decode()
    assert "Retry" in twin_page and "Error" in twin_page
    response = admin_client.post(f"/errors/{error.pk}/retry/")
    assert response.status_code == 302
    runner.run()
    assert not SyncError.objects.filter(resolved_at__isnull=True).exists()
    assert set(Twin.objects.values_list("status", flat=True)) == {"synchronized"}


def test_queue_page_lists_events_with_attempts_and_errors(admin_client, engine, pair):
    fake, runner = engine
    services.entity_exalate(connection=pair[0], key=fake.seed()["key"])
    runner.run()
    SyncEvent.objects.filter(direction="in").update(
        status="queued", attempts=3, last_error="HTTP 503 from the instance"
    )
    page = admin_client.get("/sync-queue/", {"direction": "in"}).content.decode()
    assert "HTTP 503 from the instance" in page and "Incoming sync" in page


def test_webhook_needs_the_node_token_and_marks_the_twin(client, engine, pair):
    fake, runner = engine
    source = fake.seed()
    services.entity_exalate(connection=pair[0], key=source["key"])
    runner.run()
    token = node_settings_get().webhook_token
    assert (
        client.post(
            "/api/webhooks/servicenow/", {"sys_id": source["id"]}, content_type="application/json"
        ).status_code
        == 401
    )
    wrong = client.post(
        "/api/webhooks/servicenow/",
        {"sys_id": source["id"]},
        content_type="application/json",
        headers={"Authorization": "Bearer nope"},
    )
    assert wrong.status_code == 401
    fake.human_comment(source["id"], "news")
    ok = client.post(
        "/api/webhooks/servicenow/",
        {"sys_id": source["id"]},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert ok.status_code == 202 and ok.json() == {"twins": 1}
    runner.run()
    mirror = next(i for i in fake.incidents.values() if i["id"] != source["id"])
    assert any("news" in c["body"] for c in mirror["comments"])
    assert NodeSettings.objects.count() == 1


def test_admin_api_exalates_and_reports_both_links(admin_client, engine, pair):
    fake, runner = engine
    source = fake.seed()
    response = admin_client.post(
        f"/api/connections/{pair[0].pk}/exalate/",
        {"number": source["key"]},
        content_type="application/json",
    )
    assert response.status_code == 202
    runner.run()
    data = admin_client.get(f"/api/exalate-requests/{response.json()['id']}/").json()
    assert data["status"] == "done" and data["twin"]["status"] == "synchronized"
    assert data["twin"]["local"]["key"] == source["key"] and data["twin"]["remote"]["url"]
    bad = admin_client.post(
        f"/api/connections/{pair[0].pk}/exalate/", {"number": ""}, content_type="application/json"
    )
    assert bad.status_code == 400
    assert admin_client.get("/api/errors/").json() == []


def test_node_api_refuses_requests_without_a_node_token(client, pair):
    response = client.post(
        "/api/node/v1/sync/messages",
        {"protocol": 1, "messages": []},
        content_type="application/json",
    )
    assert response.status_code == 401
    assert client.get(f"/api/node/v1/sync/attachments/{'a' * 32}/{'b' * 32}").status_code == 401


def test_basic_rules_tag_renders_the_read_only_rules():
    from django.template import Context, Template

    html = Template("{% load sync_tags %}{% basic_rules %}").render(Context({}))
    for word in [
        "Summary",
        "Description",
        "Comments",
        "Attachments",
        "Type",
        "cannot be edited",
        "An incident stays an incident",  # issue 12: said plainly on a ServiceNow node
    ]:
        assert word in html
