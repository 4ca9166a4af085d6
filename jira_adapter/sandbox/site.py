"""The site's things as the REST API shows them: users, projects, issue types, issues, comments.

Lookups raise what a site answers (404 "does not exist or you do not have permission"
for an issue the caller cannot browse; a moved issue's old key still resolves, under
its new key, with no redirect: reference note §1.4). The JSON builders take the
caller (``req.user``) into account: dates in the caller's time zone, Cloud users by
``accountId``, Data Center users by ``name``/``key``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .adf import adf_to_html
from .wiki import wiki_to_html
from .wire import M_ISSUE_404, HttpError, JiraRequest, jira_time, rendered_time

if TYPE_CHECKING:
    from .app import SandboxApp

NAVIGABLE = ["summary", "description", "issuetype", "project", "status", "created", "updated",
             "reporter", "creator", "labels", "comment", "attachment", "environment"]  # fmt: skip
STATUS = {"self": "", "id": "10000", "name": "To Do",
          "statusCategory": {"id": 2, "key": "new", "name": "To Do", "colorName": "blue-gray"}}  # fmt: skip


# -- users and rights -----------------------------------------------------------------------
def can(user: dict, right: str, project_key: str) -> bool:
    """Whether ``user`` holds ``right`` (``browse``, ``create``) in a project: a list of keys or ``*``."""
    granted = user.get(right, ["*"])
    return "*" in granted or project_key in granted


def user_json(app: SandboxApp, req: JiraRequest, user: dict | None) -> dict | None:
    """A user as the API shows one (Cloud: accountId; DC: name and key)."""
    if user is None:
        return None
    base = {"displayName": user["display_name"], "active": user.get("active", True),
            "timeZone": user["time_zone"],
            "avatarUrls": {"48x48": f"{req.site_url}/secure/useravatar?size=large"}}  # fmt: skip
    if app.flavour == "dc":
        return {"self": f"{req.site_url}/rest/api/2/user?username={user['name']}", "name": user["name"],
                "key": user["key"], "emailAddress": user["email"], **base}  # fmt: skip
    return {"self": f"{req.site_url}/rest/api/3/user?accountId={user['account_id']}",
            "accountId": user["account_id"], "accountType": "atlassian",
            "emailAddress": user["email"], **base}  # fmt: skip


def user_by_id(app: SandboxApp, user_id: str) -> dict | None:
    """A stored user by its id (accountId on Cloud, key on DC)."""
    return app.store.get("user", user_id)


# -- projects and issue types --------------------------------------------------------------
def visible_projects(app: SandboxApp, req: JiraRequest) -> list[dict]:
    """The projects the caller may browse, by key."""
    return sorted((p for p in app.store.rows("project") if can(req.user, "browse", p["key"])),
                  key=lambda p: p["key"])  # fmt: skip


def project_get(app: SandboxApp, req: JiraRequest, id_or_key) -> dict:
    """A project by id or key (case-insensitive key); 404 as a site words it."""
    wanted = str(id_or_key)
    for project in visible_projects(app, req):
        if project["id"] == wanted or project["key"] == wanted.upper():
            return project
    raise HttpError(404, [f"No project could be found with key '{wanted}'."])


def issuetype_json(app: SandboxApp, req: JiraRequest, itype: dict, project: dict) -> dict:
    """An issue type (ids differ per project even for the same name, as on real sites)."""
    return {"self": f"{req.site_url}{app.api}/issuetype/{itype['id']}", "id": itype["id"],
            "description": itype.get("description", ""), "name": itype["name"],
            "iconUrl": f"{req.site_url}/images/icons/issuetypes/{itype['name'].lower()}.svg",
            "subtask": itype.get("subtask", False), "hierarchyLevel": -1 if itype.get("subtask") else 0,
            "scope": {"type": "PROJECT", "project": {"id": project["id"]}}}  # fmt: skip


def project_json(app: SandboxApp, req: JiraRequest, project: dict, *, types: bool = False) -> dict:
    """A project, with ``issueTypes`` when ``types``."""
    out = {"self": f"{req.site_url}{app.api}/project/{project['id']}", "id": project["id"],
           "key": project["key"], "name": project["name"], "projectTypeKey": project["type"],
           "simplified": False, "style": "classic", "isPrivate": False,
           "avatarUrls": {"48x48": f"{req.site_url}/secure/projectavatar?pid={project['id']}"}}  # fmt: skip
    if types:
        out["issueTypes"] = [issuetype_json(app, req, t, project) for t in project["issuetypes"]]
    return out


# -- issues ---------------------------------------------------------------------------------
def issue_get(app: SandboxApp, req: JiraRequest, id_or_key: str) -> dict:
    """An issue by id, key (case-insensitive) or a key it had before a move; 404 otherwise."""
    wanted = str(id_or_key).upper()
    issue = app.store.get("issue", wanted) if wanted.isdigit() else None
    if issue is None and not wanted.isdigit():
        for row in app.store.rows("issue"):
            if row["key"] == wanted or wanted in row.get("old_keys", []):
                issue = app.store.get("issue", row["id"])
                break
    if issue is None:
        raise HttpError(404, [M_ISSUE_404])
    project = app.store.get("project", issue["project_id"])
    if not can(req.user, "browse", project["key"]):
        raise HttpError(404, [M_ISSUE_404])
    return issue


def issue_type_of(app: SandboxApp, issue: dict) -> tuple[dict, dict]:
    """(project, issue type) of an issue."""
    project = app.store.get("project", issue["project_id"])
    types = project["issuetypes"] + project.get("retired_types", [])
    itype = next(t for t in types if t["id"] == issue["issuetype_id"])
    return project, itype


def visible_comments(app: SandboxApp, req: JiraRequest, issue_id: str) -> list[dict]:
    """The issue's comments the caller may see, oldest first (restricted ones silently left out)."""
    groups = set(req.user.get("groups", []))
    out = []
    for c in sorted(
        app.store.find("comment", issue_id=issue_id), key=lambda c: (c["created"], int(c["id"]))
    ):
        vis = c.get("visibility")
        if vis and vis.get("value") not in groups and vis.get("identifier") not in groups:
            continue
        out.append(c)
    return out


