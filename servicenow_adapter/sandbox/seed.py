"""Users and the ``demo`` seed of the sandbox, written by us for this project.

``ensure_users`` runs at every start: the integration user given by ``--user`` /
``--password`` (display name "System Administrator" and role ``admin`` for ``admin``,
else role ``itil``) and these agents (role ``itil``; Joe Employee only ``snc_internal``,
so he may read but not write incidents), whose passwords are their first names (so tests
can write as someone else):

============== ============== ========
user_name      name           password
============== ============== ========
beth.anglin    Beth Anglin    beth
david.loo      David Loo      david
abel.tuter     Abel Tuter     abel
fred.luddy     Fred Luddy     fred
joe.employee   Joe Employee   joe
zoe.angstrom   Zoë Ångström   zoe
============== ============== ========

``seed_demo`` adds 36 incidents (INC0010001 onwards on an empty instance) with
multi-line and non-ASCII text, HTML and ``[code]`` comments, work notes and PNG, PDF and
text attachments (one with a non-ASCII file name), generated in code. INC0010001 is the
showcase: three public comments (one HTML, one ``[code]``), a work note, a PNG and a PDF.
Seeding is idempotent: a second run on the same database adds nothing.
"""

from __future__ import annotations

import struct
import zlib
from datetime import timedelta

from .roles import roles_set
from .schema import PRIORITY_MATRIX, TABLES
from .store import Store, hash_password, new_sys_id, next_sequence

AGENTS = [
    ("beth.anglin", "Beth Anglin", "beth"),
    ("david.loo", "David Loo", "david"),
    ("abel.tuter", "Abel Tuter", "abel"),
    ("fred.luddy", "Fred Luddy", "fred"),
    ("joe.employee", "Joe Employee", "joe"),
    ("zoe.angstrom", "Zoë Ångström", "zoe"),
]
#: Roles (``sys_user_has_role``) given at start to users that have none yet: the agents work
#: incidents (itil); Joe Employee is a self-service user who may only read (snc_internal).
AGENT_ROLES = {"joe.employee": ["snc_internal"]}
GROUPS = ["Service Desk", "Network", "Database", "Hardware", "Software"]


