"""Connect: link a local entity to an existing remote one by its key (Exalate's Connect).

No entity is created: both incidents exist already, and the first sync is an *update* of
the remote one with this side's values (summary, description, comments, attachments),
after which both sides sync as any twin does. The remote incident's summary and
description are recorded as agreed when it is linked, so they are not sent back and
cannot race the first sync (the initiating side wins, as in Exalate's Connect); its
comments and attachments go across, so both incidents end with all of them.
:func:`entity_connect` (the admin's
side) looks the local key up in this node's instance, then asks the remote node to look
its key up (:func:`connect_answer` there, reached over the signed node API
``POST /api/node/v1/sync/connect``, or directly for a local connection). Both nodes
refuse when either incident is already twinned on that connection.

The remote node is asked synchronously, so the twin is Active (queued for its first
sync) as soon as :func:`entity_connect` returns; a remote node without URL cannot be
asked (it polls this node): Connect from that node instead.
"""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.db.models import Q

from connections.models import Connection
from connections.selectors import tracker_adapter_class_get, tracker_adapter_get
from trackers.errors import AmbiguousEntityKey, TrackerError, TrackerNotFound
from trackers.interface import EntityRef, TrackerAdapter
from trackers.replica import ReplicaInvalid, replica_validate

from ..models import Twin
from .base import SyncRefused, state_for, twin_status_refresh
from .detect import twin_request_scan
from .unexalate import live_twins

logger = logging.getLogger(__name__)

CONNECT_PATH = "/api/node/v1/sync/connect"


def _find_local(key: str, *, where: str) -> tuple[EntityRef, TrackerAdapter]:
    """This node's entity ``key`` and the adapter that found it (its next read of the
    entity reuses the lookup's row). Raises SyncRefused in admin words."""
    label = tracker_adapter_class_get().entity_label
    try:
        adapter = tracker_adapter_get()
        return adapter.find_entity(key), adapter
    except TrackerNotFound:
        raise SyncRefused(f"There is no {label} {key} in {where} instance.") from None
    except AmbiguousEntityKey as exc:
        raise SyncRefused(
            f"{len(exc.candidates)} {label}s have number {key} in {where} instance: "
            "numbers are not unique there."
        ) from None
    except TrackerError as exc:
        raise SyncRefused(f"{where.capitalize()} instance could not be asked: {exc}") from None


def _twinned(connection: Connection, **lookup) -> Twin | None:
    return Twin.objects.filter(connection=connection, **lookup).filter(live_twins()).first()


def entity_connect(
    *, connection: Connection, local_key: str, remote_key: str, requested_by: str = ""
) -> Twin:
    """Link local entity ``local_key`` to the remote node's existing entity ``remote_key``.

    Returns the new twin (Queued: its first sync, an update of the remote incident, is on
    its way). Raises SyncRefused (admin words) when a key is malformed or does not exist
    (on either side), either incident is already twinned on ``connection`` (on either
    node), the connection is not Active, or its remote node cannot be asked (no URL, or
    unreachable). Nothing is written when it refuses.
    """
    cls = tracker_adapter_class_get()
    local_key = cls.normalize_key((local_key or "").strip())
    remote_key = (remote_key or "").strip()
    problem = cls.key_problem(local_key)
    if problem:
        raise SyncRefused(problem)
    if not remote_key or len(remote_key) > 64:
        raise SyncRefused("Enter the remote incident's number (at most 64 characters).")
    if connection.status != Connection.Status.ACTIVE:
        raise SyncRefused(
            f"Connection {connection.name} is {connection.get_status_display().lower()}: "
            "only an active connection can connect incidents."
        )
    if connection.type != Connection.Type.LOCAL and not connection.remote_url:
        raise SyncRefused(
            f"The remote node of {connection.name} has no URL (it polls this node), so this "
            "node cannot ask it for its incident: Connect from the remote node instead."
        )
    twin = _twinned(connection, local_key=local_key)
    if twin:
        raise SyncRefused(
            f"{local_key} is already twinned on {connection.name} (with "
            f"{twin.remote_key or 'a remote incident'}): unexalate it first."
        )
    twin = _twinned(connection, remote_key=remote_key)
    if twin:
        raise SyncRefused(
            f"The remote incident {remote_key} is already twinned on {connection.name} "
            f"(with {twin.local_key or 'an incident here'}): unexalate it first."
        )
    ref, _adapter = _find_local(local_key, where="this node's")
    twin = _twinned(connection, local_entity_id=ref.id)
    if twin:
        raise SyncRefused(f"{ref.key} is already twinned on {connection.name}: unexalate it first.")
    remote = _ask_remote(
        connection, key=remote_key, entity={"id": ref.id, "key": ref.key, "url": ref.url}
    )
    try:
        with transaction.atomic():
            twin = Twin.objects.create(
                connection=connection,
                local_entity_id=ref.id,
                local_key=ref.key,
                local_url=ref.url,
                remote_entity_id=remote["id"],
                remote_key=remote["key"],
                remote_url=remote["url"][:1000] if remote["url"].startswith("http") else "",
            )
            state_for(connection)
            twin_request_scan(twin_ids=[twin.pk])
            twin_status_refresh(twin.pk)
    except IntegrityError:
        raise SyncRefused(
            f"{ref.key} or the remote incident {remote_key} was twinned on {connection.name} "
            "a moment ago."
        ) from None
    _audit(requested_by, connection, f"{ref.key} ↔ {remote['key']}")
    return Twin.objects.get(pk=twin.pk)


