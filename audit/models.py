"""One row per admin action: :class:`AuditEntry` (written by :func:`audit.services.audit_record`)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class AuditEntry(models.Model):
    """Who (``actor``: a user name, or ``system``) did what (``action``, a short verb such as
    ``initiated``, ``revoked``, ``settings-changed``, ``login-failed``) to what (``target``:
    e.g. ``connection Loop``) and when; ``detail`` adds what an admin needs to tell one entry
    from another (never a secret). Rows are only ever added."""

    when = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=150, db_index=True)
    action = models.CharField(max_length=40, db_index=True)
    target = models.CharField(max_length=255, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-when", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.when:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target}".strip()
