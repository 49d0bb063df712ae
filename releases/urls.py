"""Pages of the releases app and the update files (included at the site root)."""

from django.urls import path

from releases import files, views

app_name = "releases"
urlpatterns = [
    path("updates/<str:area>/<str:name>", files.update_file, name="update-file"),
    path("releases/", views.release_list_view, name="release-list"),
    path("releases/publish/", views.release_publish_view, name="release-publish"),
    path("releases/<id:number>/", views.release_detail_view, name="release-detail"),
    path("releases/<id:number>/rollout/", views.release_rollout_view, name="release-rollout"),
    path(
        "releases/<id:number>/kill-switch/",
        views.release_kill_switch_view,
        name="release-kill-switch",
    ),
    path("devices/", views.device_list_view, name="device-list"),
]
