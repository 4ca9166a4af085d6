from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The audit log of admin actions; records logins and failed logins through auth signals."""

    name = "audit"
    verbose_name = "Audit log"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import signals  # noqa: F401 - connects the login receivers
