"""Triggers, bulk runs and Bulk Connect through the REST API (token auth), in one process."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from knox.models import AuthToken
from rest_framework.test import APIClient

from sync.models import BulkRun, Trigger
from tests.trigger_fakes import pair_fixture, runner_fixture, tracker_fixture  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(admin_user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user=admin_user)[1]}")
    return client


def test_a_bad_query_is_a_400_naming_the_term_and_nothing_is_saved(api, tracker, pair):
    left, _ = pair
    r = api.post(
        "/api/triggers/", {"connection": str(left.pk), "query": "priorty=1"}, format="json"
    )
    assert r.status_code == 400
    assert "no field 'priorty'" in r.json()["error"] and r.json()["fields"]["query"]
    r = api.post(
        "/api/triggers/", {"connection": str(left.pk), "query": "priority=1^"}, format="json"
    )
    assert r.status_code == 400 and "ends with '^'" in r.json()["error"]
    assert not Trigger.objects.exists()


def test_an_empty_query_needs_confirm_all_and_says_how_many(api, tracker, pair):
    left, _ = pair
    for _ in range(3):
        tracker.seed()
    r = api.post("/api/triggers/", {"connection": str(left.pk), "query": ""}, format="json")
    assert r.status_code == 400 and r.json()["confirm_count"] == 3
    r = api.post(
        "/api/triggers/",
        {"connection": str(left.pk), "query": "", "confirm_all": True, "active": False},
        format="json",
    )
    assert r.status_code == 201 and r.json()["match_count"] == 3


def test_bulk_exalate_through_the_api_reports_progress(api, tracker, pair, runner):
    left, _ = pair
    for i in range(4):
        tracker.seed(summary=f"M{i}", fields={"priority": "1"})
    r = api.post(
        "/api/triggers/",
        {"connection": str(left.pk), "query": "priority=1", "active": False},
        format="json",
    )
    trigger = r.json()
    assert api.get(f"/api/triggers/{trigger['id']}/preview/").json()[0]["key"].startswith("INC")
    r = api.post(f"/api/triggers/{trigger['id']}/bulk-exalate/")
    assert r.status_code == 202
    runner.run()
    run = api.get(f"/api/bulk-runs/{r.json()['id']}/").json()
    assert run["status"] == "done" and run["progress"]["done"] == 4
    assert run["progress"]["percent"] == 100 and run["failures"] == []
    r = api.patch(f"/api/triggers/{trigger['id']}/", {"notes": "Network team"}, format="json")
    assert r.status_code == 200 and r.json()["notes"] == "Network team"
    assert api.delete(f"/api/triggers/{trigger['id']}/").status_code == 204


def test_bulk_connect_upload_preview_and_result_csv(api, tracker, pair, runner):
    left, _ = pair
    known = tracker.seed()
    upload = SimpleUploadedFile(
        "pairs.csv", f"{known['key']},REM1\nINC0077777,REM2\n".encode(), "text/csv"
    )
    r = api.post("/api/bulk-connect/", {"connection": str(left.pk), "file": upload})
    assert r.status_code == 202, r.content
    runner.run()
    run = api.get(f"/api/bulk-runs/{r.json()['id']}/").json()
    assert run["status"] == "preview"
    assert [i["local_key"] for i in run["valid"]] == [known["key"]]
    assert "Unknown local number" in run["bad"][0]["error"]
    csv = api.get(f"/api/bulk-runs/{run['id']}/result.csv")
    assert csv.status_code == 200 and b"line,local number" in csv.content
    bad = SimpleUploadedFile("x.csv", b"\xff\xfe\x00bad", "text/csv")
    r = api.post("/api/bulk-connect/", {"connection": str(left.pk), "file": bad})
    assert r.status_code == 400 and "UTF-8" in r.json()["error"]
    assert BulkRun.objects.count() == 1


def test_the_openapi_schema_lists_triggers_bulk_runs_and_bulk_connect(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    for path in ("/api/triggers/", "/api/bulk-runs/{run_id}/", "/api/bulk-connect/"):
        assert path in schema
