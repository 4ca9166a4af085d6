"""Reads that the sync pages and the REST API need (no writes, no remote calls)."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Reverse
from django.shortcuts import get_object_or_404

from connections.models import Connection

from .models import ExalateRequest, SyncError, SyncEvent, Twin, TwinEnding
from .queue_selectors import STATUSES, TABS, queue_filter_parse, queue_page  # noqa: F401
from .rules import BASIC_RULES
from .services.unexalate import live_twins

#: Transient retries at or above this many attempts are listed as warnings on the Errors page.
RETRY_WARNING_ATTEMPTS = 5


def twin_get(twin_id: int) -> Twin:
    """The twin with its connection; Http404 when absent."""
    return get_object_or_404(Twin.objects.select_related("connection"), pk=twin_id)


def exalate_request_get(request_id) -> ExalateRequest:
    """The exalate request with its connection and twin; Http404 when absent."""
    return get_object_or_404(
        ExalateRequest.objects.select_related("connection", "twin"), pk=request_id
    )


def _starts_with(name: str, value: str) -> Q:
    """``name`` starts with ``value`` (case as given), read from ``name``'s index on both
    back ends: a range ``value <= name < value'`` (the last character bumped) narrows the
    index, ``startswith`` keeps it exact. A value ending in punctuation gets no range
    (PostgreSQL's collations ignore punctuation when they order: the range could miss)."""
    q = Q(**{f"{name}__startswith": value})
    if value[-1:].isalnum():
        upper = value[:-1] + chr(ord(value[-1]) + 1)
        q &= Q(**{f"{name}__gte": value, f"{name}__lt": upper})
    return q


def _twin_query(query: str) -> tuple[Q, dict]:
    """Twins matching ``query`` and the aliases the filter needs: an exact number or sys_id
    on either side, else the start or the end of a number on either side (``INC00100``
    and ``10005`` both find INC0010005; numbers are compared upper-case). Every branch
    reads an index: the numbers, the sys_ids, and the reversed numbers (an end is a start
    of the reversed number: ``sync_twin_local_key_rev_idx``), so no search scans the twins."""
    upper = query.upper()
    exact = (
        Q(local_key=upper)
        | Q(remote_key=upper)
        | Q(local_key=query)
        | Q(remote_key=query)
        | Q(local_entity_id=query)
        | Q(remote_entity_id=query)
    )
    if Twin.objects.filter(exact).exists():
        return exact, {}
    backwards = upper[::-1]
    partial = (
        _starts_with("local_key", upper)
        | _starts_with("remote_key", upper)
        | _starts_with("local_key_reversed", backwards)
        | _starts_with("remote_key_reversed", backwards)
    )
    return partial, {
        "local_key_reversed": Reverse("local_key"),
        "remote_key_reversed": Reverse("remote_key"),
    }


def _twins_matching(qs: QuerySet[Twin], query: str) -> QuerySet[Twin]:
    """``qs`` narrowed to the twins :func:`_twin_query` finds for ``query``."""
    condition, aliases = _twin_query(query)
    return qs.alias(**aliases).filter(condition)


def twin_search(*, query: str = "", connection_id=None, limit: int = 50) -> QuerySet[Twin]:
    """Live twins (not unexalated) matching ``query`` (all when empty), newest first."""
    qs = _twins_with_connection().filter(live_twins())
    query = (query or "").strip()
    if query:
        qs = _twins_matching(qs, query)
    if connection_id:
        qs = qs.filter(connection_id=connection_id)
    return qs.order_by("-id")[:limit]


def _twins_with_connection() -> QuerySet[Twin]:
    """Twins with their connection's name and status (its secret is not read: decrypting
    it for every row would cost more than the page)."""
    return Twin.objects.select_related("connection").defer(
        "connection__secret", "last_sent_replica", "last_received_replica"
    )


def twin_page(*, query: str = "", connection_id=None, before: int | None = None, limit: int = 25):
    """One page of recent twins for Entity sync status: ``(twins, next_before)``.

    Keyset pagination on the id (newest first): ``before`` is the last id of the page
    before; ``next_before`` is None on the last page.
    """
    qs = _twins_with_connection().filter(live_twins())
    query = (query or "").strip()
    if query:
        qs = _twins_matching(qs, query)
    if connection_id:
        qs = qs.filter(connection_id=connection_id)
    if before:
        qs = qs.filter(pk__lt=before)
    twins = list(qs.order_by("-id")[: limit + 1])
    return twins[:limit], (twins[limit - 1].pk if len(twins) > limit else None)


def entity_lookup(query: str) -> list[dict]:
    """Look an incident up by number or sys_id on this node: one row per connection that
    can sync it, ``{"connection", "twin" (or None)}``; a connection where it is not
    twinned offers Exalate and Connect. Empty when ``query`` is empty."""
    query = (query or "").strip()
    if not query:
        return []
    upper = query.upper()
    twins = {
        t.connection_id: t
        for t in _twins_with_connection()
        .filter(live_twins())
        .filter(Q(local_key=upper) | Q(local_key=query) | Q(local_entity_id=query))
    }
    rows = [{"connection": t.connection, "twin": t} for t in twins.values()]
    for connection in light_connections():
        if connection.pk not in twins:
            rows.append({"connection": connection, "twin": None})
    return rows


def twin_ending(twin: Twin):
    """The twin's Unexalate request (a :class:`~sync.models.TwinEnding`) or None."""
    return TwinEnding.objects.filter(twin=twin).first()


def twin_events(twin: Twin, *, limit: int = 30) -> list[SyncEvent]:
    """The twin's latest events, newest first."""
    return list(twin.events.order_by("-id")[:limit])


def twin_open_errors(twin: Twin) -> list[SyncError]:
    """The twin's unresolved errors, newest first."""
    return list(twin.errors.filter(resolved_at__isnull=True).order_by("-id"))


def twin_pending_retry(twin: Twin) -> SyncEvent | None:
    """The twin's event waiting for a retry after a transient failure (with its last error), if any."""
    return (
        twin.events.filter(status=SyncEvent.Status.QUEUED, attempts__gt=0)
        .exclude(last_error="")
        .order_by("id")
        .first()
    )


def exalatable_connections() -> QuerySet[Connection]:
    """Active connections, by name: the ones an incident can be exalated on."""
    return (
        Connection.objects.filter(status=Connection.Status.ACTIVE)
        .only("id", "name", "status", "type", "created_at")
        .order_by("name", "created_at")
    )


def errors_open(*, level: str | None = None) -> QuerySet[SyncError]:
    """Open (unresolved) errors, newest first, with their connection, twin and event (their
    secret, replicas and payload are not read: decoding them for every row would cost more
    than the page)."""
    qs = (
        SyncError.objects.filter(resolved_at__isnull=True)
        .select_related("connection", "twin", "event")
        .defer(
            "connection__secret",
            "twin__last_sent_replica",
            "twin__last_received_replica",
            "event__payload",
        )
    )
    if level:
        qs = qs.filter(level=level)
    return qs.order_by("-last_seen_at", "-id")


def retrying_events(*, limit: int = 50) -> QuerySet[SyncEvent]:
    """Events still retrying after many transient failures: warnings, not errors yet."""
    return (
        SyncEvent.objects.filter(
            # Both directions named: the (direction, status, next_attempt_at) index is read.
            direction__in=[SyncEvent.Direction.OUT, SyncEvent.Direction.IN],
            status__in=[SyncEvent.Status.QUEUED, SyncEvent.Status.IN_PROGRESS],
            attempts__gte=RETRY_WARNING_ATTEMPTS,
        )
        .select_related("twin", "connection")
        .order_by("next_attempt_at")[:limit]
    )


def queue_events(
    *, direction: str, status: str = "", connection_id=None, limit: int = 200
) -> QuerySet[SyncEvent]:
    """Events of the Sync queue page: one direction, optionally one status and connection.

    Without a status, open events (not done) come first, then the latest done ones.
    """
    qs = SyncEvent.objects.filter(direction=direction).select_related("twin", "connection")
    if status:
        qs = qs.filter(status=status)
    else:
        qs = qs.exclude(status=SyncEvent.Status.DONE)
    if connection_id:
        qs = qs.filter(connection_id=connection_id)
    return qs.order_by("id")[:limit]


def queue_counts() -> dict[str, dict[str, int]]:
    """``{"out": {status: n}, "in": {status: n}}`` over all events."""
    counts: dict[str, dict[str, int]] = {"out": {}, "in": {}}
    for row in SyncEvent.objects.values("direction", "status").annotate(n=Count("id")):
        counts[row["direction"]][row["status"]] = row["n"]
    return counts


def basic_rules() -> list[tuple[str, str, str]]:
    """The Basic-mode rules as (what, outgoing, incoming) rows, for the read-only rules table.

    The Type row says plainly what happens on a ServiceNow node: incidents stay incidents.
    """
    from connections.selectors import tracker_adapter_class_get

    rows = list(BASIC_RULES)
    cls = tracker_adapter_class_get()
    if tuple(cls.entity_types) == ("incident",):
        rows = [
            (
                what,
                "Sent: incident" if what == "Type" else out,
                "An incident stays an incident: the mirror of a ServiceNow incident is an "
                "incident (a type this instance lacks, e.g. a Jira story, also becomes an incident)"
                if what == "Type"
                else inc,
            )
            for what, out, inc in rows
        ]
    return rows


def webhook_info(request, *, tracker=None) -> dict:
    """The webhook URL this node's tracker calls (ServiceNow: a business rule), for the Entity
    sync status page: ``{"url": ".../api/webhooks/<tracker>/", "interval": seconds}``."""
    from connections.selectors import node_identity_get, tracker_adapter_class_get

    base = node_identity_get().public_url or request.build_absolute_uri("/").rstrip("/")
    name = (tracker or tracker_adapter_class_get()).tracker
    return {"url": f"{base}/api/webhooks/{name}/", "interval": settings.CHANGE_POLL_INTERVAL}


def replica_pretty(replica) -> str:
    """A replica as indented JSON for Show local / remote replica ('' when none); the
    template escapes it."""
    import json

    if not replica:
        return ""
    return json.dumps(replica, indent=2, sort_keys=True, ensure_ascii=False)


#: What an error of each level stops, in an admin's words (Exalate's three levels).
IMPACT = {
    SyncError.Level.ENTITY: "This incident waits; other incidents sync.",
    SyncError.Level.CONNECTION: "Every incident of the connection waits: its queue is paused.",
    SyncError.Level.NODE: "Nothing syncs on this node.",
}


def error_rows(*, level: str | None = None, connection_id=None, limit: int = 200) -> list[dict]:
    """Open errors for the Errors page: ``{"error", "impact", "event", "twin"}`` newest first."""
    qs = errors_open(level=level)
    if connection_id:
        qs = qs.filter(connection_id=connection_id)
    return [
        {"error": e, "impact": IMPACT.get(e.level, ""), "event": e.event, "twin": e.twin}
        for e in qs[:limit]
    ]


def light_connections(*, status: str | None = None) -> list[Connection]:
    """Connections (not pending, or of ``status``) by name, with only id, name and status
    read (no secret decrypted): for menus, filters and notices."""
    qs = Connection.objects.only("id", "name", "status", "type")
    qs = qs.filter(status=status) if status else qs.exclude(status=Connection.Status.PENDING)
    return list(qs.order_by("name"))


def paused_connections() -> list[Connection]:
    """Connections in Error (a connection-level error pauses their outgoing queue)."""
    return light_connections(status=Connection.Status.ERROR)


def twin_mapping_rows(connection: Connection):
    """The local ↔ remote mapping of ``connection`` for the Clean-up tools' CSV, in id order:
    ``(local_key, local_sys_id, remote_key, remote_sys_id, status, last_synced_at)``."""
    return (
        Twin.objects.filter(connection=connection)
        .filter(live_twins())
        .order_by("id")
        .values_list(
            "local_key",
            "local_entity_id",
            "remote_key",
            "remote_entity_id",
            "status",
            "last_synced_at",
        )
        .iterator(chunk_size=2000)
    )
