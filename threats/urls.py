"""Pages of the threats app (included at the site root)."""

from django.urls import path

from threats import views

app_name = "threats"
urlpatterns = [
    path("signatures/<int:pk>/", views.signature_detail_view, name="signature-detail"),
]
