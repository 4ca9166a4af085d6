"""Errors mailed to the admins, with a backoff: one mail per connection and period (issue 12).

:func:`errors_mail_soon` is called whenever an error is recorded (``sync.services.failures``).
After the transaction commits it claims the connection's mail slot with a conditional
UPDATE on :class:`~sync.models.ErrorMail` (``last_sent_at`` older than
``ERROR_MAIL_PERIOD`` seconds): only the caller that wins sends, so a storm of a thousand
failing events sends one mail listing the connection's open errors, not a thousand. The
mail goes through Django's mail backend (``EMAIL_BACKEND``; the console backend by
default), to ``ERROR_MAIL_TO`` or else every active staff user with an e-mail address.
A mail that cannot be sent is logged, never raised.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import ErrorMail, SyncError

logger = logging.getLogger(__name__)


def recipients() -> list[str]:
    """``ERROR_MAIL_TO``, else the e-mail addresses of the active staff users."""
    if settings.ERROR_MAIL_TO:
        return list(settings.ERROR_MAIL_TO)
    users = get_user_model().objects.filter(is_active=True, is_staff=True).exclude(email="")
    return sorted(set(users.values_list("email", flat=True)))


def errors_mail_soon(*, connection_id=None) -> None:
    """Mail the open errors of ``connection_id`` (None: node-level) once the current
    transaction commits, unless a mail for it went out less than a period ago."""
    transaction.on_commit(lambda: errors_mail_send(connection_id=connection_id))


def _claim(connection_id, now) -> bool:
    period = timedelta(seconds=settings.ERROR_MAIL_PERIOD)
    lookup = {"connection_id": connection_id} if connection_id else {"node": True}
    if ErrorMail.objects.filter(**lookup, last_sent_at__lte=now - period).update(last_sent_at=now):
        return True
    if ErrorMail.objects.filter(**lookup).exists():
        return False
    try:
        with transaction.atomic():
            ErrorMail.objects.create(**lookup, last_sent_at=now)
    except IntegrityError:  # another process claimed it a moment ago
        return False
    return True


def errors_mail_send(*, connection_id=None, now=None) -> bool:
    """Send the mail now if the connection's slot is free; True when one was sent."""
    to = recipients()
    if not to:
        return False
    now = now or timezone.now()
    try:
        if not _claim(connection_id, now):
            return False
        errors = list(
            SyncError.objects.filter(resolved_at__isnull=True, connection_id=connection_id)
            .select_related("connection", "twin")
            .order_by("-last_seen_at")[:20]
        )
        if not errors:
            return False
        name = errors[0].connection.name if errors[0].connection else "this node"
        total = SyncError.objects.filter(
            resolved_at__isnull=True, connection_id=connection_id
        ).count()
        lines = [
            f"{total} open error(s) on {name}. The newest:",
            "",
            *(
                f"- [{e.get_level_display()}] "
                f"{(e.twin.local_key or e.twin.remote_key) + ': ' if e.twin else ''}"
                f"{e.message} (×{e.occurrences})"
                for e in errors
            ),
            "",
            "Open the console's Errors page to resolve or retry them. You get at most one "
            f"mail per connection every {int(settings.ERROR_MAIL_PERIOD)} seconds.",
        ]
        send_mail(
            subject=f"[Exalate console] {total} open error(s) on {name}",
            message="\n".join(lines),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=to,
        )
        lookup = {"connection_id": connection_id} if connection_id else {"node": True}
        ErrorMail.objects.filter(**lookup).update(errors_sent=total)
        return True
    except Exception:  # noqa: BLE001 - a mail problem never stops the sync
        logger.exception("Could not mail the open errors of %s", connection_id or "the node")
        return False
