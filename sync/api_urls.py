"""API routes of the sync engine, mounted at /api/ (see sync/api/views.py for the shapes)."""

from django.urls import path

from .api import views

urlpatterns = [
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
]
