"""Create an API token for a user of this node and print it once.

``python manage.py create_api_token admin`` prints a new token (django-rest-knox): only its
hash is stored, so it cannot be shown again; send it as ``Authorization: Token <token>``.
It expires after ``API_TOKEN_TTL_DAYS`` days unless ``--days`` says otherwise (0: never).
``--revoke`` deletes every token of the user instead.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from knox.models import AuthToken
from knox.settings import knox_settings


class Command(BaseCommand):
    help = "Print a new API token for USER (stored hashed, shown once); --revoke deletes them all."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--days", type=int, default=None, help="Days until it expires (0: never)."
        )
        parser.add_argument("--revoke", action="store_true", help="Delete USER's tokens.")

    def handle(self, *args, username, days, revoke, **options):
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist:
            raise CommandError(f"There is no user {username!r} on this node.") from None
        if revoke:
            count, _ = AuthToken.objects.filter(user=user).delete()
            self.stdout.write(f"Deleted {count} API token(s) of {username!r}.")
            return
        if days is not None and days < 0:
            raise CommandError("--days must be 0 (never expires) or more.")
        if days is None:
            expiry = knox_settings.TOKEN_TTL
        else:
            expiry = timedelta(days=days) if days else None
        instance, token = AuthToken.objects.create(user=user, expiry=expiry)
        self.stdout.write(token)
        until = instance.expiry.strftime("%Y-%m-%d %H:%M UTC") if instance.expiry else "never"
        self.stderr.write(
            f"API token for {username!r}: shown once, stored hashed; expires {until}."
        )
