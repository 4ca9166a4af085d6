"""API tokens moved to django-rest-knox (stored hashed): drop the REST framework's clear-text
token table of earlier versions. Tokens are re-created with ``manage.py create_api_token``."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("exalate_console", "0001_heartbeat"),
        ("knox", "0009_extend_authtoken_field"),
    ]

    operations = [
        migrations.RunSQL(
            [
                "DROP TABLE IF EXISTS authtoken_token",
                "DELETE FROM django_migrations WHERE app = 'authtoken'",
            ],
            reverse_sql=migrations.RunSQL.noop,
        )
    ]
