"""/healthz reports database and broker reachability without login."""

import pytest

from exalate_console.celery import app as celery_app


@pytest.mark.django_db
def test_healthz_answers_ok_without_login(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] and body["broker"]["ok"]


@pytest.mark.django_db
def test_healthz_says_when_the_broker_is_unreachable(client):
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
