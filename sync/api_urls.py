"""API routes of the sync engine, mounted at /api/ (see sync/api/views.py for the shapes)."""

from django.urls import path

from .api import node_operations as node_ops_api
from .api import operations as ops_api
from .api import triggers as trigger_api
from .api import views

urlpatterns = [
    # Issue 12: console operations (sync/api/operations.py); before twins/<id>/.
    path("dashboard/", ops_api.DashboardApi.as_view(), name="api-dashboard"),
    path("twins/lookup/", ops_api.TwinLookupApi.as_view(), name="api-twin-lookup"),
    path("twins/page/", ops_api.TwinPageApi.as_view(), name="api-twin-page"),
    path("twins/connect/", ops_api.TwinConnectApi.as_view(), name="api-twin-connect"),
    path(
        "twins/<int:twin_id>/unexalate/",
        ops_api.TwinUnexalateApi.as_view(),
        name="api-twin-unexalate",
    ),
    path(
        "twins/<int:twin_id>/replicas/", ops_api.TwinReplicasApi.as_view(), name="api-twin-replicas"
    ),
    path("errors/resolve/", ops_api.ErrorsResolveApi.as_view(), name="api-errors-resolve"),
    path("sync-queue/", ops_api.QueueApi.as_view(), name="api-sync-queue"),
    path(
        "connections/<uuid:connection_id>/mapping/",
        ops_api.MappingApi.as_view(),
        name="api-connection-mapping",
    ),
    path(
        "connections/<uuid:connection_id>/unexalate-all/",
        ops_api.UnexalateAllApi.as_view(),
        name="api-connection-unexalate-all",
    ),
    path(
        "connections/<uuid:connection_id>/rename/",
        ops_api.ConnectionRenameApi.as_view(),
        name="api-connection-rename",
    ),
    path(
        "connections/<uuid:connection_id>/check/",
        ops_api.ConnectionCheckApi.as_view(),
        name="api-connection-check",
    ),
    path(
        "node/v1/sync/connect", node_ops_api.NodeConnectApi.as_view(), name="api-node-sync-connect"
    ),
    path("node/v1/sync/check", node_ops_api.NodeCheckApi.as_view(), name="api-node-sync-check"),
    path(
        "connections/<uuid:connection_id>/exalate/", views.ExalateApi.as_view(), name="api-exalate"
    ),
    path(
        "exalate-requests/<uuid:request_id>/",
        views.ExalateRequestApi.as_view(),
        name="api-exalate-request",
    ),
    path("twins/", views.TwinListApi.as_view(), name="api-twin-list"),
    path("twins/<int:twin_id>/", views.TwinApi.as_view(), name="api-twin"),
    path("twins/<int:twin_id>/retry/", views.TwinRetryApi.as_view(), name="api-twin-retry"),
    path("errors/", views.ErrorListApi.as_view(), name="api-error-list"),
    path("node/v1/sync/messages", views.MessagesApi.as_view(), name="api-node-sync-messages"),
    path("node/v1/sync/poll", views.PollApi.as_view(), name="api-node-sync-poll"),
    path(
        "node/v1/sync/attachments/<str:entity_id>/<str:attachment_id>",
        views.AttachmentApi.as_view(),
        name="api-node-sync-attachment",
    ),
    path("webhooks/<slug:tracker>/", views.TrackerWebhook.as_view(), name="api-webhook"),
    # Issue 13: triggers, bulk runs, Bulk Connect.
    path("triggers/", trigger_api.TriggerListApi.as_view(), name="api-trigger-list"),
    path("triggers/<uuid:trigger_id>/", trigger_api.TriggerApi.as_view(), name="api-trigger"),
    path(
        "triggers/<uuid:trigger_id>/preview/",
        trigger_api.TriggerPreviewApi.as_view(),
        name="api-trigger-preview",
    ),
    path(
        "triggers/<uuid:trigger_id>/bulk-exalate/",
        trigger_api.TriggerBulkApi.as_view(kind="exalate"),
        name="api-trigger-bulk-exalate",
    ),
    path(
        "triggers/<uuid:trigger_id>/bulk-unexalate/",
        trigger_api.TriggerBulkApi.as_view(kind="unexalate"),
        name="api-trigger-bulk-unexalate",
    ),
    path("bulk-runs/<uuid:run_id>/", trigger_api.BulkRunApi.as_view(), name="api-bulk-run"),
    path(
        "bulk-runs/<uuid:run_id>/cancel/",
        trigger_api.BulkRunCancelApi.as_view(),
        name="api-bulk-run-cancel",
    ),
    path(
        "bulk-runs/<uuid:run_id>/confirm/",
        trigger_api.BulkConnectConfirmApi.as_view(),
        name="api-bulk-connect-confirm",
    ),
    path(
        "bulk-runs/<uuid:run_id>/result.csv",
        trigger_api.BulkConnectResultApi.as_view(),
        name="api-bulk-connect-result",
    ),
    path("bulk-connect/", trigger_api.BulkConnectApi.as_view(), name="api-bulk-connect"),
]
