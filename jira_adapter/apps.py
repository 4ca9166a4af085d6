from django.apps import AppConfig


class JiraAdapterConfig(AppConfig):
    """The Jira adapter app (no models)."""

    name = "jira_adapter"
    verbose_name = "Jira adapter"
