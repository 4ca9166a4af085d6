from django.apps import AppConfig


class TrackersConfig(AppConfig):
    """The tracker plug (no models): interface, errors, replica schema, registry."""

    name = "trackers"
    verbose_name = "Tracker plug"
