"""The operations pages and their API in one process (issue 12): Entity sync status lookup
and paging, Connect, Unexalate, replicas, Errors (levels, bulk), Sync queue (tabs,
statuses, htmx filters, nonsense), Clean-up tools (CSV), Dashboard (SVG), connection page
(rename, live check, Activate), sidebar, favicon, OpenAPI summaries."""

from __future__ import annotations

import csv
import io

import pytest

from connections.models import Connection
from sync import nudge, services
from sync.models import SyncError, SyncEvent, Twin
from tests.sync_fakes import FakeAdapter, plug
from tests.test_sync_operations import Runner

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


def synced(engine, conn, n=1):
    fake, runner = engine
    sources = []
    for _ in range(n):
        src = fake.seed(comments=[("Beth Anglin", "Hello")])
        services.entity_exalate(connection=conn, key=src["key"])
        sources.append(src)
    runner.run_all()
    return sources


OPERATION_PAGES = ["/dashboard/", "/entity-sync-status/", "/errors/", "/sync-queue/", "/clean-up/"]


@pytest.mark.parametrize("url", OPERATION_PAGES)
def test_operation_pages_need_login(client, pair, url):
    response = client.get(url)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_entity_sync_status_looks_up_by_number_or_sys_id_per_connection(admin_client, engine, pair):
    src = synced(engine, pair[0])[0]
    for q in (src["key"], src["key"].lower(), src["id"]):
        page = admin_client.get("/entity-sync-status/", {"q": q}).content.decode()
        assert 'data-connection="Left"' in page and 'data-status="synchronized"' in page
        # Not twinned on the other connection: Exalate and Connect are offered there.
        assert 'data-connection="Right"' in page and f"Exalate {q}" in page


