"""Which adapter class serves which tracker: ``settings.TRACKER_ADAPTERS``.

``TRACKER_ADAPTERS = {"servicenow": "servicenow_adapter.adapter.ServiceNowAdapter"}``
maps a tracker name to the dotted path of its :class:`~trackers.interface.TrackerAdapter`
subclass, loaded with Django's ``import_string`` (as healthchecks loads its transports).
Tests plug a fake adapter by overriding the setting; the cache follows the change.
"""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from .errors import TrackerError
from .interface import TrackerAdapter


@cache
def _load(tracker: str, path: str) -> type[TrackerAdapter]:
    cls = import_string(path)
    if not (isinstance(cls, type) and issubclass(cls, TrackerAdapter)):
        raise TypeError(f"TRACKER_ADAPTERS[{tracker!r}] = {path!r} is not a TrackerAdapter.")
    return cls


def adapter_class(tracker: str) -> type[TrackerAdapter]:
    """The adapter class for ``tracker`` (``"servicenow"``).

    Raises TrackerError (an admin-readable message) when no adapter is registered for it.
    """
    path = settings.TRACKER_ADAPTERS.get(tracker or "")
    if not path:
        known = ", ".join(sorted(settings.TRACKER_ADAPTERS)) or "none"
        raise TrackerError(f"No tracker adapter is installed for {tracker!r} (installed: {known}).")
    return _load(tracker, path)


def adapter_classes() -> dict[str, type[TrackerAdapter]]:
    """Every registered tracker name and its adapter class, in the setting's order."""
    return {name: adapter_class(name) for name in settings.TRACKER_ADAPTERS}


@receiver(setting_changed)
def _forget_on_change(*, setting, **kwargs) -> None:
    if setting == "TRACKER_ADAPTERS":
        _load.cache_clear()
