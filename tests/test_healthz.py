"""/healthz reports database, broker, scheduler and worker health without login."""

from datetime import timedelta

import pytest
from django.utils import timezone

from exalate_console.celery import app as celery_app
from exalate_console.heartbeats import BEAT, HeartbeatScheduler, heartbeat_write
from exalate_console.models import Heartbeat

pytestmark = pytest.mark.django_db


@pytest.fixture
def alive():
    """Beat and one worker wrote their heartbeats just now."""
    heartbeat_write(BEAT)
    heartbeat_write("worker:w1@host")


def age(name: str, seconds: float) -> None:
    Heartbeat.objects.filter(name=name).update(at=timezone.now() - timedelta(seconds=seconds))


def test_healthz_answers_ok_without_login(client, alive):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] and body["broker"]["ok"]
    assert body["scheduler"]["ok"] and body["scheduler"]["seconds_since_heartbeat"] < 5
    assert body["workers"]["ok"] and body["workers"]["alive"] == 1


def test_healthz_says_when_the_broker_is_unreachable(client, alive):
    saved = celery_app.conf.broker_url, celery_app.conf.broker_transport
    celery_app.conf.broker_url, celery_app.conf.broker_transport = "redis://127.0.0.1:1/0", None
    try:
        response = client.get("/healthz")
    finally:
        celery_app.conf.broker_url, celery_app.conf.broker_transport = saved
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["broker"]["ok"] is False
    assert "127.0.0.1:1" not in response.content.decode()


def test_a_stale_scheduler_heartbeat_is_a_503(client, alive, settings):
    age(BEAT, settings.HEARTBEAT_STALE + 1)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["scheduler"]["ok"] is False
    assert body["scheduler"]["seconds_since_heartbeat"] > settings.HEARTBEAT_STALE
    assert body["workers"]["ok"] and body["database"]["ok"]


def test_workers_are_ok_while_one_of_them_beats(client, alive, settings):
    heartbeat_write("worker:w2@host")
    age("worker:w2@host", settings.HEARTBEAT_STALE + 1)
    body = client.get("/healthz").json()
    assert body["workers"]["ok"] and body["workers"]["alive"] == 1
    age("worker:w1@host", settings.HEARTBEAT_STALE + 1)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["workers"] == {
        "ok": False,
        "alive": 0,
        "seconds_since_heartbeat": pytest.approx(settings.HEARTBEAT_STALE + 1, abs=1),
    }


def test_no_heartbeat_at_all_is_a_503(client):
    body = client.get("/healthz").json()
    assert body["status"] == "error"
    assert body["scheduler"] == {"ok": False, "seconds_since_heartbeat": None}
    assert body["workers"] == {"ok": False, "alive": 0, "seconds_since_heartbeat": None}


def test_the_beat_scheduler_writes_its_heartbeat_when_it_ticks(tmp_path, settings):
    settings.HEARTBEAT_INTERVAL = 60
    scheduler = HeartbeatScheduler(
        app=celery_app, schedule_filename=str(tmp_path / "schedule"), lazy=True
    )
    scheduler.setup_schedule()
    scheduler.tick()
    first = Heartbeat.objects.get(name=BEAT).at
    scheduler.tick()  # within the interval: no second write
    assert Heartbeat.objects.get(name=BEAT).at == first
    scheduler.close()
