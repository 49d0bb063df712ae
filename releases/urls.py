"""Pages of the releases app and the update files (included at the site root)."""

from django.urls import path

from releases import files

app_name = "releases"
urlpatterns = [
    path("updates/<str:area>/<str:name>", files.update_file, name="update-file"),
]