def render(app: SandboxApp, req: JiraRequest, body) -> str:
    """A text field's HTML (``renderedFields``, ``renderedBody``)."""
    return (
        wiki_to_html(body, req.site_url) if app.flavour == "dc" else adf_to_html(body, req.site_url)
    )


def comment_json(
    app: SandboxApp, req: JiraRequest, comment: dict, *, rendered: bool = False
) -> dict:
    """A comment (``id`` a string; ``jsdPublic`` false only with ``sd.public.comment`` internal)."""
    tz = req.user["time_zone"]
    internal = (comment.get("properties", {}).get("sd.public.comment") or {}).get(
        "internal"
    ) is True
    out = {"self": f"{req.site_url}{app.api}/issue/{comment['issue_id']}/comment/{comment['id']}",
           "id": comment["id"], "author": user_json(app, req, user_by_id(app, comment["author"])),
           "body": comment["body"],
           "updateAuthor": user_json(app, req, user_by_id(app, comment["update_author"])),
           "created": jira_time(comment["created"], tz), "updated": jira_time(comment["updated"], tz),
           "jsdPublic": not internal}  # fmt: skip
    if comment.get("visibility"):
        out["visibility"] = comment["visibility"]
    if rendered:
        out["renderedBody"] = render(app, req, comment["body"])
    return out


def attachment_json(
    app: SandboxApp, req: JiraRequest, att: dict, *, metadata: bool = False
) -> dict:
    """An attachment: ``id`` a string in issue fields and uploads, an integer in metadata (§4.2)."""
    site = req.site_url
    if app.flavour == "dc":
        content = f"{site}/secure/attachment/{att['id']}/{att['filename']}"
    else:
        content = f"{site}{app.api}/attachment/content/{att['id']}"
    out = {"self": f"{site}{app.api}/attachment/{att['id']}",
           "id": int(att["id"]) if metadata else att["id"], "filename": att["filename"],
           "author": user_json(app, req, user_by_id(app, att["author"])),
           "created": jira_time(att["created"], req.user["time_zone"]), "size": att["size"],
           "mimeType": att["mimeType"], "content": content}  # fmt: skip
    if att["mimeType"].startswith("image/"):
        out["thumbnail"] = f"{site}{app.api}/attachment/thumbnail/{att['id']}"
    if metadata:
        out["properties"] = {}
    return out


