"""Writes of the audit log: :func:`audit_record`, called by every service that takes the acting user."""

from __future__ import annotations

import logging

from django.db import DatabaseError, transaction

from .models import AuditEntry

logger = logging.getLogger(__name__)

SYSTEM = "system"
MAX_TARGET = 255
MAX_DETAIL = 2000


def actor_name(actor) -> str:
    """The name stored for ``actor``: a User's user name, a string as given, ``system`` for None/''."""
    if actor is None:
        return SYSTEM
    if hasattr(actor, "get_username"):
        return actor.get_username() or SYSTEM
    return str(actor)[:150] or SYSTEM


def audit_record(*, actor, action: str, target: str = "", detail: str = "") -> AuditEntry | None:
    """Add one audit entry; return it (None when the database refused it).

    ``actor`` is a User, a user name or ``"system"``; ``action`` a short verb (``initiated``,
    ``accepted``, ``revoked``, ``activated``, ``deactivated``, ``deleted``, ``retried``,
    ``resolved``, ``settings-changed``, ``webhook-token-rotated``, ``login``,
    ``login-failed``, ...); ``target`` what it was done to (cut to 255 characters);
    ``detail`` anything else worth knowing (cut to 2,000; never put a secret in it).
    Runs in a savepoint: a failure to record is logged and never undoes or blocks the
    action itself.
    """
    try:
        with transaction.atomic():
            return AuditEntry.objects.create(
                actor=actor_name(actor),
                action=action[:40],
                target=(target or "")[:MAX_TARGET],
                detail=(detail or "")[:MAX_DETAIL],
            )
    except DatabaseError as exc:
        logger.warning("Audit entry %s %s not recorded: %s", action, target, exc.__class__.__name__)
        return None
