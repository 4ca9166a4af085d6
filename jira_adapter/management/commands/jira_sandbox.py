"""``python manage.py jira_sandbox``: run a local Jira site (Cloud REST v3 or Data Center REST v2).

Example: ``python manage.py jira_sandbox --port 8201 --seed demo`` then
``curl -u sync-bot@example.com:sandbox-token http://127.0.0.1:8201/rest/api/3/myself``.
What it serves and its control endpoints are described in ``jira_adapter.sandbox``.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jira_adapter.sandbox.cli import add_arguments, check, serve


class Command(BaseCommand):
    help = "Run a local Jira sandbox (issues, comments, attachments, JQL search, webhooks) backed by a SQLite file."

    def add_arguments(self, parser):
        add_arguments(parser)

    def handle(self, *args, **opts):
        if problem := check(opts):
            raise CommandError(problem)
        db = Path(opts["db"] or Path(settings.VAR_DIR) / "jira_sandbox.sqlite3").resolve()

        def write(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        serve(opts, db, write)