def wanted_fields(names: list[str], default: list[str]) -> list[str]:
    """Resolve a ``fields`` parameter (``*all``, ``*navigable``, ``-name``, names) to field ids."""
    names = names or default
    chosen: list[str] = []
    for name in names:
        if name in ("*all", "*navigable"):
            chosen += [f for f in NAVIGABLE if f not in chosen]
        elif not name.startswith("-") and name not in chosen:
            chosen.append(name)
    return [f for f in chosen if "-" + f not in names]


def issue_json(app: SandboxApp, req: JiraRequest, issue: dict, *, fields: list[str],
               expand: list[str] = (), properties: list[str] = ()) -> dict:  # fmt: skip
    """An issue with the named ``fields``; ``expand`` ``renderedFields``, ``changelog``, ``names``.

    The embedded ``comment`` field holds at most ``embedded_comments`` (20) comments, the
    oldest ones, with the true ``total``: page ``/comment`` for the rest (§3.2).
    """
    tz, site = req.user["time_zone"], req.site_url
    project, itype = issue_type_of(app, issue)
    comments = visible_comments(app, req, issue["id"])
    shown = comments[: app.settings["embedded_comments"]]
    atts = sorted(app.store.find("attachment", issue_id=issue["id"]), key=lambda a: int(a["id"]))
    values = {
        "summary": issue["summary"], "description": issue.get("description"),
        "environment": None, "labels": issue.get("labels", []),
        "issuetype": issuetype_json(app, req, itype, project),
        "project": {k: v for k, v in project_json(app, req, project).items() if k in ("self", "id", "key", "name", "projectTypeKey", "simplified", "avatarUrls")},
        "status": STATUS | {"self": f"{site}{app.api}/status/10000"},
        "created": jira_time(issue["created"], tz), "updated": jira_time(issue["updated"], tz),
        "reporter": user_json(app, req, user_by_id(app, issue["reporter"])),
        "creator": user_json(app, req, user_by_id(app, issue["reporter"])),
        "attachment": [attachment_json(app, req, a) for a in atts],
        "comment": {"comments": [comment_json(app, req, c) for c in shown],
                    "self": f"{site}{app.api}/issue/{issue['id']}/comment",
                    "maxResults": len(shown), "total": len(comments), "startAt": 0},
    }  # fmt: skip
    out = {"expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
           "id": issue["id"], "self": f"{site}{app.api}/issue/{issue['id']}", "key": issue["key"],
           "fields": {f: values[f] for f in fields if f in values}}  # fmt: skip
    if "renderedFields" in expand:
        now = app.store.now_ms()
        rendered = {"description": render(app, req, issue.get("description")),
                    "created": rendered_time(issue["created"], now, tz),
                    "updated": rendered_time(issue["updated"], now, tz),
                    "comment": {"comments": [comment_json(app, req, c) | {"body": render(app, req, c["body"]),
                                             "created": rendered_time(c["created"], now, tz),
                                             "updated": rendered_time(c["updated"], now, tz)} for c in shown],
                                "maxResults": len(shown), "total": len(comments), "startAt": 0}}  # fmt: skip
        out["renderedFields"] = {f: rendered.get(f) for f in fields if f in values}
    if "names" in expand:
        out["names"] = {f: f.capitalize() for f in fields if f in values}
    if "changelog" in expand:
        histories = list(reversed(issue.get("history", [])))
        out["changelog"] = {"startAt": 0, "maxResults": len(histories), "total": len(histories),
                            "histories": [history_json(app, req, h) for h in histories]}  # fmt: skip
    if properties:
        props = issue.get("properties", {})
        keys = props if "*all" in properties else [k for k in properties if k in props]
        out["properties"] = {k: props[k] for k in keys}
    return out


def history_json(app: SandboxApp, req: JiraRequest, history: dict) -> dict:
    """One changelog entry ``{id, author, created, items}`` (a move has ``Key`` and ``project`` items)."""
    return {"id": history["id"], "author": user_json(app, req, user_by_id(app, history["author"])),
            "created": jira_time(history["created"], req.user["time_zone"]), "items": history["items"]}  # fmt: skip
