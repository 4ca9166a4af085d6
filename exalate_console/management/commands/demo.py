"""Run the whole main job on one machine: two ServiceNow sandboxes, a Jira sandbox, three nodes.

``python manage.py demo`` (``make demo``) starts, all on 127.0.0.1:

* sandbox A on DEMO_SANDBOX_A_PORT (8101) and sandbox B on DEMO_SANDBOX_B_PORT (8102),
  both seeded with realistic incidents (login admin / admin);
* a Jira Cloud sandbox on DEMO_JIRA_PORT (8201), seeded with projects TEST, OPS and SUP
  (API user sync-bot@example.com / sandbox-token);
* node A on DEMO_NODE_A_PORT (8001) against sandbox A, node B on DEMO_NODE_B_PORT (8002)
  against sandbox B, node C on DEMO_NODE_C_PORT (8003) against the Jira sandbox, each with
  its own SQLite database, file-system broker and worker under ``var/demo/`` (login admin /
  DEMO_ADMIN_PASSWORD, default ``admin-demo``).

It prints the URLs and logins and stops everything on Ctrl-C. Data persists across
runs; ``--reset`` starts from scratch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from exalate_console.processes import ProcessGroup

#: The Jira sandbox's integration account (its defaults; see jira_adapter.sandbox.seed).
JIRA_EMAIL, JIRA_TOKEN = "sync-bot@example.com", "sandbox-token"


class Command(BaseCommand):
    help = "Start two ServiceNow sandboxes, a Jira sandbox and three console nodes configured against them."

    def add_arguments(self, parser):
        parser.add_argument("--reset", action="store_true", help="Delete var/demo first.")

    def handle(self, *args, reset: bool, **options):
        root = settings.VAR_DIR / "demo"
        if reset and root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True, exist_ok=True)
        ports = {
            "sandbox_a": int(os.environ.get("DEMO_SANDBOX_A_PORT", "8101")),
            "sandbox_b": int(os.environ.get("DEMO_SANDBOX_B_PORT", "8102")),
            "node_a": int(os.environ.get("DEMO_NODE_A_PORT", "8001")),
            "node_b": int(os.environ.get("DEMO_NODE_B_PORT", "8002")),
            "jira": int(os.environ.get("DEMO_JIRA_PORT", "8201")),
            "node_c": int(os.environ.get("DEMO_NODE_C_PORT", "8003")),
        }
        admin_password = os.environ.get("DEMO_ADMIN_PASSWORD", "admin-demo")
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        group = ProcessGroup(grace=30, own_sessions=True, log=self.stderr.write)
        base_env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SERVICENOW_", "JIRA_", "DJANGO_SUPERUSER_", "NODE_"))
            and k not in ("DATABASE_URL", "CELERY_BROKER_URL", "EXALATE_VAR_DIR")
        }
        try:
            for side in ("a", "b"):
                port = ports[f"sandbox_{side}"]
                group.start(
                    f"sandbox {side.upper()}",
                    [
                        *manage,
                        "servicenow_sandbox",
                        "--port",
                        str(port),
                        "--db",
                        str(root / f"sandbox-{side}.sqlite3"),
                        "--seed",
                        "demo",
                        "--user",
                        "admin",
                        "--password",
                        "admin",
                    ],
                    env={**base_env, "EXALATE_VAR_DIR": str(root / f"sandbox-{side}")},
                )
            group.start(
                "Jira sandbox",
                [*manage, "jira_sandbox", "--port", str(ports["jira"]), "--flavour", "cloud",
                 "--db", str(root / "jira-sandbox.sqlite3"), "--seed", "demo"],
                env={**base_env, "EXALATE_VAR_DIR": str(root / "jira-sandbox")},
            )  # fmt: skip
            trackers = {
                side: {
                    "NODE_NAME": f"ServiceNow {side.upper()}",
                    "SERVICENOW_INSTANCE_URL": f"http://127.0.0.1:{ports[f'sandbox_{side}']}",
                    "SERVICENOW_USERNAME": "admin",
                    "SERVICENOW_PASSWORD": "admin",
                }
                for side in ("a", "b")
            }
            trackers["c"] = {
                "NODE_NAME": "Jira C",
                "JIRA_INSTANCE_URL": f"http://127.0.0.1:{ports['jira']}",
                "JIRA_AUTH": "cloud",
                "JIRA_EMAIL": JIRA_EMAIL,
                "JIRA_API_TOKEN": JIRA_TOKEN,
            }
            for side in ("a", "b", "c"):
                port = ports[f"node_{side}"]
                var = root / f"node-{side}"
                env = {
                    **base_env,
                    **trackers[side],
                    "EXALATE_VAR_DIR": str(var),
                    "NODE_PUBLIC_URL": f"http://127.0.0.1:{port}",
                    "DJANGO_SUPERUSER_USERNAME": "admin",
                    "DJANGO_SUPERUSER_PASSWORD": admin_password,
                    "SESSION_COOKIE_NAME": f"exalate_sessionid_{side}",
                    "CSRF_COOKIE_NAME": f"exalate_csrftoken_{side}",
                    "ALLOWED_HOSTS": "localhost,127.0.0.1",
                    "CHANGE_POLL_INTERVAL": os.environ.get("CHANGE_POLL_INTERVAL", "5"),
                    "SYNC_POLL_INTERVAL": os.environ.get("SYNC_POLL_INTERVAL", "5"),
                    "WEB_CONCURRENCY": "1",
                    "CELERY_WORKER_CONCURRENCY": "2",
                }
                group.start(
                    f"node {side.upper()}",
                    [*manage, "serve", "--port", str(port)],
                    env=env,
                    stdout=open(var.with_suffix(".log"), "ab"),  # noqa: SIM115 - child keeps it
                    stderr=subprocess.STDOUT,
                )
            for name, port in ports.items():
                path = (
                    "/healthz"
                    if name.startswith("node")
                    else "/sandbox/stats"
                    if name == "jira"
                    else "/api/now/table/incident?sysparm_limit=1"
                )
                if not group.wait_http(f"http://127.0.0.1:{port}{path}", timeout=90):
                    self.stderr.write(f"{name} did not come up on port {port}; see var/demo/*.log")
                    group.stop()
                    sys.exit(1)
        except OSError as exc:
            group.stop()
            self.stderr.write(f"Could not start the demo: {exc}")
            sys.exit(1)

        self.stdout.write(
            self.style.SUCCESS("\nThe demo is running. Open the consoles in your browser:\n")
        )
        for side in ("a", "b"):
            self.stdout.write(
                f"  Node {side.upper()}:    http://127.0.0.1:{ports[f'node_{side}']}/   "
                f"login admin / {admin_password}   (its ServiceNow: sandbox {side.upper()})"
            )
        self.stdout.write(
            f"  Node C:    http://127.0.0.1:{ports['node_c']}/   "
            f"login admin / {admin_password}   (its Jira: the Jira sandbox)"
        )
        for side in ("a", "b"):
            self.stdout.write(
                f"  Sandbox {side.upper()}: http://127.0.0.1:{ports[f'sandbox_{side}']}/   "
                "REST API user admin / admin   (incident list; INC0010001 and up)"
            )
        self.stdout.write(
            f"  Jira:      http://127.0.0.1:{ports['jira']}/   "
            f"REST API user {JIRA_EMAIL} / {JIRA_TOKEN}   (projects TEST, OPS, SUP; TEST-1 and up; API only)"
        )
        self.stdout.write(
            "\nNext: on node A open Connections → Initiate connection, enter node B's URL (or node C's for"
            " ServiceNow ↔ Jira), and follow the README's walkthrough."
            "\nLogs: var/demo/node-a.log, var/demo/node-b.log, var/demo/node-c.log. Press Ctrl-C to stop everything.\n"
        )
        sys.stdout.flush()
        sys.exit(group.run_until_signal())
