"""Reads of the Sync queue page and API: four tabs, statuses in words, keyset pagination.

The tabs are Exalate's: *Outgoing sync* and *Incoming sync* (the change events of twins,
acknowledgements left out: they are the other node's receipts, not work), *Outgoing
attachments* (attachments our outgoing changes carry, which the remote node fetches or
we push) and *Incoming attachments* (each remote attachment of a twin and what became of
it, ``sync.models.AttachmentState``).

Statuses as an admin reads them:

=================  ===========================================================
``held``           held while the connection is deactivated (also a twin whose
                   change was detected but is not read before Activate)
``queued``         waiting for its turn (or for its next attempt after a failure)
``in_progress``    being delivered or applied
``waiting``        delivered, waiting for the other side to apply it
``failed``         failed for good: see the Errors page
``done``           done
=================  ===========================================================

Pagination is by keyset (``before``: the smallest id on the page before), newest first,
so a page costs the same with 100,000 events as with 100.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F, Q
from django.utils import timezone

from connections.models import Connection

from .models import AttachmentState, SyncEvent, Twin

TABS = {
    "outgoing": "Outgoing sync",
    "incoming": "Incoming sync",
    "outgoing-attachments": "Outgoing attachments",
    "incoming-attachments": "Incoming attachments",
}
STATUSES = {
    "held": "Held while deactivated",
    "queued": "Queued",
    "in_progress": "In progress",
    "waiting": "Waiting for the other side",
    "failed": "Failed",
    "done": "Done",
}
#: Rows per page.
PAGE = 50

_OPEN = (SyncEvent.Status.QUEUED, SyncEvent.Status.IN_PROGRESS)
_HELD_CONNECTION = Connection.Status.DEACTIVATED


@dataclass
class QueueFilter:
    """Checked filters of the Sync queue (see :func:`queue_filter_parse`)."""

    tab: str = "outgoing"
    connection_id: str = ""
    key: str = ""
    status: str = ""  # '' = everything not done
    before: int | None = None


def queue_filter_parse(params) -> tuple[QueueFilter, list[str]]:
    """Read the Sync queue's query parameters; nonsense is dropped and said (messages)."""
    problems: list[str] = []
    f = QueueFilter()
    legacy = {"out": "outgoing", "in": "incoming"}.get(params.get("direction", ""), "outgoing")
    tab = params.get("tab", legacy) or legacy  # ?direction=in|out: the page's older links
    if tab in TABS:
        f.tab = tab
    else:
        problems.append(f"There is no tab “{tab[:40]}”: showing Outgoing sync.")
    status = params.get("status", "") or ""
    if status in STATUSES or status in ("", "all"):
        f.status = status
    else:
        problems.append(f"“{status[:40]}” is not a status: showing every open event.")
    conn = (params.get("connection", "") or "").strip()
    if conn:
        if Connection.objects.filter(pk=conn).exists() if _is_uuid(conn) else False:
            f.connection_id = conn
        else:
            problems.append("That connection does not exist on this node: showing all connections.")
    key = (params.get("key", "") or "").strip()
    if len(key) > 64:
        problems.append("A key has at most 64 characters: the key filter is ignored.")
    else:
        f.key = key
    before = params.get("before", "") or ""
    if before:
        if before.isdigit() and len(before) < 19:
            f.before = int(before)
        else:
            problems.append("The page marker is not valid: showing the first page.")
    return f, problems


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _twin_ids_for_key(key: str):
    upper = key.upper()
    return Twin.objects.filter(
        Q(local_key=upper)
        | Q(remote_key=upper)
        | Q(local_key=key)
        | Q(remote_key=key)
        | Q(local_entity_id=key)
        | Q(remote_entity_id=key)
    ).values("pk")


def _event_status(e: dict) -> str:
    status = e["status"]
    if status in _OPEN and e["connection__status"] == _HELD_CONNECTION:
        return "held"
    return {
        SyncEvent.Status.QUEUED: "queued",
        SyncEvent.Status.IN_PROGRESS: "in_progress",
        SyncEvent.Status.SENT: "waiting",
        SyncEvent.Status.ERROR: "failed",
        SyncEvent.Status.DONE: "done",
    }.get(status, status)


