"""Roles in the sandbox: ``sys_user_role``, ``sys_user_has_role`` and what a role lets a user write.

A user's roles live on its sys_user row as ``_roles`` (a list of role names, set by
:func:`roles_set` from ``ensure_users`` or ``/sandbox/users``) and are mirrored into
``sys_user_has_role`` rows (``user``, ``role``, ``state`` ``active``, ``inherited``
``false``), so ``GET /api/now/table/sys_user_has_role?sysparm_query=user.user_name=<name>
^state=active&sysparm_fields=role.name`` answers as on an instance. Reading those tables
obeys the user's ``acl`` like any table (``{"sys_user_has_role": "deny"}``: 403).

Writes follow a default instance's ACLs (ServiceNow docs, "ITSM Roles — Incident
Management"; Attachment API: create on sys_attachment needs write on the record):
creating or updating an incident, and attaching a file to one, need ``admin``, ``itil``
or ``sn_incident_write`` (or a role containing it: ``sn_service_desk_agent``,
``incident_manager``, ``sn_incident_admin``); the role tables are written by ``admin``
only. A user row without ``_roles`` (made before roles existed) is not restricted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .store import Store, new_sys_id

if TYPE_CHECKING:
    from .app import SandboxApp

#: Roles whose holders may create and update incidents in a default instance.
INCIDENT_WRITERS = frozenset(
    {"admin", "itil", "sn_incident_write", "sn_service_desk_agent", "incident_manager",
     "sn_incident_admin"}
)  # fmt: skip
#: Tables whose writes need a role, and which roles.
WRITERS = {
    "incident": INCIDENT_WRITERS,
    "sys_user_role": frozenset({"admin"}),
    "sys_user_has_role": frozenset({"admin"}),
}
DESCRIPTIONS = {
    "admin": "System Administrator",
    "itil": "Fulfiller: works on incidents, problems and changes",
    "sn_incident_read": "Read access to Incident Management",
    "sn_incident_write": "Write access to Incident Management",
    "snc_internal": "Internal user",
    "rest_api_explorer": "Use the REST API Explorer",
}


def _row(store: Store, table: str, **values: str) -> dict:
    now = store.now_text()
    return {"sys_id": new_sys_id(), "sys_created_on": now, "sys_created_by": "system",
            "sys_updated_on": now, "sys_updated_by": "system", "sys_mod_count": "0",
            "sys_tags": "", **values}  # fmt: skip


def role_sys_id(store: Store, name: str) -> str:
    """The sys_id of the ``sys_user_role`` named ``name``, created when missing."""
    with store.lock:
        found = store.find("sys_user_role", name=name)
        if found:
            return found[0]["sys_id"]
        row = _row(store, "sys_user_role", name=name, description=DESCRIPTIONS.get(name, name),
                   elevated_privilege="false", grantable="true")  # fmt: skip
        return store.put("sys_user_role", row)["sys_id"]


def roles_set(store: Store, user: dict, names) -> dict:
    """Give ``user`` (a sys_user row) exactly the roles ``names``; returns the updated row.

    Raises ValueError when ``names`` is not a list of role names.
    """
    if not isinstance(names, list | tuple) or not all(
        isinstance(n, str) and n.strip() for n in names
    ):
        raise ValueError('roles must be a list of role names, e.g. ["itil"]')
    wanted = sorted({n.strip() for n in names})
    with store.lock:
        for old in store.find("sys_user_has_role", user=user["sys_id"]):
            store.delete("sys_user_has_role", old["sys_id"])
        for name in wanted:
            store.put("sys_user_has_role", _row(store, "sys_user_has_role", user=user["sys_id"],
                      role=role_sys_id(store, name), state="active", inherited="false"))  # fmt: skip
        user = dict(user, _roles=wanted)
        store.put("sys_user", user)
    return user


def may_write(app: SandboxApp, user: dict, table: str) -> bool:
    """Whether ``user``'s roles let it write ``table`` (see the module docstring)."""
    needed = WRITERS.get(table)
    roles = user.get("_roles")
    if needed is None or roles is None:
        return True
    return bool(needed.intersection(roles))
