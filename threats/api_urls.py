"""REST API of the threats app (included under /api/v1/)."""

from django.urls import path  # noqa: F401 - the app's API adds its routes here

urlpatterns: list = []
