"""Pages of the releases app (included at the site root)."""

from django.urls import path  # noqa: F401 - the app's pages add their routes here

app_name = "releases"
urlpatterns: list = []
