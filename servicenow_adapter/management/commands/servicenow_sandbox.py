"""``python manage.py servicenow_sandbox``: run a local ServiceNow sandbox instance.

Example: ``python manage.py servicenow_sandbox --port 8101 --seed demo`` then
``curl -u admin:admin 'http://127.0.0.1:8101/api/now/table/incident?sysparm_limit=1'``.
What it serves and its control endpoints are described in ``servicenow_adapter.sandbox``.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from servicenow_adapter.sandbox.app import SandboxConfig
from servicenow_adapter.sandbox.server import SandboxServer, build_app


class Command(BaseCommand):
    help = (
        "Run a local ServiceNow sandbox (Table, Attachment and OAuth APIs) backed by a SQLite file."
    )

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8101, help="TCP port (default 8101).")
        parser.add_argument(
            "--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1)."
        )
        parser.add_argument(
            "--db", default="", help="SQLite file (default VAR_DIR/servicenow_sandbox.sqlite3)."
        )
        parser.add_argument(
            "--seed", choices=["demo", "none"], default="none", help="Seed data to add once."
        )
        parser.add_argument(
            "--user", default="admin", help="Integration user name (default admin)."
        )
        parser.add_argument(
            "--password", default="admin", help="Integration user's password (default admin)."
        )
        parser.add_argument(
            "--latency-ms", type=float, default=0.0, help="Delay added to every API request."
        )
        parser.add_argument("--oauth-client-id", default="exalate-sandbox")
        parser.add_argument("--oauth-client-secret", default="exalate-sandbox-secret")
        parser.add_argument(
            "--token-lifetime", type=float, default=1799.0, help="Access token lifetime, seconds."
        )
        parser.add_argument(
            "--display-tz", default="America/Los_Angeles", help="Time zone of display values."
        )
        parser.add_argument("--threads", type=int, default=32, help="Request threads (default 32).")
        # Knobs that make the sandbox behave like a less friendly real instance (all also at
        # run time under /sandbox/...; see servicenow_adapter.sandbox and the README).
        parser.add_argument(
            "--freeze-clock",
            action="store_true",
            help="Stop the instance clock on the start second (every write in the same second).",
        )
        parser.add_argument(
            "--hide",
            action="append",
            default=[],
            metavar="TABLE=QUERY",
            help="Hide the rows of TABLE matching the encoded QUERY from --user after paging "
            "(still counted in X-Total-Count), e.g. incident=category=network. Repeatable.",
        )
        parser.add_argument(
            "--hide-journal",
            action="store_true",
            help="--user may not read sys_journal_field: 200 with no rows and X-Total-Count 0.",
        )
        parser.add_argument(
            "--retry-after",
            type=float,
            default=None,
            metavar="SECONDS",
            help="Answer every API request 429 with this Retry-After until /sandbox/faults is cleared.",
        )
        parser.add_argument(
            "--hibernate",
            action="store_true",
            help="Answer every API request with the hibernation page until /sandbox/faults is cleared.",
        )
        parser.add_argument(
            "--fault",
            default="",
            metavar="JSON",
            help='A /sandbox/faults setting applied at start, e.g. \'{"status": 503, "count": 3}\'.',
        )
        parser.add_argument(
            "--max-attachment-bytes",
            type=int,
            default=None,
            help="com.glide.attachment.max_size: larger uploads are refused (400).",
        )

    def handle(self, *args, **opts):
        if not 0 < opts["port"] < 65536:
            raise CommandError(f"--port {opts['port']} is not a TCP port.")
        if opts["latency_ms"] < 0 or opts["token_lifetime"] <= 0 or opts["threads"] < 1:
            raise CommandError(
                "--latency-ms must be >= 0, --token-lifetime > 0 and --threads >= 1."
            )
        if not opts["user"] or not opts["password"]:
            raise CommandError("--user and --password must not be empty.")
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(opts["display_tz"])
        except Exception:  # noqa: BLE001 - any lookup failure is the same admin error
            raise CommandError(
                f"--display-tz {opts['display_tz']!r} is not a known time zone."
            ) from None
        db = Path(opts["db"] or settings.VAR_DIR / "servicenow_sandbox.sqlite3").resolve()
        acl = _acl_from(opts)
        fault = _fault_from(opts)
        if opts["max_attachment_bytes"] is not None and opts["max_attachment_bytes"] < 0:
            raise CommandError("--max-attachment-bytes must be >= 0.")
        config = SandboxConfig(
            max_attachment_bytes=opts["max_attachment_bytes"],
            freeze_clock=opts["freeze_clock"],
            fault=fault,
            latency_ms=opts["latency_ms"],
            oauth_client_id=opts["oauth_client_id"],
            oauth_client_secret=opts["oauth_client_secret"],
            token_lifetime=opts["token_lifetime"],
            display_tz=opts["display_tz"],
        )
        # Build once here so bad input and seeding errors show before the server starts.
        first = build_app(
            db=str(db),
            user=opts["user"],
            password=opts["password"],
            seed=opts["seed"],
            config=config,
            acl=acl,
        )
        first.store.close()
        self.stdout.write(
            f"ServiceNow sandbox on http://{opts['host']}:{opts['port']} (db {db}, user {opts['user']})"
        )
        self.stdout.flush()

        def build():
            return build_app(
                db=str(db),
                user=opts["user"],
                password=opts["password"],
                seed="none",
                config=config,
                acl=acl,
            )

        SandboxServer(
            host=opts["host"], port=opts["port"], threads=opts["threads"], build=build
        ).run()


def _acl_from(opts) -> dict[str, str] | None:
    """The integration user's table rights from ``--hide`` and ``--hide-journal`` (None: unchanged)."""
    if not opts["hide"] and not opts["hide_journal"]:
        return None
    acl: dict[str, str] = {}
    for item in opts["hide"]:
        table, sep, query = item.partition("=")
        if not sep or not table.strip() or not query.strip():
            raise CommandError(
                f"--hide {item!r}: expected TABLE=QUERY, e.g. incident=category=network."
            )
        acl[table.strip()] = f"hide:{query.strip()}"
    if opts["hide_journal"]:
        acl["sys_journal_field"] = "empty"
    return acl


def _fault_from(opts) -> dict | None:
    """The start-up fault from ``--fault``, ``--retry-after`` and ``--hibernate`` (None: none)."""
    import json

    fault: dict = {}
    if opts["fault"]:
        try:
            fault = json.loads(opts["fault"])
        except ValueError:
            raise CommandError("--fault must be a JSON object.") from None
        if not isinstance(fault, dict):
            raise CommandError("--fault must be a JSON object.")
    if opts["retry_after"] is not None:
        fault.update(status=429, retry_after=opts["retry_after"])
    if opts["hibernate"]:
        fault.update(html=True)
    if not fault:
        return None
    from servicenow_adapter.sandbox.faults import Faults

    try:
        Faults(0.0).set(dict(fault))
    except (ValueError, TypeError) as exc:
        raise CommandError(f"--fault: {exc}") from None
    return fault
