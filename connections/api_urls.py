"""API routes of connections, mounted at /api/ (see exalate_console/urls.py)."""

from django.urls import path

from . import api, views

urlpatterns = [
    path("connections/", api.ConnectionListApi.as_view(), name="api-connection-list"),
    path(
        "connections/initiate/", api.ConnectionInitiateApi.as_view(), name="api-connection-initiate"
    ),
    path("connections/accept/", api.ConnectionAcceptApi.as_view(), name="api-connection-accept"),
    path(
        "connections/<uuid:connection_id>/",
        api.ConnectionDetailApi.as_view(),
        name="api-connection-detail",
    ),
    path(
        "connections/<uuid:connection_id>/activate/",
        api.ConnectionActivateApi.as_view(),
        name="api-connection-activate",
    ),
    path(
        "connections/<uuid:connection_id>/deactivate/",
        api.ConnectionDeactivateApi.as_view(),
        name="api-connection-deactivate",
    ),
    path(
        "connections/<uuid:connection_id>/revoke-invitation/",
        api.InvitationRevokeApi.as_view(),
        name="api-invitation-revoke",
    ),
    path("node/v1/info", api.NodeInfoApi.as_view(), name="api-node-info"),
    path("node/v1/handshake", api.HandshakeApi.as_view(), name="api-node-handshake"),
    # Not an API call: the initiating node sends its admin's browser here ("Yes, I have admin access").
    path("node/v1/accept-invitation", views.invitation_link, name="invitation-link"),
]
