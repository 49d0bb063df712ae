"""REST API of the scans app (included under /api/v1/)."""

from django.urls import path

from scans import apis

urlpatterns = [
    path("samples/", apis.SampleListApi.as_view(), name="api-sample-list"),
    path("samples/<str:sha256>/", apis.SampleDetailApi.as_view(), name="api-sample-detail"),
    path("scans/", apis.ScanListApi.as_view(), name="api-scan-list"),
    path("scans/<int:scan_id>/", apis.ScanDetailApi.as_view(), name="api-scan-detail"),
]
