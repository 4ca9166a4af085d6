"""Console pages of the sync engine (mounted at the site root, namespace ``sync``)."""

from django.urls import path

from . import views

app_name = "sync"

urlpatterns = [
    path("connections/<uuid:connection_id>/exalate/", views.connection_exalate, name="exalate"),
    path("entity-sync-status/", views.entity_status, name="entity-status"),
    path("entity-sync-status/exalate/", views.entity_exalate, name="entity-exalate"),
    path("exalate/<uuid:request_id>/", views.exalate_status, name="exalate-status"),
    path(
        "exalate/<uuid:request_id>/status/", views.exalate_status_part, name="exalate-status-part"
    ),
    path("twins/<int:twin_id>/", views.twin_detail, name="twin"),
    path("twins/<int:twin_id>/status/", views.twin_status_part, name="twin-status-part"),
    path("twins/<int:twin_id>/retry/", views.twin_retry, name="twin-retry"),
    path("errors/", views.errors, name="errors"),
    path("errors/<int:error_id>/retry/", views.error_retry, name="error-retry"),
    path("errors/<int:error_id>/resolve/", views.error_resolve, name="error-resolve"),
    path("sync-queue/", views.queue, name="queue"),
]
