"""Login throttling (django-axes): wrong passwords lock a user name out for a while from that address."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def quick_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def log_in(client, password: str, username: str = "ada"):
    return client.post("/login/", {"username": username, "password": password})


def test_after_too_many_wrong_passwords_the_right_one_is_refused_for_a_while(
    client, admin_user, settings
):
    settings.AXES_COOLOFF_TIME = timedelta(seconds=2)
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = log_in(client, "wrong-password")
        assert response.status_code == 200
        assert "do not match" in response.content.decode()
    locked = log_in(client, "wrong-password")  # the limit is reached on this one
    assert locked.status_code == 429

    refused = log_in(client, "ada-password-123")
    page = refused.content.decode()
    assert refused.status_code == 429
    assert "Too many wrong passwords for ada" in page and "refused for" in page
    assert "_auth_user_id" not in client.session
    assert client.get("/getting-started/").status_code == 302  # still not logged in

    # Another user name from the same address is not locked out.
    assert log_in(client, "wrong", username="grace").status_code == 200

    time.sleep(2.2)
    assert log_in(client, "ada-password-123")["Location"] == "/"  # the landing page
    assert client.get("/getting-started/").status_code == 200


def test_a_right_password_before_the_limit_resets_the_count(client, admin_user, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(client, "wrong-password")
    assert log_in(client, "ada-password-123").status_code == 302
    client.post("/logout/")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert log_in(client, "wrong-password").status_code == 200
    assert log_in(client, "ada-password-123").status_code == 302
