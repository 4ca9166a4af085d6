from django.apps import AppConfig


class ServicenowAdapterConfig(AppConfig):
    name = "servicenow_adapter"
