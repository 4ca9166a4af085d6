"""URL map of one console node."""

from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from sync import trigger_views, views_ops

from . import views

urlpatterns = [
    # The landing page: the Dashboard once a connection exists, else Getting started.
    path("", views_ops.landing, name="landing"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("getting-started/", views.getting_started, name="getting-started"),
    # Issue 13: Triggers and Bulk operations (sync/trigger_views.py; the menu names these).
    path("triggers/", trigger_views.triggers, name="triggers"),
    path("bulk/", trigger_views.bulk, name="bulk"),
    path("healthz", views.healthz, name="healthz"),
    path("connections/", include("connections.urls")),
    path("", include("sync.urls")),
    path("api/", include("connections.api_urls")),
    path("api/", include("sync.api_urls")),
    path("audit/", include("audit.urls")),
    path("api/", include("audit.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]

handler400 = "exalate_console.api_errors.handler400"
handler403 = "exalate_console.api_errors.handler403"
handler404 = "exalate_console.api_errors.handler404"
handler500 = "exalate_console.api_errors.handler500"
