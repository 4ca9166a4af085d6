"""The Exalate console project package: settings, URLs, the Celery app and base views."""

from .celery import app as celery_app

__all__ = ("celery_app",)
