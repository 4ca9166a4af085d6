"""The Basic-mode sync rules: pure functions from replicas and twin state to what to do.

Basic mode has fixed rules that nobody edits (Exalate, "Set up a Connection in Basic
Mode for ServiceNow": "In Basic connections, you can only sync incidents. All comments
are synced as public comments." and "Issue types are mirrored ... If an issue type is not
included in the basic set, it will be synced as a task."):

* outgoing: the incident becomes a replica with its summary, description, public
  comments, attachments and type; whatever the sync itself wrote from the other side is
  left out (no echo);
* incoming: summary and description are set; each comment is added once as a public
  comment carrying the original author's name; each attachment is added once with
  identical bytes (sha256 checked); the type is mirrored, and a type this tracker lacks
  becomes Task (ServiceNow receives everything as an incident).

Nothing here touches the database or the network; ``sync.services`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FALLBACK_TYPE = "task"
SYNCED_FIELDS = ("summary", "description")

#: The rules as the connection page shows them (read-only): (what, outgoing, incoming).
BASIC_RULES: list[tuple[str, str, str]] = [
    ("Summary", "Sent", "Set on the local incident"),
    ("Description", "Sent", "Set on the local incident"),
    (
        "Comments",
        "Public comments are sent; work notes never",
        "Each comment is added once as a public comment, carrying the original author's name",
    ),
    (
        "Attachments",
        "Sent (name, type, size, sha256); bytes fetched by the other node",
        "Each attachment is added once; bytes must match the sha256",
    ),
    (
        "Type",
        "Sent",
        "Mirrored; a type this tracker lacks becomes Task (ServiceNow creates incidents only)",
    ),
]


def incoming_entity_type(remote_type: str, *, local_types: tuple[str, ...]) -> str:
    """The type to create locally for a remote entity of ``remote_type``.

    Mirrored when ``local_types`` (the adapter's ``entity_types``) has it
    (case-insensitive), else ``"task"``.
    ``incoming_entity_type("incident", local_types=("incident",)) == "incident"``;
    ``incoming_entity_type("bug", local_types=("incident",)) == "task"``.
    """
    wanted = (remote_type or "").strip().lower()
    for t in local_types:
        if t.lower() == wanted:
            return t
    return FALLBACK_TYPE


def outgoing_replica(
    local: dict, *, echo_comment_ids: set[str], echo_attachment_ids: set[str]
) -> dict:
    """The replica to send for the local entity snapshot ``local`` (replica v1 dict).

    Keeps public comments only (Basic mode never sends work notes) and drops comments and
    attachments whose local id is in the echo sets: those were written here by the sync
    from the other side and must never go back. Returns a new dict; ``local`` is untouched.
    """
    out = dict(local)
    out["entity"] = dict(local["entity"])
    out["comments"] = [
        dict(c) for c in local["comments"] if c.get("public") and c["id"] not in echo_comment_ids
    ]
    out["attachments"] = [
        dict(a) for a in local["attachments"] if a["id"] not in echo_attachment_ids
    ]
    return out


@dataclass(frozen=True)
class OutgoingChanges:
    """What an outgoing replica changes relative to what the other side already has.

    ``fields``: names from :data:`SYNCED_FIELDS` whose value differs from the agreed one;
    ``comment_ids`` / ``attachment_ids``: items not sent before.
    """

    fields: tuple[str, ...]
    comment_ids: tuple[str, ...] = ()
    attachment_ids: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.fields or self.comment_ids or self.attachment_ids)


def outgoing_changes(
    replica: dict,
    *,
    known: dict[str, str | None],
    last_sent: dict | None,
) -> OutgoingChanges:
    """Compare the outgoing ``replica`` with the twin's agreed values and its last sent replica.

    ``known`` maps each synced field to the value both sides last agreed on (None: never
    synced). A field is changed when it differs from ``known``; a comment or attachment is
    new when its id was not in ``last_sent``. An empty (falsy) result means nothing to
    send: this is how a change made only by the sync produces no outgoing event.
    """
    fields = tuple(f for f in SYNCED_FIELDS if known.get(f) is None or replica[f] != known[f])
    sent_comments = {c["id"] for c in (last_sent or {}).get("comments", [])}
    sent_attachments = {a["id"] for a in (last_sent or {}).get("attachments", [])}
    return OutgoingChanges(
        fields=fields,
        comment_ids=tuple(c["id"] for c in replica["comments"] if c["id"] not in sent_comments),
        attachment_ids=tuple(
            a["id"] for a in replica["attachments"] if a["id"] not in sent_attachments
        ),
    )


@dataclass
class IncomingPlan:
    """What applying one incoming replica does on this side.

    ``create``: the local entity does not exist yet; ``fields``: field → value to set;
    ``comments`` / ``attachments``: remote items to add (in replica order), those already
    mirrored left out.
    """

    create: bool
    fields: dict[str, str] = field(default_factory=dict)
    comments: list[dict] = field(default_factory=list)
    attachments: list[dict] = field(default_factory=list)


def incoming_plan(
    replica: dict,
    *,
    changed: list[str] | tuple[str, ...],
    has_local_entity: bool,
    known: dict[str, str | None],
    mirrored_comment_ids: set[str],
    mirrored_attachment_ids: set[str],
) -> IncomingPlan:
    """Plan the local writes for ``replica`` (already validated).

    First sync (``has_local_entity`` False): create with summary and description. Later:
    set only the fields the sender marked ``changed`` (changed on its side since both
    last agreed) whose value differs from ``known``, so an unchanged field never
    overwrites a local edit on its way to the other side. Comments (public only) and
    attachments are planned unless their remote id is already mirrored.
    """
    if not has_local_entity:
        fields = {f: replica[f] for f in SYNCED_FIELDS}
    else:
        fields = {
            f: replica[f] for f in SYNCED_FIELDS if f in changed and replica[f] != known.get(f)
        }
    return IncomingPlan(
        create=not has_local_entity,
        fields=fields,
        comments=[
            c
            for c in replica["comments"]
            if c.get("public") and c["id"] not in mirrored_comment_ids
        ],
        attachments=[a for a in replica["attachments"] if a["id"] not in mirrored_attachment_ids],
    )


def _norm(text: str) -> str:
    return " ".join((text or "").split())


def comment_matches(local_comment: dict, *, body: str, author: str) -> bool:
    """Whether a local replica comment (``{"author", "body", ...}``) is the copy of a remote
    comment (``body`` by ``author``).

    Used after a crash to adopt the comment a previous attempt already wrote instead of
    adding it twice. The adapter writes the original body with the author's name added
    (its format is its own; it may also read the name back as the comment's author), so a
    local comment matches when, whitespace-normalised, its author and text together
    contain the whole original body and the author's name.
    """
    local_body = f"{local_comment.get('author', '')}\n{local_comment.get('body', '')}"
    local, original = _norm(local_body), _norm(body)
    if not original:
        return _norm(author) in local
    return original in local and (not author or _norm(author) in local)


def attachment_matches(local: dict, *, file_name: str, sha256: str) -> bool:
    """Whether a local attachment (replica item) is the copy of a remote one: same name and sha256."""
    return local.get("sha256") == sha256 and local.get("file_name") == file_name