def png_bytes(width: int = 48, height: int = 32, seed: int = 0) -> bytes:
    """A small valid PNG (RGB gradient) built with zlib, no imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(
        b"\x00"
        + b"".join(
            bytes(((x * 5 + seed * 40) % 256, (y * 7) % 256, (x + y + seed * 17) % 256))
            for x in range(width)
        )
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def pdf_bytes(title: str, lines: list[str]) -> bytes:
    """A small valid one-page PDF 1.4 with ``title`` and ``lines`` in Helvetica (ASCII only)."""

    def esc(text: str) -> str:
        text = text.encode("ascii", "replace").decode()
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    stream_lines = ["BT", "/F1 16 Tf", "72 760 Td", f"({esc(title)}) Tj", "/F1 11 Tf"]
    for line in lines:
        stream_lines += ["0 -18 Td", f"({esc(line)}) Tj"]
    stream_lines.append("ET")
    content = "\n".join(stream_lines).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def ensure_users(store: Store, admin_user: str, admin_password: str) -> None:
    """Create or refresh the integration user and the agents; idempotent."""
    now = store.now_text()
    wanted = [
        (
            admin_user,
            "System Administrator"
            if admin_user == "admin"
            else admin_user.replace(".", " ").title(),
            admin_password,
        )
    ]
    wanted += AGENTS
    for user_name, name, password in wanted:
        row = store.user(user_name)
        if row is None:
            first, _, last = name.partition(" ")
            row = {field: "" for field in TABLES["sys_user"]}
            row.update(sys_id=new_sys_id(), user_name=user_name, name=name, first_name=first,
                       last_name=last, email=f"{user_name}@example.com", active="true",
                       time_zone="America/Los_Angeles", sys_created_on=now, sys_created_by="system",
                       sys_updated_on=now, sys_updated_by="system", sys_mod_count="0")  # fmt: skip
            row["_password"] = hash_password(password)
            store.put("sys_user", row)
        elif user_name == admin_user:
            from .store import check_password

            if not check_password(admin_password, row.get("_password", "")):
                row["_password"] = hash_password(admin_password)
                store.put("sys_user", row)
    for user_name, _name, _password in wanted:
        row = store.user(user_name)
        if row is not None and row.get("_roles") is None:
            default = ["admin"] if user_name == "admin" else ["itil"]
            roles_set(store, row, AGENT_ROLES.get(user_name, default))
    for name in GROUPS:
        if not store.find("sys_user_group", name=name):
            store.put("sys_user_group", {"sys_id": new_sys_id(), "name": name, "description": f"{name} team",
                                         "sys_created_on": now, "sys_created_by": "system", "sys_updated_on": now,
                                         "sys_updated_by": "system", "sys_mod_count": "0", "sys_tags": ""})  # fmt: skip


# (short description, description, category, impact, urgency, state, caller, assignee, group,
#  comments [(user, text)], work notes [(user, text)], attachments [(file name, type, kind)])
SHOWCASE = [
    (
        "Email not syncing in Outlook after password change",
        "Since I changed my password this morning Outlook keeps asking for credentials\n"
        "and no new mail arrives. Webmail works fine.\n\nLaptop: ThinkPad T14, Windows 11.",
        "software",
        "2",
        "2",
        "2",
        "joe.employee",
        "beth.anglin",
        "Service Desk",
        [
            (
                "beth.anglin",
                "Hi Joe,\nthanks for reporting this. Which Outlook version do you use?\n"
                "You can find it under File > Office Account.",
            ),
            (
                "joe.employee",
                "<p>It is <b>Outlook 2021</b>, build 2309.</p>\n<p>Screenshot of the error attached.</p>",
            ),
            (
                "beth.anglin",
                "Please try these steps:\n[code]<ol><li>Sign out of Office</li>"
                "<li>Remove the <i>MicrosoftOffice16</i> entries in Credential Manager</li>"
                "<li>Sign in again</li></ol>[/code]\nLet me know if it works.",
            ),
        ],
        [
            (
                "david.loo",
                "Exchange logs show token refresh failures for this mailbox since 09:12 UTC.\n"
                "Looks like the stale credential issue from last week.",
            )
        ],
        [
            ("outlook-error.png", "image/png", "png"),
            ("mailbox-diagnostics.pdf", "application/pdf", "pdf"),
        ],
    ),
    (
        "VPN drops every 10 minutes – Büro München",
        "Colleagues in the Munich office lose the VPN tunnel roughly every ten minutes.\n"
        "Reconnecting works, but calls drop each time.\nAffected: ~15 people on floor 2.",
        "network",
        "2",
        "1",
        "2",
        "zoe.angstrom",
        "abel.tuter",
        "Network",
        [
            ("zoe.angstrom", "Grüße aus München! It happened again at 10:40 and 10:51."),
            (
                "abel.tuter",
                "Thanks Zoë. I attached the client log excerpt; the rekey interval looks wrong.",
            ),
        ],
        [
            (
                "abel.tuter",
                "IKE rekey set to 600 s on the new firewall profile. Change request drafted.",
            )
        ],
        [("vpn-client.log", "text/plain", "log")],
    ),
    (
        "Printer on 3rd floor prints garbled characters (文字化け)",
        "Documents with Japanese text come out as random symbols on PRN-3F-02.\n"
        "English documents print fine.",
        "hardware",
        "3",
        "3",
        "1",
        "fred.luddy",
        "",
        "Hardware",
        [("fred.luddy", "Example: 東京オフィスの会議資料 prints as Ã¦Â\u009d±Ã¤Âº¬.")],
        [],
        [("print-sample.png", "image/png", "png")],
    ),
    (
        "Database backup job failed: ORA-19502",
        "Nightly RMAN backup of CRMPROD failed at 02:14.\nError: ORA-19502: write error on file, block number 1183744",
        "database",
        "1",
        "2",
        "2",
        "david.loo",
        "david.loo",
        "Database",
        [
            (
                "david.loo",
                "[code]<pre>SELECT status, start_time FROM v$rman_status\nWHERE start_time > SYSDATE - 1;</pre>[/code]\n"
                "Output attached. The backup volume is 98% full.",
            )
        ],
        [("david.loo", "Extended /backup by 500 GB; re-running the job manually at 10:00.")],
        [("rman-status.txt", "text/plain", "log"), ("backup-report.pdf", "application/pdf", "pdf")],
    ),
    (
        "Guest Wi-Fi captive portal loops back to the login page",
        "Visitors accept the terms and get sent back to the same page.\nSeen on iOS and Android.",
        "network",
        "3",
        "2",
        "2",
        "beth.anglin",
        "abel.tuter",
        "Network",
        [
            ("beth.anglin", "Reception says it started after Friday's maintenance window."),
            ("abel.tuter", "Network overview attached (see the café access points)."),
        ],
        [],
        [("Übersicht Netzwerk – café.txt", "text/plain", "text")],
    ),
    (
        "Teams meetings: audio echo in meeting room « Lumière »",
        "Remote participants hear themselves with a half-second delay.\nRoom: Paris, 4e étage, salle « Lumière ».",
        "hardware",
        "3",
        "2",
        "3",
        "zoe.angstrom",
        "fred.luddy",
        "Hardware",
        [
            (
                "fred.luddy",
                "Ordered a replacement speakerphone; on hold until it arrives (ETA Thursday).",
            )
        ],
        [("fred.luddy", "Vendor ticket #48213 opened.")],
        [],
    ),
    (
        "Shared drive S:\\Finance not mapped at logon",
        "The S: drive (\\\\fs01\\finance) is missing after logon for the finance team.\n"
        "Mapping it by hand works.",
        "software",
        "2",
        "2",
        "1",
        "joe.employee",
        "",
        "Service Desk",
        [("joe.employee", "Path is \\\\fs01\\finance$ – note the dollar sign.")],
        [],
        [],
    ),
    (
        "Slow CRM search since Monday's release",
        "Searching accounts takes 20–30 s instead of 2 s.",
        "software",
        "2",
        "2",
        "6",
        "beth.anglin",
        "david.loo",
        "Software",
        [
            (
                "david.loo",
                "Missing index on account.name after the migration. Added it; search is back to 1.8 s.",
            ),
            ("beth.anglin", "Confirmed, thank you! 👍"),
        ],
        [("david.loo", "CREATE INDEX account_name_idx ON account (name);")],
        [],
    ),
    (
        'Phishing email reported: "Invoice overdue – action required"',
        "User forwarded a suspicious email with a link to a fake login page.\nSender: billing@examp1e.com",
        "inquiry",
        "2",
        "1",
        "2",
        "fred.luddy",
        "abel.tuter",
        "Service Desk",
        [
            (
                "abel.tuter",
                "Thanks Fred, please don't click the link. We are blocking the sender domain.",
            )
        ],
        [("abel.tuter", "Blocked examp1e.com on the mail gateway; 14 copies purged.")],
        [("headers.txt", "text/plain", "text")],
    ),
    (
        "Laptop battery swelling – urgent replacement",
        "The touchpad is lifting and the case bulges. Laptop switched off and unplugged.",
        "hardware",
        "1",
        "1",
        "2",
        "joe.employee",
        "fred.luddy",
        "Hardware",
        [("fred.luddy", "Please bring it to the IT desk today; we have a loaner ready.")],
        [],
        [("battery.png", "image/png", "png")],
    ),
]

SERVICES = [
    "Jira Cloud", "Confluence wiki", "Zoom Rooms", "GitLab runner", "Payroll portal",
    "Badge reader at Gate 2", "Expense app", "Intranet search", "HR self-service",
    "Build server", "Conference room display", "Mobile device management",
]  # fmt: skip
SYMPTOMS = [
    ("is unreachable from the office network", "network", "1"),
    ("returns HTTP 502 Bad Gateway", "software", "2"),
    ("is very slow since this morning", "software", "3"),
    ("rejects valid credentials", "inquiry", "2"),
]


def _generated():
    """26 more incidents from service x symptom, with a varying number of comments."""
    people = [a[0] for a in AGENTS]
    for i in range(26):
        service = SERVICES[i % len(SERVICES)]
        symptom, category, impact = SYMPTOMS[i % len(SYMPTOMS)]
        caller = people[(i + 2) % len(people)]
        agent = people[i % 4]
        comments = [
            (caller, f"{service} {symptom}.\nFirst noticed around {8 + i % 9}:{(i * 7) % 60:02d}."),
            (agent, f"Thanks, looking into it. Ticket #{1000 + i} on the vendor side."),
            (caller, "Still happening – any update?\nNoch immer kaputt."),
        ][: i % 4]
        notes = (
            [(agent, f"Checked monitoring for {service}: nothing unusual.")] if i % 3 == 0 else []
        )
        files = (
            [(f"{service.lower().replace(' ', '-')}-notes.txt", "text/plain", "text")]
            if i % 5 == 0
            else []
        )
        state = ["1", "2", "2", "3", "1"][i % 5]
        yield (f"{service} {symptom}", f"Reported by phone.\n{service} {symptom}.\nImpact: team of {3 + i}.",
               category, impact, str(1 + i % 3), state, caller, agent if state != "1" else "", "Service Desk",
               comments, notes, files)  # fmt: skip


def _file(kind: str, name: str, index: int) -> bytes:
    if kind == "png":
        return png_bytes(seed=index)
    if kind == "pdf":
        return pdf_bytes(name, ["Mailbox diagnostics / backup report", f"Generated for incident #{index}",
                                "Status: see attached log lines."])  # fmt: skip
    if kind == "log":
        return "".join(
            f"2026-11-2{index % 9} 10:{m:02d}:00 INFO tunnel state=UP rekey=600s\n"
            for m in range(0, 60, 7)
        ).encode()
    return f"Notes for incident #{index}\nÄnderungen · 変更 · cambios\nLine three.\n".encode()


def seed_demo(store: Store) -> int:
    """Add the demo incidents once; returns how many were added (0 when already seeded)."""
    if store.meta_get("seed:demo") == "done":
        return 0
    users = {r["user_name"]: r for r in store.rows("sys_user")}
    groups = {r["name"]: r["sys_id"] for r in store.rows("sys_user_group")}
    start = store.now() - timedelta(days=40)
    count = 0
    for index, spec in enumerate([*SHOWCASE, *_generated()]):
        (summary, description, category, impact, urgency, state, caller, agent, group,
         comments, notes, files) = spec  # fmt: skip
        created = start + timedelta(days=index, hours=index % 7)
        moments = iter(created + timedelta(hours=2 * k, minutes=k) for k in range(1, 20))

        def text(moment) -> str:
            return moment.strftime("%Y-%m-%d %H:%M:%S")

        sys_id = new_sys_id()
        row = {field: "" for field, kind in TABLES["incident"].items() if kind != "journal"}
        row.update(
            sys_id=sys_id, number=store.next_number(), short_description=summary, description=description,
            category=category, impact=impact, urgency=urgency, severity="3", state=state, incident_state=state,
            priority=PRIORITY_MATRIX[(impact, urgency)], active="false" if state in ("6", "7", "8") else "true",
            caller_id=users[caller]["sys_id"], opened_by=users[caller]["sys_id"],
            assigned_to=users[agent]["sys_id"] if agent else "", assignment_group=groups.get(group, ""),
            contact_type="email", opened_at=text(created), sys_class_name="incident", sys_domain="global",
            sys_domain_path="/", reassignment_count="0", reopen_count="0",
            sys_created_on=text(created), sys_created_by=caller, sys_tags="",
        )  # fmt: skip
        row["task_effective_number"] = row["number"]
        if state == "6":
            row.update(close_code="Solution provided", close_notes="Index recreated.", resolved_at=text(created + timedelta(days=1)),
                       resolved_by=users[agent]["sys_id"] if agent else "")  # fmt: skip
        if state == "3":
            row["hold_reason"] = "4"
        last, mods, last_user = created, 0, caller
        entries = [("comments", u, t) for u, t in comments] + [
            ("work_notes", u, t) for u, t in notes
        ]
        # interleave: work notes after the first comment
        entries.sort(key=lambda e: 0 if e[0] == "comments" else 1)
        for element, user_name, value in entries:
            moment = next(moments)
            store.put("sys_journal_field", {
                "sys_id": new_sys_id(), "element_id": sys_id, "element": element, "name": "incident",
                "value": value, "sys_created_on": text(moment), "sys_created_by": user_name,
                "sys_updated_on": text(moment), "sys_updated_by": user_name, "sys_mod_count": "0", "sys_tags": "",
                "_seq": next_sequence(),
            })  # fmt: skip
            last, mods, last_user = moment, mods + 1, user_name
        for file_name, content_type, kind in files:
            moment = next(moments)
            att_id = new_sys_id()
            size, digest = store.put_blob(att_id, [_file(kind, file_name, index)])
            who = agent or caller
            store.put("sys_attachment", {
                "sys_id": att_id, "table_name": "incident", "table_sys_id": sys_id, "file_name": file_name,
                "content_type": content_type, "size_bytes": str(size), "size_compressed": str(size),
                "compressed": "true", "hash": digest, "chunk_size_bytes": "700000", "state": "available",
                "download_link": "", "image_width": "48" if kind == "png" else "",
                "image_height": "32" if kind == "png" else "", "average_image_color": "",
                "sys_created_on": text(moment), "sys_created_by": who, "sys_updated_on": text(moment),
                "sys_updated_by": "system", "sys_mod_count": "1", "sys_tags": "",
            })  # fmt: skip
        row.update(sys_updated_on=text(last), sys_updated_by=last_user, sys_mod_count=str(mods + 1))
        store.put("incident", row)
        count += 1
    store.meta_set("seed:demo", "done")
    return count
