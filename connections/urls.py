from django.urls import path

from . import views

app_name = "connections"

urlpatterns = [
    path("", views.connection_list, name="list"),
    path("settings/", views.general_settings, name="general-settings"),
]
