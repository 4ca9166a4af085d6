"""Routes of the Triggers and Bulk operations pages (issue 13), added to ``sync.urls`` (namespace
``sync``); the two list pages are ``/triggers/`` and ``/bulk/`` (names ``triggers``, ``bulk``)."""

from django.urls import path

from . import trigger_views as v

urlpatterns = [
    path("triggers/<uuid:trigger_id>/", v.trigger_detail, name="trigger"),
    path("triggers/<uuid:trigger_id>/preview/", v.trigger_preview, name="trigger-preview"),
    path("triggers/<uuid:trigger_id>/active/", v.trigger_active, name="trigger-active"),
    path("triggers/<uuid:trigger_id>/delete/", v.trigger_delete, name="trigger-delete"),
    path(
        "triggers/<uuid:trigger_id>/bulk-exalate/",
        v.trigger_bulk,
        {"kind": "exalate"},
        name="trigger-bulk-exalate",
    ),
    path(
        "triggers/<uuid:trigger_id>/bulk-unexalate/",
        v.trigger_bulk,
        {"kind": "unexalate"},
        name="trigger-bulk-unexalate",
    ),
    path("bulk/runs/<uuid:run_id>/", v.bulk_run, name="bulk-run"),
    path("bulk/runs/<uuid:run_id>/progress/", v.bulk_run_part, name="bulk-run-part"),
    path("bulk/runs/<uuid:run_id>/cancel/", v.bulk_run_cancel, name="bulk-run-cancel"),
    path("bulk/runs/<uuid:run_id>/confirm/", v.bulk_connect_confirm, name="bulk-confirm"),
    path("bulk/runs/<uuid:run_id>/result.csv", v.bulk_connect_result, name="bulk-result"),
]
