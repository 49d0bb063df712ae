"""Pages of the scans app (included at the site root)."""

from django.urls import path

from scans import views, views_labels, views_wanted

app_name = "scans"
urlpatterns = [
    path("samples/", views.sample_list_view, name="sample-list"),
    path("samples/upload/", views.sample_upload_view, name="sample-upload"),
    path("samples/labels/", views_labels.labels_bulk_view, name="sample-labels"),
    path("samples/wanted/", views_wanted.wanted_view, name="samples-wanted"),
    path("samples/<str:sha256>/", views.sample_detail_view, name="sample-detail"),
    path("samples/<str:sha256>/label/", views_labels.sample_label_view, name="sample-label"),
    path("scans/", views.scan_list_view, name="scan-list"),
    path("scans/<id:scan_id>/", views.scan_detail_view, name="scan-detail"),
    path("retrohunts/", views.retrohunt_list_view, name="retrohunt-list"),
    path("retrohunts/<id:hunt_id>/", views.retrohunt_detail_view, name="retrohunt-detail"),
    path("retrohunts/<id:hunt_id>/cancel/", views.retrohunt_cancel_view, name="retrohunt-cancel"),
]
