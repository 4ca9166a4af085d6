"""Console pages of the sync engine (mounted at the site root, namespace ``sync``)."""

from django.urls import path

from . import views, views_ops

app_name = "sync"

urlpatterns = [
    path("connections/<uuid:connection_id>/exalate/", views.connection_exalate, name="exalate"),
    path("connections/<uuid:connection_id>/rename/", views_ops.connection_rename, name="rename"),
    path(
        "connections/<uuid:connection_id>/check/",
        views_ops.connection_check,
        name="connection-check",
    ),
    path("dashboard/", views_ops.dashboard_view, name="dashboard"),
    path("entity-sync-status/", views.entity_status, name="entity-status"),
    path("entity-sync-status/exalate/", views.entity_exalate, name="entity-exalate"),
    path("entity-sync-status/connect/", views.entity_connect, name="entity-connect"),
    path("exalate/<uuid:request_id>/", views.exalate_status, name="exalate-status"),
    path(
        "exalate/<uuid:request_id>/status/", views.exalate_status_part, name="exalate-status-part"
    ),
    path("twins/<int:twin_id>/", views.twin_detail, name="twin"),
    path("twins/<int:twin_id>/status/", views.twin_status_part, name="twin-status-part"),
    path("twins/<int:twin_id>/retry/", views.twin_retry, name="twin-retry"),
    path("twins/<int:twin_id>/unexalate/", views.twin_unexalate, name="twin-unexalate"),
    path("twins/<int:twin_id>/exalate-again/", views.twin_exalate_again, name="twin-exalate-again"),
    path("twins/<int:twin_id>/replica/<str:side>/", views.twin_replica, name="twin-replica"),
    path("errors/", views_ops.errors, name="errors"),
    path("errors/bulk/", views_ops.errors_bulk, name="errors-bulk"),
    path("errors/<int:error_id>/retry/", views_ops.error_retry, name="error-retry"),
    path("errors/<int:error_id>/resolve/", views_ops.error_resolve, name="error-resolve"),
    path("sync-queue/", views_ops.queue, name="queue"),
    path("clean-up/", views_ops.cleanup, name="cleanup"),
    path("clean-up/unexalate/", views_ops.cleanup_unexalate_one, name="cleanup-unexalate"),
    path(
        "clean-up/<uuid:connection_id>/mapping.csv",
        views_ops.cleanup_mapping_csv,
        name="cleanup-csv",
    ),
    path(
        "clean-up/<uuid:connection_id>/unexalate-all/",
        views_ops.cleanup_unexalate_all,
        name="cleanup-unexalate-all",
    ),
]

from .trigger_urls import urlpatterns as _trigger_urls  # noqa: E402  (issue 13)

urlpatterns += _trigger_urls
