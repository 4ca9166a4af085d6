"""The tables the sandbox knows, their fields and how each renders.

Field kinds: ``string``, ``integer``, ``boolean``, ``datetime`` (raw ``YYYY-MM-DD HH:MM:SS``
UTC), ``choice`` (raw code, label for display), ``reference:<table>`` (raw sys_id) and
``journal`` (write-only on the record: writing appends a ``sys_journal_field`` row; the
raw value reads back as ``""``). Every value on the wire is a string (ServiceNow Table
API docs, "Table API"; the recorded incident in tests/fixtures/servicenow/).
"""

from __future__ import annotations

SYS_FIELDS = {
    "sys_id": "string",
    "sys_created_on": "datetime",
    "sys_created_by": "string",
    "sys_updated_on": "datetime",
    "sys_updated_by": "string",
    "sys_mod_count": "integer",
    "sys_tags": "string",
}

INCIDENT_STATE = {
    "1": "New",
    "2": "In Progress",
    "3": "On Hold",
    "6": "Resolved",
    "7": "Closed",
    "8": "Canceled",
}
LEVEL = {"1": "1 - High", "2": "2 - Medium", "3": "3 - Low"}
PRIORITY = {
    "1": "1 - Critical",
    "2": "2 - High",
    "3": "3 - Moderate",
    "4": "4 - Low",
    "5": "5 - Planning",
}
# Priority lookup rules, impact x urgency (ServiceNow docs, "Priority lookup rules").
PRIORITY_MATRIX = {
    ("1", "1"): "1", ("1", "2"): "2", ("1", "3"): "3",
    ("2", "1"): "2", ("2", "2"): "3", ("2", "3"): "4",
    ("3", "1"): "3", ("3", "2"): "4", ("3", "3"): "5",
}  # fmt: skip
CATEGORY = {
    "inquiry": "Inquiry / Help",
    "software": "Software",
    "hardware": "Hardware",
    "network": "Network",
    "database": "Database",
}
CONTACT_TYPE = {
    "phone": "Phone",
    "email": "Email",
    "self-service": "Self-service",
    "walk-in": "Walk-in",
}

# sys_user_has_role.state (only ``active`` grants the role).
ROLE_STATE = {"active": "Active", "pending_approval": "Pending approval", "requested": "Requested"}

TABLES: dict[str, dict[str, object]] = {
    "incident": {
        **SYS_FIELDS,
        "number": "string",
        "task_effective_number": "string",
        "sys_class_name": "string",
        "short_description": "string",
        "description": "string",
        "state": ("choice", INCIDENT_STATE),
        "incident_state": ("choice", INCIDENT_STATE),
        "impact": ("choice", LEVEL),
        "urgency": ("choice", LEVEL),
        "priority": ("choice", PRIORITY),
        "severity": ("choice", LEVEL),
        "category": ("choice", CATEGORY),
        "subcategory": "string",
        "contact_type": ("choice", CONTACT_TYPE),
        "caller_id": "reference:sys_user",
        "opened_by": "reference:sys_user",
        "assigned_to": "reference:sys_user",
        "assignment_group": "reference:sys_user_group",
        "resolved_by": "reference:sys_user",
        "closed_by": "reference:sys_user",
        "opened_at": "datetime",
        "resolved_at": "datetime",
        "closed_at": "datetime",
        "active": "boolean",
        "close_code": "string",
        "close_notes": "string",
        "hold_reason": "string",
        "correlation_id": "string",
        "correlation_display": "string",
        "reassignment_count": "integer",
        "reopen_count": "integer",
        "sys_domain": "reference:sys_user_group",
        "sys_domain_path": "string",
        "comments": "journal",
        "work_notes": "journal",
        "comments_and_work_notes": "journal",
    },
    "sys_journal_field": {
        **SYS_FIELDS,
        "element_id": "string",
        "element": "string",
        "name": "string",
        "value": "string",
    },
    "sys_user": {
        **SYS_FIELDS,
        "user_name": "string",
        "name": "string",
        "first_name": "string",
        "last_name": "string",
        "email": "string",
        "active": "boolean",
        "time_zone": "string",
    },
    "sys_user_group": {**SYS_FIELDS, "name": "string", "description": "string"},
    "sys_user_role": {
        **SYS_FIELDS,
        "name": "string",
        "description": "string",
        "elevated_privilege": "boolean",
        "grantable": "boolean",
    },
    "sys_user_has_role": {
        **SYS_FIELDS,
        "user": "reference:sys_user",
        "role": "reference:sys_user_role",
        "state": ("choice", ROLE_STATE),
        "inherited": "boolean",
    },
    "sys_attachment": {
        **SYS_FIELDS,
        "table_name": "string",
        "table_sys_id": "string",
        "file_name": "string",
        "content_type": "string",
        "size_bytes": "integer",
        "size_compressed": "integer",
        "compressed": "boolean",
        "hash": "string",
        "chunk_size_bytes": "string",
        "state": "string",
        "download_link": "string",
        "image_width": "string",
        "image_height": "string",
        "average_image_color": "string",
    },
}

# Which field names a record by, for display values of references to it.
DISPLAY_FIELD = {
    "incident": "number",
    "sys_user": "name",
    "sys_user_group": "name",
    "sys_journal_field": "value",
    "sys_attachment": "file_name",
    "sys_user_role": "name",
}
JOURNAL_LABEL = {"comments": "Additional comments", "work_notes": "Work notes"}
# short_description is a string(160) on incident: longer values are cut, as the database does.
MAX_LENGTH = {("incident", "short_description"): 160, ("incident", "number"): 40}


def kind_of(table: str, name: str):
    """The kind of ``table.name`` (see module docstring), or None when the field is unknown."""
    return TABLES.get(table, {}).get(name)


def known_field(table: str, name: str) -> bool:
    """Whether ``name`` (optionally one dot-walk through a reference) exists on ``table``."""
    head, _, tail = name.partition(".")
    kind = kind_of(table, head)
    if kind is None:
        return False
    if not tail:
        return True
    if isinstance(kind, str) and kind.startswith("reference:"):
        return kind_of(kind.split(":", 1)[1], tail) is not None
    return False
