"""API tokens are stored hashed (django-rest-knox) and made with ``manage.py create_api_token``."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from knox.models import AuthToken
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def create_token(*args: str) -> str:
    out, err = StringIO(), StringIO()
    call_command("create_api_token", *args, stdout=out, stderr=err)
    return out.getvalue().strip()


def test_a_token_works_but_is_not_stored_in_clear(admin_user):
    token = create_token("ada")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/connections/").status_code == 200

    stored = AuthToken.objects.get(user=admin_user)
    assert token not in (stored.digest, stored.token_key)
    assert stored.expiry is not None  # API_TOKEN_TTL_DAYS
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            quoted = connection.ops.quote_name(table)
            for column in connection.introspection.get_table_description(cursor, table):
                name = connection.ops.quote_name(column.name)
                cursor.execute(
                    f"SELECT COUNT(*) FROM {quoted} WHERE CAST({name} AS TEXT) = %s", [token]
                )
                assert cursor.fetchone()[0] == 0, (
                    f"the token is stored in clear in {table}.{column.name}"
                )


def test_the_clear_text_token_table_is_gone():
    assert "authtoken_token" not in connection.introspection.table_names()


def test_a_revoked_or_wrong_token_is_refused(admin_user):
    token = create_token("ada", "--days", "0")
    assert AuthToken.objects.get(user=admin_user).expiry is None
    create_token("ada", "--revoke")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/connections/").status_code == 401
    api.credentials(HTTP_AUTHORIZATION="Token " + "x" * 64)
    assert api.get("/api/connections/").status_code == 401


def test_an_unknown_user_is_said_in_words():
    with pytest.raises(CommandError, match="There is no user 'nobody' on this node"):
        create_token("nobody")
