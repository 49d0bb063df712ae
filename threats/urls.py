"""Pages of the threats app (included at the site root)."""

from django.urls import path

from threats import views

app_name = "threats"
urlpatterns = [
    path("signatures/", views.signature_list_view, name="signature-list"),
    path("signatures/new/", views.signature_new_view, name="signature-new"),
    path("signatures/validate/", views.signature_validate_view, name="signature-validate"),
    path("signatures/bulk/", views.signature_bulk_view, name="signature-bulk"),
    path("signatures/review/", views.review_queue_view, name="review-queue"),
    path("signatures/import/", views.signature_import_view, name="signature-import"),
    path("signatures/<id:pk>/", views.signature_detail_view, name="signature-detail"),
    path("signatures/<id:pk>/edit/", views.signature_edit_view, name="signature-edit"),
    path(
        "signatures/<id:pk>/<slug:action>/",
        views.signature_action_view,
        name="signature-action",
    ),
    path("families/", views.family_list_view, name="family-list"),
    path("families/<id:pk>/", views.family_detail_view, name="family-detail"),
]
