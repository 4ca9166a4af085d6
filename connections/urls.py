from django.urls import path

from . import project_views, views

app_name = "connections"

urlpatterns = [
    path("", views.connection_list, name="list"),
    path("settings/", views.general_settings, name="general-settings"),
    path("initiate/", views.connection_initiate_wizard, name="initiate"),
    path("accept/", views.invitation_accept_wizard, name="accept"),
    path("<uuid:connection_id>/", views.connection_detail, name="detail"),
    path("<uuid:connection_id>/established/", views.connection_established, name="established"),
    path("<uuid:connection_id>/project/", project_views.connection_project_view, name="project"),
    path("<uuid:connection_id>/activate/", views.connection_activate_view, name="activate"),
    path("<uuid:connection_id>/deactivate/", views.connection_deactivate_view, name="deactivate"),
    path("<uuid:connection_id>/delete/", views.connection_delete_view, name="delete"),
    path("<uuid:connection_id>/invitation/", views.invitation_show, name="invitation"),
    path(
        "<uuid:connection_id>/invitation/revoke/",
        views.invitation_revoke_view,
        name="invitation-revoke",
    ),
]