_ALL = [
    SyncEvent.Status.QUEUED,
    SyncEvent.Status.IN_PROGRESS,
    SyncEvent.Status.SENT,
    SyncEvent.Status.ERROR,
    SyncEvent.Status.DONE,
]
#: Per status filter: the event statuses it covers and whether the connection must be
#: deactivated (True), must not be (False) or either (None).
_STATUS_PARTS = {
    "": (_ALL[:4], None),
    "all": (_ALL, None),
    "held": (list(_OPEN), True),
    "queued": ([SyncEvent.Status.QUEUED], False),
    "in_progress": ([SyncEvent.Status.IN_PROGRESS], False),
    "waiting": ([SyncEvent.Status.SENT], None),
    "failed": ([SyncEvent.Status.ERROR], None),
    "done": ([SyncEvent.Status.DONE], None),
}


def _event_label(e: dict) -> str:
    kind = e["kind"]
    if kind == SyncEvent.Kind.UNEXALATE:
        return "Unexalate"
    changed = e.get("changed") or []
    fields = ", ".join(str(c) for c in changed) if isinstance(changed, list) else ""
    return f"Change ({fields})" if fields else "Change"


def queue_page(
    *,
    tab: str = "outgoing",
    connection_id: str = "",
    key: str = "",
    status: str = "",
    before: int | None = None,
    limit: int = PAGE,
) -> dict:
    """One page of a Sync queue tab: ``{"rows": [...], "next_before": id | None}``.

    Each row: ``id``, ``event`` (in words), ``status`` (a key of :data:`STATUSES`),
    ``status_label``, ``connection`` (name), ``connection_id``, ``twin_id``,
    ``local_key``, ``remote_key``, ``attempts``, ``next_attempt_at`` (only when an attempt
    is planned), ``last_error``, ``created_at``. Newest first; ``next_before`` is the
    marker of the next (older) page.
    """
    if tab in ("outgoing-attachments", "incoming-attachments"):
        return _attachment_page(
            tab=tab,
            connection_id=connection_id,
            key=key,
            status=status,
            before=before,
            limit=limit,
        )
    direction = SyncEvent.Direction.OUT if tab == "outgoing" else SyncEvent.Direction.IN
    base = SyncEvent.objects.filter(direction=direction).exclude(kind=SyncEvent.Kind.ACK)
    if connection_id:
        base = base.filter(connection_id=connection_id)
    statuses, held = _STATUS_PARTS[status]
    if key:
        # The key's few twins first, as a list: their events are then read through the
        # twin index, and one query covers every status (a twin has few events).
        twin_ids = list(_twin_ids_for_key(key).values_list("pk", flat=True)[:100])
        base = base.filter(twin_id__in=twin_ids)
        statuses = [statuses]
    if before:
        base = base.filter(pk__lt=before)
    if held is True:
        base = base.filter(connection__status=_HELD_CONNECTION)
    elif held is False:
        base = base.exclude(connection__status=_HELD_CONNECTION)
    # One query per status, each read newest first along the (direction, status, id)
    # index, merged here: a sort of every open event is never needed.
    rows_raw = []
    for st in statuses:
        rows_raw += list(
            base.filter(**({"status__in": st} if isinstance(st, list) else {"status": st}))
            .order_by("-pk")
            .annotate(changed=F("payload__changed"))
            .values(
                "pk",
                "kind",
                "direction",
                "status",
                "attempts",
                "next_attempt_at",
                "last_error",
                "created_at",
                "connection_id",
                "twin_id",
                "connection__name",
                "connection__status",
                "twin__local_key",
                "twin__remote_key",
                "changed",
            )[: limit + 1]
        )
    rows_raw.sort(key=lambda e: -e["pk"])
    rows_raw = rows_raw[: limit + 1]
    now = timezone.now()
    rows = []
    for e in rows_raw[:limit]:
        st = _event_status(e)
        planned = (
            st in ("queued", "in_progress")
            and e["next_attempt_at"]
            and (e["attempts"] > 0 or e["next_attempt_at"] > now)
        )
        rows.append(
            {
                "id": e["pk"],
                "event": _event_label(e),
                "status": st,
                "status_label": STATUSES.get(st, st),
                "connection": e["connection__name"],
                "connection_id": str(e["connection_id"]),
                "twin_id": e["twin_id"],
                "local_key": e["twin__local_key"],
                "remote_key": e["twin__remote_key"],
                "attempts": e["attempts"],
                "next_attempt_at": e["next_attempt_at"] if planned else None,
                "last_error": e["last_error"],
                "created_at": e["created_at"],
            }
        )
    if tab == "outgoing" and status in ("", "held", "all") and not before:
        rows = _held_scans(connection_id, key) + rows
    return {
        "rows": rows,
        "next_before": rows_raw[limit - 1]["pk"] if len(rows_raw) > limit else None,
    }