def _ask_remote(connection: Connection, *, key: str, entity: dict) -> dict:
    """The remote node's entity ``{id, key, url}`` with key ``key``, twinned to ``entity``."""
    if connection.type == Connection.Type.LOCAL:
        if connection.local_peer is None:
            raise SyncRefused("The local connection has no peer row.")
        return connect_answer(connection=connection.local_peer, key=key, remote=entity)["entity"]
    from connections.transport import NodeRequestRejected, NodeTransportError, node_request

    try:
        response = node_request(
            connection, "POST", CONNECT_PATH, json={"protocol": 1, "key": key, "entity": entity}
        )
        answer = response.json()
    except NodeRequestRejected as exc:
        raise SyncRefused(f"The remote node refused: {exc}") from None
    except NodeTransportError as exc:
        raise SyncRefused(f"The remote node could not be asked: {exc}") from None
    except ValueError:
        raise SyncRefused("The remote node answered with something that is not JSON.") from None
    ent = answer.get("entity") if isinstance(answer, dict) else None
    if not isinstance(ent, dict) or not all(
        isinstance(ent.get(k), str) for k in ("id", "key", "url")
    ):
        raise SyncRefused("The remote node's answer names no incident.")
    if not ent["id"] or len(ent["id"]) > 64 or len(ent["key"]) > 64:
        raise SyncRefused("The remote node's answer names no incident.")
    return ent


def connect_answer(*, connection: Connection, key: str, remote: dict) -> dict:
    """The remote side of Connect: twin this node's entity ``key`` with the asking node's
    entity ``remote`` (``{id, key, url}``). Returns ``{"entity": {id, key, url}}``.

    This side's summary and description are recorded as agreed, so the asking node's
    values win the first sync and only later edits here travel back; this side's comments
    and attachments are scanned at once and go across (both incidents end with all of
    them, nothing dropped).
    Idempotent (the same pair again answers the same). Raises SyncRefused when the
    connection is not Active here, ``key`` does not exist or cannot be read here, or
    either entity is already twinned on this connection.
    """
    if connection.status not in (Connection.Status.ACTIVE, Connection.Status.ERROR):
        raise SyncRefused(
            f"Connection {connection.name} is {connection.get_status_display().lower()} on "
            "the remote node."
        )
    cls = tracker_adapter_class_get()
    key = cls.normalize_key((key or "").strip())
    problem = cls.key_problem(key)
    if problem:
        raise SyncRefused(problem)
    ref, adapter = _find_local(key, where="the remote node's")
    same = Twin.objects.filter(
        connection=connection, local_entity_id=ref.id, remote_entity_id=remote["id"]
    ).first()
    if same:
        return {"entity": {"id": ref.id, "key": ref.key, "url": ref.url}}
    taken = (
        Twin.objects.filter(connection=connection)
        .filter(Q(local_entity_id=ref.id) | Q(remote_entity_id=remote["id"]))
        .first()
    )
    if taken:
        which = ref.key if taken.local_entity_id == ref.id else remote.get("key") or "that incident"
        raise SyncRefused(
            f"{which} is already twinned on the remote node: unexalate it there first."
        )
    try:
        local = replica_validate(adapter.read_replica(ref.id))
    except (TrackerError, ReplicaInvalid) as exc:
        raise SyncRefused(f"{ref.key} could not be read on the remote node: {exc}") from None
    try:
        with transaction.atomic():
            twin = Twin.objects.create(
                connection=connection,
                local_entity_id=ref.id,
                local_key=ref.key,
                local_url=ref.url,
                remote_entity_id=remote["id"],
                remote_key=str(remote.get("key", ""))[:64],
                remote_url=str(remote.get("url", ""))[:1000]
                if str(remote.get("url", "")).startswith(("http://", "https://"))
                else "",
                # Agreed as they are: the asking side's summary and description win the
                # first sync, this side's are never sent (issue 12: the first scans raced).
                known_summary=local["summary"],
                known_description=local["description"],
            )
            state_for(connection)
            twin_request_scan(twin_ids=[twin.pk])  # its comments and attachments go across
            twin_status_refresh(twin.pk)
    except IntegrityError:
        raise SyncRefused(f"{ref.key} was twinned on the remote node a moment ago.") from None
    return {"entity": {"id": ref.id, "key": ref.key, "url": ref.url}}


def _audit(actor: str, connection: Connection, target: str) -> None:
    try:
        from audit.services import audit_record
    except ImportError:
        return
    try:
        audit_record(
            actor=actor or "system", action="connected", target=target, detail=connection.name
        )
    except Exception:  # noqa: BLE001
        logger.exception("Could not record a connect in the audit log")
