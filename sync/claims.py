"""Leases on rows, taken with a conditional UPDATE so that one worker process does one piece of work.

A claim sets ``<prefix>claimed_until`` (now + ``SYNC_CLAIM_TTL`` seconds) and
``<prefix>claimed_by`` (``host:pid`` of the worker process) only where the row is
unclaimed or its lease expired, and checks the row count (healthchecks' pattern)::

    UPDATE sync_twin SET claimed_until = :until, claimed_by = :me
     WHERE id = :id AND (claimed_until IS NULL OR claimed_until < :now)

Long work renews the lease (:func:`renew`); a worker that lost its lease stops before
its next write (:class:`ClaimLost`). A worker killed with SIGKILL leaves its lease
behind: :func:`release_dead_claims` frees leases of processes on this host that no
longer exist, so recovery does not wait for the lease to expire; leases of other hosts
expire on their own.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

_HOST = socket.gethostname()[:80]


class ClaimLost(Exception):
    """Our lease on a row expired and another worker may have taken it: stop writing."""


def worker_identity() -> str:
    """``host:pid`` of this process (at most 120 characters)."""
    return f"{_HOST}:{os.getpid()}"


def _fields(prefix: str) -> tuple[str, str]:
    return f"{prefix}claimed_until", f"{prefix}claimed_by"


def claim(model, pk, *, prefix: str = "", ttl: float | None = None) -> bool:
    """Take the lease on row ``pk`` of ``model``; True when this process now holds it."""
    until_f, by_f = _fields(prefix)
    now = timezone.now()
    ttl = settings.SYNC_CLAIM_TTL if ttl is None else ttl
    free = Q(**{f"{until_f}__isnull": True}) | Q(**{f"{until_f}__lt": now})
    return bool(
        model.objects.filter(pk=pk)
        .filter(free)
        .update(**{until_f: now + timedelta(seconds=ttl), by_f: worker_identity()})
    )


def renew(model, pk, *, prefix: str = "", ttl: float | None = None) -> None:
    """Extend our lease on row ``pk``. Raises ClaimLost when this process no longer holds it."""
    until_f, by_f = _fields(prefix)
    ttl = settings.SYNC_CLAIM_TTL if ttl is None else ttl
    updated = model.objects.filter(pk=pk, **{by_f: worker_identity()}).update(
        **{until_f: timezone.now() + timedelta(seconds=ttl)}
    )
    if not updated:
        raise ClaimLost(f"lease on {model.__name__} {pk} was lost")


def release(model, pk, *, prefix: str = "") -> None:
    """Give our lease on row ``pk`` back (no-op when another process holds it)."""
    until_f, by_f = _fields(prefix)
    model.objects.filter(pk=pk, **{by_f: worker_identity()}).update(**{until_f: None, by_f: ""})


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release_dead_claims(model, *, prefix: str = "") -> int:
    """Free unexpired leases held by processes of this host that no longer exist.

    Returns the number of leases freed. Leases of other hosts are left to expire.
    """
    until_f, by_f = _fields(prefix)
    now = timezone.now()
    held = model.objects.filter(
        **{f"{until_f}__gte": now, f"{by_f}__startswith": f"{_HOST}:"}
    ).values_list("pk", by_f)
    freed = 0
    for pk, owner in held:
        try:
            pid = int(owner.rsplit(":", 1)[1])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            freed += model.objects.filter(pk=pk, **{by_f: owner}).update(
                **{until_f: None, by_f: ""}
            )
    return freed
