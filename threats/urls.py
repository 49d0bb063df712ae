"""Pages of the threats app (included at the site root)."""

from django.urls import path  # noqa: F401 - the app's pages add their routes here

app_name = "threats"
urlpatterns: list = []
