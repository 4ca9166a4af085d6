"""Create the first admin on first run.

With DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD set, that admin is created
(or, if it exists, left as it is). Otherwise, when no superuser exists yet, an ``admin``
user is created with a generated password that is printed once and never stored in
clear. Calling it again does nothing.
"""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the first admin user if there is none (prints a generated password once)."

    def handle(self, *args, **options):
        User = get_user_model()
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "").strip()
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "")
        if username and password:
            if not User.objects.filter(username=username).exists():
                User.objects.create_superuser(username=username, password=password, email="")
                self.stdout.write(
                    f"Created admin user {username!r} from DJANGO_SUPERUSER_USERNAME."
                )
            return
        if User.objects.filter(is_superuser=True).exists():
            return
        username = username or "admin"
        generated = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, password=generated, email="")
        self.stdout.write(
            self.style.WARNING(
                f"Created admin user {username!r} with password {generated}\n"
                "This password is shown only once: keep it, or change it after logging in."
            )
        )
