"""How an instance writes records: numbers, mod counts, the journal, data policy, settling.

:func:`record_write` is every insert and update (Table API and the record page's comment
form): unknown and ``sys_*`` fields are ignored, ``comments``/``work_notes`` append
``sys_journal_field`` rows, ``sys_mod_count``/``sys_updated_on``/``sys_updated_by``
change when anything changed, incidents get ``INC0010001``-style numbers, a priority
from impact and urgency, and the Resolved/Closed data policy. :func:`settle` turns an
uploaded attachment from ``pending`` to ``available`` a moment later.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .schema import MAX_LENGTH, PRIORITY_MATRIX, TABLES, kind_of
from .store import hash_password, new_sys_id, next_sequence
from .wire import SYS_ID, HttpError

if TYPE_CHECKING:
    from .app import SandboxApp


def record_write(
    app: SandboxApp, table: str, existing: dict | None, values: dict, user: dict
) -> dict:
    """Insert (``existing`` None) or update a record the way an instance does.

    Unknown fields are ignored; ``sys_*`` fields are not writable (except ``sys_id`` on
    insert); journal fields append ``sys_journal_field`` rows; ``sys_mod_count``,
    ``sys_updated_on`` and ``sys_updated_by`` change when anything changed. Incidents
    get a number, a computed priority, ``active`` from the state, and the data policy
    that Resolved/Closed need ``close_code`` and ``close_notes`` (403 otherwise).
    """
    now, who = app.store.now_text(), user["user_name"]
    with app.store.lock:
        creating = existing is None
        if existing is not None:  # re-read under the lock: a concurrent write may have landed
            existing = app.store.get(table, existing["sys_id"]) or existing
        row = dict(existing or {})
        if creating:
            row = {name: "" for name in TABLES[table] if kind_of(table, name) != "journal"}
            proposed = str(values.get("sys_id") or "")
            row.update(sys_id=proposed if SYS_ID.match(proposed) else new_sys_id(),
                       sys_created_on=now, sys_created_by=who, sys_mod_count="0")  # fmt: skip
            if table == "incident":
                row.update(state="1", impact="3", urgency="3", severity="3", active="true",
                           opened_at=now, opened_by=user["sys_id"], sys_class_name="incident",
                           sys_domain="global", sys_domain_path="/", reassignment_count="0",
                           reopen_count="0", contact_type="")  # fmt: skip
        changed, journals = False, []
        for name, value in values.items():
            kind = kind_of(table, name)
            if (
                kind is None
                or name in ("sys_id",)
                or (name.startswith("sys_") and name != "sys_tags")
            ):
                continue
            if isinstance(value, dict):
                value = value.get("value", "")
            value = (
                ""
                if value is None
                else ("true" if value is True else "false" if value is False else str(value))
            )
            if kind == "journal":
                if value.strip():
                    journals.append(
                        ("comments" if name == "comments_and_work_notes" else name, value)
                    )
                continue
            limit = MAX_LENGTH.get((table, name))
            if limit:
                value = value[:limit]
            if row.get(name, "") != value:
                row[name] = value
                changed = True
        if table == "incident":
            if creating and not row.get("number"):
                row["number"] = app.store.next_number()
            row["task_effective_number"] = row["number"]
            row["incident_state"] = row["state"]
            row["priority"] = PRIORITY_MATRIX.get((row["impact"], row["urgency"]), "5")
            row["active"] = "false" if row["state"] in ("6", "7", "8") else "true"
            if row["state"] in ("6", "7") and not (
                row.get("close_code") and row.get("close_notes")
            ):
                raise HttpError(403, ("Operation Failed", "Data Policy Exception: \n\tThe following "
                                      "fields are mandatory: Resolution code, Resolution notes\n"))  # fmt: skip
            if row["state"] == "6" and not row.get("resolved_at"):
                row.update(resolved_at=now, resolved_by=user["sys_id"])
            if row["state"] == "7" and not row.get("closed_at"):
                row.update(closed_at=now, closed_by=user["sys_id"])
        if creating or changed or journals:
            if not creating:
                row["sys_mod_count"] = str(int(row.get("sys_mod_count") or 0) + 1)
            row.update(sys_updated_on=now, sys_updated_by=who)
            app.store.put(table, row)
        for element, text in journals:
            app.store.put("sys_journal_field", {
                "sys_id": new_sys_id(), "element_id": row["sys_id"], "element": element,
                "name": table, "value": text, "sys_created_on": now, "sys_created_by": who,
                "sys_updated_on": now, "sys_updated_by": who, "sys_mod_count": "0", "sys_tags": "",
                "_seq": next_sequence(),
            })  # fmt: skip
        if table == "sys_user" and "password" in values:
            row["_password"] = hash_password(str(values["password"]))
            app.store.put(table, row)
    return row


def record_delete(app: SandboxApp, table: str, sys_id: str) -> None:
    """Delete a record; an incident takes its journal entries and attachments with it."""
    with app.store.lock:
        app.store.delete(table, sys_id)
        if table == "incident":
            for r in app.store.find("sys_journal_field", element_id=sys_id):
                app.store.delete("sys_journal_field", r["sys_id"])
            for r in app.store.find("sys_attachment", table_sys_id=sys_id):
                app.store.delete("sys_attachment", r["sys_id"])


def settle(app: SandboxApp, table: str, row: dict) -> dict:
    """An uploaded attachment turns from ``pending`` to ``available`` a moment later."""
    if table != "sys_attachment" or row.get("state") != "pending":
        return row
    if "_uploaded_at" in row:  # wall-clock seconds: sys_created_on is cut to whole seconds
        age = time.time() - float(row["_uploaded_at"])
    else:
        created = datetime.strptime(row["sys_created_on"], "%Y-%m-%d %H:%M:%S")
        age = (app.store.now() - created.replace(tzinfo=UTC)).total_seconds()
    if age < app.config.attachment_settle_seconds:
        return row
    with app.store.lock:
        fresh = app.store.get(table, row["sys_id"])
        if fresh and fresh.get("state") == "pending":
            fresh.update(state="available", sys_mod_count="1", sys_updated_by="system")
            app.store.put(table, fresh)
            return fresh
    return fresh or row
