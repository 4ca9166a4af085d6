"""Logins and failed logins go to the audit log (Django's auth signals; axes listens too)."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from .services import audit_record


def _address(request) -> str:
    if request is None:
        return ""
    return request.META.get("REMOTE_ADDR", "")


@receiver(user_logged_in, dispatch_uid="audit_login")
def _login(sender, request, user, **kwargs) -> None:
    address = _address(request)
    audit_record(actor=user, action="login", detail=f"from {address}" if address else "")


@receiver(user_login_failed, dispatch_uid="audit_login_failed")
def _login_failed(sender, credentials, request=None, **kwargs) -> None:
    # ``credentials`` has the password replaced by Django's cleanse; only the name is kept.
    name = str((credentials or {}).get("username") or "")[:150] or "(no user name)"
    address = _address(request)
    audit_record(
        actor=name,
        action="login-failed",
        detail="wrong user name or password" + (f", from {address}" if address else ""),
    )
