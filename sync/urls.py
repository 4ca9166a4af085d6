from django.urls import path

from exalate_console.views import not_built

app_name = "sync"

urlpatterns = [
    path(
        "entity-sync-status/",
        not_built("Entity sync status", "Looking up and exalating one incident is not built yet."),
        name="entity-status",
    ),
    path("errors/", not_built("Errors", "The list of sync errors is not built yet."), name="errors"),
    path("sync-queue/", not_built("Sync queue", "The sync queue page is not built yet."), name="queue"),
]