def _held_scans(connection_id: str, key: str) -> list[dict]:
    """Twins of deactivated connections whose change was detected but is not read yet."""
    held = list(Connection.objects.filter(status=_HELD_CONNECTION).values_list("pk", flat=True))
    if not held:
        return []
    qs = Twin.objects.filter(connection_id__in=held, scan_requested__gt=F("scan_done")).exclude(
        local_entity_id=""
    )
    if connection_id:
        qs = qs.filter(connection_id=connection_id)
    if key:
        qs = qs.filter(pk__in=_twin_ids_for_key(key))
    return [
        {
            "id": None,
            "event": "Change detected (read on Activate)",
            "status": "held",
            "status_label": STATUSES["held"],
            "connection": t.connection.name,
            "connection_id": str(t.connection_id),
            "twin_id": t.pk,
            "local_key": t.local_key,
            "remote_key": t.remote_key,
            "attempts": 0,
            "next_attempt_at": None,
            "last_error": "",
            "created_at": t.updated_at,
        }
        for t in qs.select_related("connection").defer("connection__secret").order_by("-pk")[:PAGE]
    ]


_ATTACHMENT_STATUS = {
    AttachmentState.State.PENDING: "queued",
    AttachmentState.State.MIRRORED: "done",
    AttachmentState.State.REFUSED: "failed",
    AttachmentState.State.TOO_LARGE: "failed",
    AttachmentState.State.SKIPPED: "failed",
}


def _attachment_page(*, tab, connection_id, key, status, before, limit) -> dict:
    if tab == "incoming-attachments":
        qs = AttachmentState.objects.all()
        if connection_id:
            qs = qs.filter(twin__connection_id=connection_id)
        if key:
            qs = qs.filter(twin_id__in=_twin_ids_for_key(key))
        wanted = [s for s, v in _ATTACHMENT_STATUS.items() if v == status]
        if status == "":
            qs = qs.exclude(state=AttachmentState.State.MIRRORED)
        elif status != "all":
            qs = qs.filter(state__in=wanted)
        if before:
            qs = qs.filter(pk__lt=before)
        raw = list(
            qs.order_by("-pk").values(
                "pk",
                "file_name",
                "state",
                "reason",
                "updated_at",
                "twin_id",
                "twin__local_key",
                "twin__remote_key",
                "twin__connection_id",
                "twin__connection__name",
                "twin__connection__status",
            )[: limit + 1]
        )
        rows = []
        for a in raw[:limit]:
            st = _ATTACHMENT_STATUS.get(a["state"], "queued")
            if st == "queued" and a["twin__connection__status"] == _HELD_CONNECTION:
                st = "held"
            rows.append(
                {
                    "id": a["pk"],
                    "event": f"Attachment {a['file_name']}",
                    "status": st,
                    "status_label": STATUSES[st],
                    "connection": a["twin__connection__name"],
                    "connection_id": str(a["twin__connection_id"]),
                    "twin_id": a["twin_id"],
                    "local_key": a["twin__local_key"],
                    "remote_key": a["twin__remote_key"],
                    "attempts": None,
                    "next_attempt_at": None,
                    "last_error": a["reason"],
                    "created_at": a["updated_at"],
                }
            )
        return {"rows": rows, "next_before": raw[limit - 1]["pk"] if len(raw) > limit else None}
    # Outgoing attachments: those our outgoing changes carry (new_attachments).
    page = queue_page(
        tab="outgoing",
        connection_id=connection_id,
        key=key,
        status=status,
        before=before,
        limit=limit * 4,
    )
    ids = [r["id"] for r in page["rows"] if r["id"]]
    payloads = dict(
        SyncEvent.objects.filter(pk__in=ids)
        .exclude(payload__new_attachments=[])
        .filter(payload__has_key="new_attachments")
        .values_list("pk", "payload")
    )
    rows = []
    for r in page["rows"]:
        payload = payloads.get(r["id"])
        if not payload:
            continue
        names = {
            a.get("id"): a.get("file_name", a.get("id"))
            for a in (payload.get("replica") or {}).get("attachments", [])
            if isinstance(a, dict)
        }
        for att in payload.get("new_attachments") or []:
            rows.append({**r, "event": f"Attachment {names.get(att, att)}"})
    return {"rows": rows[: limit * 2], "next_before": page["next_before"]}
