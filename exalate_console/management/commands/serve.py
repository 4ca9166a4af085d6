"""Run one console node: migrate, create the first admin, then web, worker and beat together.

``python manage.py serve --port 8000`` starts three processes: gunicorn (the web console
and the node-to-node API), one Celery worker and Celery beat (the scheduler), prints the
URL, and stops all of them on Ctrl-C or SIGTERM. Any of them that dies is started again
after a back-off (``SERVE_RESTART_DELAY`` s, doubling for each crash in a row up to
``SERVE_RESTART_MAX_DELAY`` s) and the crash is logged, so a killed worker or beat does not
take the node down. Production runs the same three parts as separate services (see
docker-compose.yml).
"""

from __future__ import annotations

import os
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from exalate_console.processes import ProcessGroup


class Command(BaseCommand):
    help = "Migrate, ensure an admin exists, then run web + worker + beat until interrupted."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--host", default=os.environ.get("BIND_HOST", "127.0.0.1"))
        parser.add_argument(
            "--web-workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2"))
        )
        parser.add_argument(
            "--no-worker", action="store_true", help="Web only (no Celery worker, no beat)."
        )

    def handle(self, *args, port, host, web_workers, no_worker, **options):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("ensure_admin")
        from connections.selectors import node_identity_get

        identity = node_identity_get()
        env = os.environ.copy()
        # A crashed web, worker or beat process is started again (after a back-off, logged)
        # instead of taking the node down.
        group = ProcessGroup(
            grace=15,
            restarts=None,
            backoff=settings.SERVE_RESTART_DELAY,
            max_backoff=settings.SERVE_RESTART_MAX_DELAY,
            log=self._log,
        )
        web = [
            sys.executable,
            "-m",
            "gunicorn",
            "exalate_console.wsgi",
            "--bind",
            f"{host}:{port}",
            "--workers",
            str(web_workers),
            "--threads",
            "4",
            "--timeout",
            "120",
            "--graceful-timeout",
            "5",
            "--access-logfile",
            "-" if settings.DEBUG else "/dev/null",
        ]
        group.start("web (gunicorn)", web, env=env)
        if not no_worker:
            worker = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "exalate_console",
                "worker",
                "--loglevel",
                settings.LOG_LEVEL.upper(),
                "--concurrency",
                str(settings.CELERY_WORKER_CONCURRENCY),
                "--hostname",
                f"node-{port}@%h",
            ]
            group.start("worker (celery)", worker, env=env)
            beat = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "exalate_console",
                "beat",
                "--loglevel",
                settings.LOG_LEVEL.upper(),
                "--schedule",
                settings.CELERY_BEAT_SCHEDULE_FILENAME,
            ]
            group.start("beat (celery)", beat, env=env)
        url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}/"
        self.stdout.write(
            self.style.SUCCESS(f"Exalate console node {identity.name!r} is running at {url}")
        )
        if identity.public_url and identity.public_url.rstrip("/") + "/" != url:
            self.stdout.write(f"Its Exalate URL (given to other nodes) is {identity.public_url}")
        self.stdout.write("Press Ctrl-C to stop.")
        sys.stdout.flush()
        exit_code = group.run_until_signal()
        self.stdout.write("Stopped.")
        sys.exit(exit_code)

    def _log(self, message: str) -> None:
        """Supervisor messages (a crash, a restart) on stderr, timestamped like the children's."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self.stderr.write(f"{stamp} serve: {message}")
        self.stderr.flush()
