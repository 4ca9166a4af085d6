"""Operating a connection from its page and the Errors page (issue 12).

* :func:`connection_rename`: a new name and a description (both rows of a local connection).
* :func:`connection_activated`: after Activate, the changes held while the connection was
  deactivated (queued events, and twins whose change was detected but not read yet) go
  out at once (not at the next drain).
* :func:`connection_check`: a live check of the remote node: reachable, the same
  connection there (it verified our signature with the shared secret), round-trip time.
* :func:`errors_resolve`: Resolve, or Resolve and retry, on many errors at once.
"""

from __future__ import annotations

import time

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from connections.models import Connection

from .. import nudge
from ..models import ConnectionDescription, SyncError, SyncEvent, Twin
from .base import OPEN_EVENT_STATUSES, SyncRefused

CHECK_PATH = "/api/node/v1/sync/check"


def connection_rename(
    *, connection: Connection, name: str, description: str = "", requested_by: str = ""
) -> Connection:
    """Rename ``connection`` and set its description. Raises SyncRefused for an empty or
    too long name (100 characters) or description (2000)."""
    name = (name or "").strip()
    description = (description or "").strip()
    if not name:
        raise SyncRefused("A connection needs a name.")
    if len(name) > 100:
        raise SyncRefused("A connection's name has at most 100 characters.")
    if len(description) > 2000:
        raise SyncRefused("A description has at most 2000 characters.")
    old = connection.name
    with transaction.atomic():
        Connection.objects.filter(pk=connection.pk).update(name=name, updated_at=timezone.now())
        ConnectionDescription.objects.update_or_create(
            connection=connection, defaults={"description": description}
        )
    if old != name:
        try:
            from audit.services import audit_record

            audit_record(
                actor=requested_by or "system", action="renamed", target=name, detail=f"was {old}"
            )
        except Exception:  # noqa: BLE001 - no audit app yet, or it failed: never stops this
            pass
    connection.refresh_from_db()
    return connection


def connection_description(connection: Connection) -> str:
    """The connection's description ('' when none)."""
    row = ConnectionDescription.objects.filter(connection=connection).first()
    return row.description if row else ""


def connection_activated(*, connection: Connection) -> int:
    """Send what was held while ``connection`` was deactivated, now: every open event of it
    (and of its local peer row) is due at once, every twin marked for a scan is scanned,
    and delivery and apply are nudged. Returns the number of held changes."""
    ids = [connection.pk]
    if connection.type == Connection.Type.LOCAL and connection.local_peer_id:
        ids.append(connection.local_peer_id)
    now = timezone.now()
    with transaction.atomic():
        held = SyncEvent.objects.filter(connection_id__in=ids, status__in=OPEN_EVENT_STATUSES)
        count = held.update(next_attempt_at=now)
        twin_ids = set(
            held.filter(direction=SyncEvent.Direction.IN)
            .values_list("twin_id", flat=True)
            .distinct()[:500]
        )
        marked = list(
            Twin.objects.filter(connection_id__in=ids, scan_requested__gt=F("scan_done"))
            .exclude(local_entity_id="")
            .values_list("pk", flat=True)[:5000]
        )
        Twin.objects.filter(pk__in=marked).update(scan_nudged_at=now)
        for tid in marked:
            nudge.scan(tid)
        for cid in ids:
            nudge.deliver(cid)
        for tid in twin_ids:
            nudge.apply(tid)
    return count + len(marked)


def connection_check(*, connection: Connection) -> dict:
    """Ask the remote node of ``connection`` whether it answers, now.

    Returns ``{"ok": bool, "reachable": bool, "same_connection": bool, "rtt_ms": float |
    None, "remote_status": str, "message": str}`` (``message`` in an admin's words). A
    local connection answers from this node; a remote node without URL cannot be called
    (it polls this node): the answer says when it last did.
    """
    result = {
        "ok": False,
        "reachable": False,
        "same_connection": False,
        "rtt_ms": None,
        "remote_status": "",
        "message": "",
    }
    if connection.type == Connection.Type.LOCAL:
        peer = connection.local_peer
        result.update(
            ok=peer is not None,
            reachable=True,
            same_connection=peer is not None,
            rtt_ms=0.0,
            remote_status=peer.status if peer else "",
            message="Both ends are on this node." if peer else "The local peer row is missing.",
        )
        return result
    if not connection.remote_url:
        from ..models import ConnectionSyncState

        state = ConnectionSyncState.objects.filter(connection=connection).first()
        last = connection.last_synced_at or (state.last_poll_at if state else None)
        result["message"] = (
            "The remote node has no URL, so this node cannot call it: it polls this node"
            + (f" (last exchange {timezone.localtime(last):%Y-%m-%d %H:%M:%S})." if last else ".")
        )
        return result
    from connections.transport import NodeRequestRejected, NodeTransportError, node_request

    started = time.monotonic()
    try:
        response = node_request(connection, "POST", CHECK_PATH, json={"protocol": 1}, timeout=10)
        answer = response.json()
    except NodeRequestRejected as exc:
        result.update(
            reachable=True,
            rtt_ms=round((time.monotonic() - started) * 1000, 1),
            message=(
                f"The remote node answers but refuses this connection ({exc.status}): {exc}"
                if exc.status in (401, 403)
                else f"The remote node answered {exc.status}: {exc}"
            ),
        )
        return result
    except NodeTransportError as exc:
        result["message"] = f"The remote node does not answer: {exc}"
        return result
    except ValueError:
        result.update(
            reachable=True, message="The remote node answered with something that is not JSON."
        )
        return result
    rtt = round((time.monotonic() - started) * 1000, 1)
    same = isinstance(answer, dict) and answer.get("connection") == str(connection.pk)
    status = str(answer.get("status", "")) if isinstance(answer, dict) else ""
    result.update(
        reachable=True,
        same_connection=same,
        rtt_ms=rtt,
        remote_status=status,
        ok=same and status in ("active", "error"),
    )
    if not same:
        result["message"] = "The remote node answers, but for another connection."
    elif status == "deactivated":
        result["message"] = f"The remote node answers in {rtt} ms; its end is deactivated."
    else:
        result["message"] = f"The remote node answers in {rtt} ms; its end is {status}."
    return result


def errors_resolve(*, error_ids: list[int], retry: bool = False, requested_by: str = "") -> int:
    """Resolve (``retry``: and retry) the open errors ``error_ids``; returns how many.

    Each error is resolved on its own (one that cannot be retried never stops the others).
    """
    from .failures import error_resolve, error_retry

    done = 0
    for error in SyncError.objects.filter(
        pk__in=list(error_ids)[:1000], resolved_at__isnull=True
    ).select_related("connection", "twin"):
        if retry:
            error_retry(error=error, requested_by=requested_by)
        else:
            error_resolve(error=error, requested_by=requested_by)
        done += 1
    if done:
        try:
            from audit.services import audit_record

            audit_record(
                actor=requested_by or "system",
                action="retried" if retry else "resolved",
                target=f"{done} error(s)",
            )
        except Exception:  # noqa: BLE001
            pass
    return done
