"""The rights Test connection reports, one line each, found without writing anything.

Reads (incidents, public comments in ``sys_journal_field``, attachments) are verified by
reading (``checks.py``). Writes cannot be tried without writing, so they are inferred
from the user's active roles, read from ``sys_user_has_role`` (its rows include roles
inherited from other roles and from groups)::

    GET /api/now/table/sys_user_has_role?sysparm_query=user.user_name=<name>^state=active
        ^role.nameIN<writer roles>&sysparm_fields=role.name

In a default instance ``admin`` passes every ACL, and ``itil`` or ``sn_incident_write``
(contained in ``sn_service_desk_agent``; ``incident_manager`` contains ``itil``) create and
update incidents (ServiceNow docs, "Components installed with ITSM Roles — Incident
Management"). Attaching a file needs create on ``sys_attachment`` and write on the
incident (Attachment API docs), so the same roles. A custom ACL can still differ, so a
role says "probably granted", never "verified". A 403 on ``sys_user_has_role`` (its read
ACL), or no role listed at all (200 with no rows is also how a hidden table answers),
means "could not be verified".
"""

from __future__ import annotations

from trackers.errors import TrackerBadRequest, TrackerNotFound, TrackerPermissionError
from trackers.interface import RightCheck

from . import query as q
from .mapping import value_of

READ_INCIDENTS = "read incidents"
READ_COMMENTS = "read public comments (sys_journal_field)"
READ_ATTACHMENTS = "read attachments"
WRITE_ATTACHMENTS = "write attachments"
CREATE_INCIDENTS = "create incidents"
UPDATE_INCIDENTS = "update incidents"
#: The order Test connection lists the rights in.
RIGHTS = (
    READ_INCIDENTS,
    READ_COMMENTS,
    READ_ATTACHMENTS,
    WRITE_ATTACHMENTS,
    CREATE_INCIDENTS,
    UPDATE_INCIDENTS,
)

GRANTED, PROBABLY, MISSING, UNVERIFIED = "granted", "probably", "missing", "unverified"

#: Roles that create and update incidents in a default instance, the strongest first.
INCIDENT_WRITERS = (
    "admin",
    "itil",
    "sn_incident_write",
    "sn_service_desk_agent",
    "incident_manager",
    "sn_incident_admin",
)
#: How many of the user's other roles a "missing" line names.
ROLES_SHOWN = 8

_WHY = {
    CREATE_INCIDENTS: "create incidents (mirrors of the other side's records)",
    UPDATE_INCIDENTS: "update incidents (summary, description and comments)",
    WRITE_ATTACHMENTS: "attach files to incidents (create on sys_attachment, write on incident)",
}


def user_roles(client, user_name: str) -> tuple[list[str], list[str], str]:
    """The user's active writer roles, some of its other roles, and why they could not be read.

    Returns ``(writers, others, why)``: ``writers`` the :data:`INCIDENT_WRITERS` it has;
    ``others`` (only looked up when it has none) up to :data:`ROLES_SHOWN` other role
    names; ``why`` is '' when the roles were read, else the reason in an admin's words
    (403 on ``sys_user_has_role``, or no role listed at all). Two requests at most, one
    when a writer role is found; other ``TrackerError``s propagate.
    """
    base = q.join(q.term("user.user_name", "=", user_name), q.term("state", "=", "active"))

    def names(query: str, limit: int) -> list[str]:
        try:
            page = client.table_page(
                "sys_user_has_role", query=query, fields=("role.name",), limit=limit
            )
        except TrackerNotFound:  # the v1 API's 404 for an empty list
            return []
        return sorted({value_of(r.get("role.name")) for r in page.rows} - {""})

    try:
        writers = names(q.join(base, q.term("role.name", "IN", q.in_list(INCIDENT_WRITERS))), 20)
        if writers:
            return [r for r in INCIDENT_WRITERS if r in writers], [], ""
        others = names(base, 100)
    except (TrackerPermissionError, TrackerBadRequest) as exc:
        return (
            [],
            [],
            (
                f"the instance did not let {user_name!r} read its own roles "
                f"({exc.status or 'refused'} on sys_user_has_role: {exc.detail or exc.message})"
            ),
        )
    if not others:
        return (
            [],
            [],
            (
                f"sys_user_has_role lists no active role for {user_name!r} (it has none, or the "
                "table's read ACL hides them)"
            ),
        )
    return [], others[:ROLES_SHOWN], ""


def write_lines(
    writers: list[str], others: list[str], why: str, user_name: str
) -> list[RightCheck]:
    """The three write lines (attachments, create, update) from :func:`user_roles`' answer."""
    lines = []
    for right in (WRITE_ATTACHMENTS, CREATE_INCIDENTS, UPDATE_INCIDENTS):
        if why:
            lines.append(RightCheck(right, UNVERIFIED, (
                f"could not be verified: {why}. Check in ServiceNow that {user_name!r} has the "
                "role itil (or sn_incident_write)."
            )))  # fmt: skip
        elif writers:
            role = writers[0]
            note = (
                "admin passes every ACL"
                if role == "admin"
                else "not tried: a custom ACL could still refuse it"
            )
            lines.append(RightCheck(right, PROBABLY, f"probably granted (role {role}; {note})."))
        else:
            shown = ", ".join(others) + (", …" if len(others) >= ROLES_SHOWN else "")
            lines.append(RightCheck(right, MISSING, (
                f"missing: none of the roles of {user_name!r} ({shown}) lets it {_WHY[right]} "
                "in a default instance. Give it the role itil (or sn_incident_write), or an "
                "ACL on incident that allows it."
            )))  # fmt: skip
    return lines


def summary(rights) -> str:
    """One sentence counting the lines by state, e.g. "Rights: 3 verified, 3 probably granted."."""
    words = {GRANTED: "verified", PROBABLY: "probably granted", MISSING: "missing",
             UNVERIFIED: "could not be verified"}  # fmt: skip
    counts = [(words[s], sum(1 for r in rights if r.state == s)) for s in words]
    parts = [f"{n} {w}" for w, n in counts if n]
    return f"Rights: {', '.join(parts)}." if parts else ""
