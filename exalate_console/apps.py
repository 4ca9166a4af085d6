from django.apps import AppConfig


class ExalateConsoleConfig(AppConfig):
    name = "exalate_console"
    verbose_name = "Exalate console"