def test_recent_twins_are_paged_by_keyset_and_searchable(admin_client, engine, pair):
    sources = synced(engine, pair[0], n=30)
    page = admin_client.get("/entity-sync-status/").content.decode()
    assert "Older →" in page
    newest = Twin.objects.filter(connection=pair[0]).order_by("-id")
    marker = newest[24].pk
    older = admin_client.get("/entity-sync-status/", {"before": marker}).content.decode()
    assert newest[25].local_key in older and newest[0].local_key not in older
    part = admin_client.get(
        "/entity-sync-status/", {"part": "twins", "q": sources[3]["key"]}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert sources[3]["key"] in part and sources[4]["key"] not in part and "<html" not in part
    bad = admin_client.get("/entity-sync-status/", {"before": "x'; drop"}).content.decode()
    assert "The page marker is not valid" in bad


def test_connect_page_links_two_existing_incidents_or_says_why_not(admin_client, engine, pair):
    fake, runner = engine
    mine, theirs = fake.seed(summary="Mine"), fake.seed(summary="Theirs")
    response = admin_client.post(
        "/entity-sync-status/connect/",
        {"connection": pair[0].pk, "local_key": mine["key"], "remote_key": "INC0999999"},
    )
    assert response.status_code == 400
    assert "There is no incident INC0999999 in the remote node" in response.content.decode()
    assert not Twin.objects.exists()
    response = admin_client.post(
        "/entity-sync-status/connect/",
        {"connection": pair[0].pk, "local_key": mine["key"], "remote_key": theirs["key"]},
    )
    assert response.status_code == 302
    runner.run_all()
    assert fake.incidents[theirs["id"]]["summary"] == "Mine" and len(fake.incidents) == 2
    again = admin_client.post(
        "/entity-sync-status/connect/",
        {"connection": pair[0].pk, "local_key": mine["key"], "remote_key": theirs["key"]},
    )
    assert "already twinned" in again.content.decode()


def test_twin_page_unexalates_and_shows_both_replicas_escaped(admin_client, engine, pair):
    fake, runner = engine
    src = fake.seed(summary="<script>alert(1)</script>")
    services.entity_exalate(connection=pair[0], key=src["key"])
    runner.run_all()
    twin = Twin.objects.get(connection=pair[0])
    local = admin_client.get(f"/twins/{twin.pk}/replica/local/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in local and "<script>alert" not in local
    assert '"summary"' in local.replace("&quot;", '"')
    theirs = Twin.objects.get(connection=pair[1])
    remote = admin_client.get(f"/twins/{theirs.pk}/replica/remote/").content.decode()
    assert "&lt;script&gt;" in remote
    assert admin_client.get(f"/twins/{twin.pk}/replica/sideways/").status_code == 404
    response = admin_client.post(f"/twins/{twin.pk}/unexalate/", {"at_once": "on"}, follow=True)
    assert "is unexalated" in response.content.decode()
    runner.run_all()
    services.unexalates_sweep()
    assert not Twin.objects.exists()


def test_deleted_mirror_is_said_in_words_and_exalate_again_makes_a_new_mirror(
    admin_client, engine, pair
):
    fake, runner = engine
    src = synced(engine, pair[0])[0]
    twin = Twin.objects.get(connection=pair[0])
    fake.delete(twin.remote_entity_id)
    fake.human_comment(src["id"], "After")
    services.twin_request_scan(twin_ids=[twin.pk])
    runner.run_all()
    ours = admin_client.get(f"/twins/{twin.pk}/").content.decode()
    assert (
        "The remote incident no longer exists" in ours and "Exalate again as a new mirror" in ours
    )
    theirs = Twin.objects.get(connection=pair[1])
    page = admin_client.get(f"/twins/{theirs.pk}/").content.decode()
    assert "This node's incident no longer exists" in page and "Unexalate" in page
    errors = admin_client.get("/errors/").content.decode()
    assert errors.count("no longer exists") >= 2 and "Reported by the remote node." in errors
    response = admin_client.post(f"/twins/{twin.pk}/exalate-again/")
    assert response.status_code == 302 and "/exalate/" in response["Location"]
    runner.run_all()
    services.unexalates_sweep()
    new = Twin.objects.get(connection=pair[0], local_entity_id=src["id"])
    assert new.status == Twin.Status.SYNCHRONIZED
    mirror = fake.incidents[new.remote_entity_id]
    assert [c["body"] for c in mirror["comments"]] == ["[Beth Anglin] Hello", "[Beth Anglin] After"]


def test_errors_page_has_three_levels_and_resolves_many_at_once(admin_client, engine, pair):
    fake, runner = engine
    services.connection_error_raise(connection=pair[0], message="The instance refused the login")
    services.connection_error_raise(connection=pair[0], message="The instance refused the login")
    SyncError.objects.create(level="node", message="The worker cannot write its temp directory")
    for key in ("INC0990001", "INC0990002"):
        services.entity_exalate(connection=pair[1], key=key)
    runner.run_all()
    page = admin_client.get("/errors/").content.decode()
    assert "Node errors" in page and "The worker cannot write its temp directory" in page
    assert "its outgoing queue is paused" in page  # the connection in Error
    assert "Exalate INC0990001 failed" in page  # a number that does not exist is an error too
    conn_error = SyncError.objects.get(level="connection")
    assert conn_error.occurrences == 2
    ids = list(SyncError.objects.filter(level="entity").values_list("pk", flat=True))
    response = admin_client.post("/errors/bulk/", {"error": ids, "action": "resolve"}, follow=True)
    assert "2 error(s) resolved" in response.content.decode()
    assert (
        admin_client.post("/errors/bulk/", {"action": "resolve"}, follow=True)
        .content.decode()
        .count("Select at least one error first")
        == 1
    )
    admin_client.post("/errors/bulk/", {"error": [conn_error.pk], "action": "retry"})
    pair[0].refresh_from_db()
    assert pair[0].status == "active"


def test_sync_queue_has_four_tabs_statuses_in_words_and_no_acknowledgements(
    admin_client, engine, pair
):
    synced(engine, pair[0])
    SyncEvent.objects.filter(direction="out", kind="replica").update(
        status="queued", attempts=2, last_error="HTTP 503 from the remote node"
    )
    page = admin_client.get("/sync-queue/").content.decode()
    for tab in ("Outgoing sync", "Incoming sync", "Outgoing attachments", "Incoming attachments"):
        assert tab in page
    assert "HTTP 503 from the remote node" in page and "Acknowledgement" not in page
    done = admin_client.get("/sync-queue/", {"tab": "incoming", "status": "done"}).content.decode()
    assert 'data-status="done"' in done and "Acknowledgement" not in done
    part = admin_client.get(
        "/sync-queue/",
        {"tab": "outgoing", "status": "failed"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="queue-results",
    ).content.decode()
    assert "<html" not in part and "Nothing here for these filters" in part


def test_sync_queue_says_what_is_wrong_with_nonsense_filters(admin_client, engine, pair):
    page = admin_client.get(
        "/sync-queue/",
        {
            "tab": "sideways",
            "status": "purple",
            "connection": "not-a-uuid",
            "before": "-1",
            "key": "x" * 99,
        },
    ).content.decode()
    for words in (
        "There is no tab",
        "is not a status",
        "That connection does not exist",
        "The page marker is not valid",
        "A key has at most 64 characters",
    ):
        assert words in page
    api = admin_client.get("/api/sync-queue/", {"status": "purple"})
    assert api.status_code == 400 and "is not a status" in api.json()["error"]


def test_sync_queue_pages_by_keyset(admin_client, engine, pair):
    synced(engine, pair[0])
    twin = Twin.objects.get(connection=pair[0])
    SyncEvent.objects.bulk_create(
        [
            SyncEvent(connection=pair[0], twin=twin, direction="out", status="queued")
            for _ in range(120)
        ]
    )
    first = admin_client.get("/api/sync-queue/").json()
    assert len(first["results"]) == 50 and first["next_before"]
    second = admin_client.get("/api/sync-queue/", {"before": first["next_before"]}).json()
    assert second["results"][0]["id"] < first["results"][-1]["id"]
    assert {r["status"] for r in first["results"]} == {"queued"}
    assert first["results"][0]["next_attempt_at"] is None  # nothing planned for a first attempt


def test_cleanup_downloads_the_mapping_then_unexalates_a_connection(admin_client, engine, pair):
    sources = synced(engine, pair[0], n=3)
    response = admin_client.get(f"/clean-up/{pair[0].pk}/mapping.csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][0] == "local_number" and {r[0] for r in rows[1:]} == {s["key"] for s in sources}
    Twin.objects.filter(connection=pair[1]).update(local_key="=HYPERLINK(1)")
    theirs = b"".join(admin_client.get(f"/clean-up/{pair[1].pk}/mapping.csv").streaming_content)
    assert b"'=HYPERLINK(1)" in theirs  # no formula for a spreadsheet
    wrong = admin_client.post(
        f"/clean-up/{pair[0].pk}/unexalate-all/", {"confirm": "nope"}, follow=True
    )
    assert "to unexalate all its incidents" in wrong.content.decode()
    done = admin_client.post(
        f"/clean-up/{pair[0].pk}/unexalate-all/", {"confirm": "Left"}, follow=True
    )
    assert "3 incident(s) unexalated on Left" in done.content.decode()
    engine[1].run_all()
    services.unexalates_sweep()
    empty = admin_client.get(f"/clean-up/{pair[0].pk}/mapping.csv", follow=True)
    assert "syncs no incident: there is no mapping to download" in empty.content.decode()


def test_cleanup_unexalates_one_incident(admin_client, engine, pair):
    src = synced(engine, pair[0])[0]
    bad = admin_client.post(
        "/clean-up/unexalate/", {"connection": pair[1].pk, "number": src["key"]}
    )
    assert bad.status_code == 400 and "is not exalated on Right" in bad.content.decode()
    ok = admin_client.post(
        "/clean-up/unexalate/", {"connection": pair[0].pk, "number": src["key"]}, follow=True
    )
    assert f"{src['key']} is unexalated on Left" in ok.content.decode()


def test_dashboard_draws_the_activity_chart_as_svg_and_is_the_landing_page(
    admin_client, engine, pair
):
    synced(engine, pair[0], n=2)
    assert admin_client.get("/")["Location"] == "/dashboard/"
    page = admin_client.get("/dashboard/").content.decode()
    assert '<svg class="chart" id="activity-chart"' in page and "<rect" in page
    assert "incidents under sync" in page and "changes waiting" in page
    for period in ("week", "month"):
        assert admin_client.get("/dashboard/", {"period": period}).status_code == 200
    assert (
        "is not a period"
        in admin_client.get("/dashboard/", {"period": "x"}, follow=True).content.decode()
    )
    api = admin_client.get("/api/dashboard/").json()
    assert api["incidents_total"] == 4 and len(api["activity"]) == 14


def test_dashboard_without_connections_sends_to_getting_started(admin_client):
    assert admin_client.get("/dashboard/")["Location"] == "/getting-started/"


def test_connection_page_renames_checks_the_remote_and_activates_with_held_changes(
    admin_client, engine, pair
):
    page = admin_client.get(f"/connections/{pair[0].pk}/").content.decode()
    assert "Deactivate" in page and "Rename and describe" in page and "remote-check" in page
    admin_client.post(
        f"/connections/{pair[0].pk}/rename/", {"name": "Support ↔ Dev", "description": "Tier 2"}
    )
    pair[0].refresh_from_db()
    assert pair[0].name == "Support ↔ Dev"
    assert "Tier 2" in admin_client.get(f"/connections/{pair[0].pk}/").content.decode()
    empty = admin_client.post(f"/connections/{pair[0].pk}/rename/", {"name": " "}, follow=True)
    assert (
        "This field is required" in empty.content.decode()
        or "needs a name" in empty.content.decode()
    )
    check = admin_client.get(f"/connections/{pair[0].pk}/check/").content.decode()
    assert "Both ends are on this node." in check
    response = admin_client.post(
        f"/connections/{pair[0].pk}/deactivate/", {"next": f"/connections/{pair[0].pk}/"}
    )
    assert response["Location"] == f"/connections/{pair[0].pk}/"
    response = admin_client.post(f"/connections/{pair[0].pk}/activate/", {"next": "//evil.example"})
    assert response["Location"] == "/connections/"


def test_sidebar_highlights_the_section_on_detail_pages_and_a_favicon_is_linked(
    admin_client, engine, pair
):
    synced(engine, pair[0])
    twin = Twin.objects.get(connection=pair[0])
    page = admin_client.get(f"/twins/{twin.pk}/").content.decode()
    assert '<a href="/entity-sync-status/" aria-current="true">' in page
    detail = admin_client.get(f"/connections/{pair[0].pk}/").content.decode()
    assert '<a href="/connections/" aria-current="true">' in detail
    settings_page = admin_client.get("/connections/settings/").content.decode()
    assert '<a href="/connections/settings/" aria-current="page">' in settings_page
    assert '<a href="/connections/" aria-current' not in settings_page
    assert 'rel="icon" href="/static/favicon.svg"' in page


def test_basic_rules_say_that_incidents_stay_incidents(admin_client, pair, engine):
    page = admin_client.get(f"/connections/{pair[0].pk}/").content.decode()
    assert "An incident stays an incident" in page


def test_every_api_operation_has_a_summary(admin_client):
    schema = admin_client.get("/api/schema/", {"format": "json"}).json()
    missing = [
        f"{m.upper()} {p}"
        for p, item in schema["paths"].items()
        for m, op in item.items()
        if isinstance(op, dict) and not op.get("summary")
    ]
    assert not missing
    for path in (
        "/api/twins/connect/",
        "/api/twins/{twin_id}/unexalate/",
        "/api/sync-queue/",
        "/api/errors/resolve/",
        "/api/dashboard/",
        "/api/node/v1/sync/connect",
    ):
        assert path in schema["paths"]


def test_api_connect_unexalate_and_resolve(admin_client, engine, pair):
    fake, runner = engine
    mine, theirs = fake.seed(), fake.seed()
    bad = admin_client.post(
        "/api/twins/connect/",
        {"connection": str(pair[0].pk), "local_key": "INC0999999", "remote_key": theirs["key"]},
        content_type="application/json",
    )
    assert bad.status_code == 400 and "There is no incident INC0999999" in bad.json()["error"]
    ok = admin_client.post(
        "/api/twins/connect/",
        {"connection": str(pair[0].pk), "local_key": mine["key"], "remote_key": theirs["key"]},
        content_type="application/json",
    )
    assert ok.status_code == 201
    runner.run_all()
    twin_id = ok.json()["id"]
    assert admin_client.get(f"/api/twins/{twin_id}/replicas/").json()["local"]["summary"]
    lookup = admin_client.get("/api/twins/lookup/", {"q": mine["key"]}).json()
    assert [r["connection_name"] for r in lookup if r["twin"]] == ["Left"]
    gone = admin_client.post(
        f"/api/twins/{twin_id}/unexalate/", {"at_once": True}, content_type="application/json"
    )
    assert gone.status_code == 202 and gone.json()["ended"] is True
    assert (
        admin_client.post(
            "/api/errors/resolve/", {"ids": []}, content_type="application/json"
        ).status_code
        == 400
    )


def test_destination_check_error_links_to_general_settings_only_when_this_node_must_fix_it(rf):
    from django.template.loader import render_to_string

    def render(message, field="destination_url"):
        request = rf.get("/connections/initiate/")
        return render_to_string(
            "connections/_initiate_dialog.html",
            {"step": "destination", "data": {}, "error": {"field": field, "message": message}},
            request=request,
        )

    other = render(
        "x is not an Exalate console node. Enter the destination's Exalate URL, shown in General settings on that node."
    )
    assert "/connections/settings/" not in other
    mine = render(
        "Set this node's Exalate URL in General settings, or let the other node initiate.", "no_url"
    )
    assert (
        "Open this node&#x27;s General settings" in mine
        or "Open this node's General settings" in mine
    )


def _signed_post(client, connection, remote_id, path, payload):
    import json

    from tests.test_node_auth import remote_token

    body = json.dumps(payload).encode()
    return client.post(
        path,
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {remote_token(connection, remote_id, body)}",
    )


def test_node_api_connect_and_check_answer_the_signed_remote_node(client, engine):
    import uuid

    from connections.invitations import new_secret

    fake, _ = engine
    remote_id = str(uuid.uuid4())
    conn = Connection.objects.create(
        name="From A",
        type="public",
        status="active",
        remote_node_id=remote_id,
        remote_url="http://127.0.0.1:9",
        secret=new_secret(),
    )
    mine = fake.seed()
    asking = {"id": "a" * 32, "key": "INC0012345", "url": "https://a.example/incident"}
    check = _signed_post(client, conn, remote_id, "/api/node/v1/sync/check", {"protocol": 1})
    assert check.status_code == 200 and check.json() == {
        "connection": str(conn.pk),
        "name": "From A",
        "status": "active",
    }
    missing = _signed_post(
        client,
        conn,
        remote_id,
        "/api/node/v1/sync/connect",
        {"protocol": 1, "key": "INC0999999", "entity": asking},
    )
    assert (
        missing.status_code == 404 and "There is no incident INC0999999" in missing.json()["error"]
    )
    ok = _signed_post(
        client,
        conn,
        remote_id,
        "/api/node/v1/sync/connect",
        {"protocol": 1, "key": mine["key"], "entity": asking},
    )
    assert ok.status_code == 200 and ok.json()["entity"]["id"] == mine["id"]
    again = _signed_post(
        client,
        conn,
        remote_id,
        "/api/node/v1/sync/connect",
        {"protocol": 1, "key": mine["key"], "entity": asking},
    )
    assert again.status_code == 200  # the same pair again: idempotent
    other = _signed_post(
        client,
        conn,
        remote_id,
        "/api/node/v1/sync/connect",
        {"protocol": 1, "key": mine["key"], "entity": {**asking, "id": "b" * 32}},
    )
    assert other.status_code == 409 and "already twinned" in other.json()["error"]
    assert Twin.objects.filter(connection=conn).count() == 1
    unsigned = client.post(
        "/api/node/v1/sync/connect", {"key": "x"}, content_type="application/json"
    )
    assert unsigned.status_code == 401
