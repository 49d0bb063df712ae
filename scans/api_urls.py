"""REST API of the scans app (included under /api/v1/)."""

from django.urls import path

from scans import apis, apis_hunts, apis_labels, apis_lookup

urlpatterns = [
    path("samples/", apis.SampleListApi.as_view(), name="api-sample-list"),
    path("samples/labels/", apis_labels.SampleLabelsApi.as_view(), name="api-sample-labels"),
    path("samples/wanted/", apis_lookup.WantedApi.as_view(), name="api-samples-wanted"),
    path("samples/<str:sha256>/", apis.SampleDetailApi.as_view(), name="api-sample-detail"),
    path(
        "samples/<str:sha256>/label/",
        apis_labels.SampleLabelApi.as_view(),
        name="api-sample-label",
    ),
    path(
        "samples/<str:sha256>/download/",
        apis.SampleDownloadApi.as_view(),
        name="api-sample-download",
    ),
    path("devices/lookup/", apis_lookup.DeviceLookupApi.as_view(), name="device-lookup"),
    path("scans/", apis.ScanListApi.as_view(), name="api-scan-list"),
    path("scans/<id:scan_id>/", apis.ScanDetailApi.as_view(), name="api-scan-detail"),
    path("scans/<id:scan_id>/report/", apis.ScanReportApi.as_view(), name="api-scan-report"),
    path("retrohunts/", apis_hunts.RetroHuntListApi.as_view(), name="api-retrohunt-list"),
    path(
        "retrohunts/<id:hunt_id>/",
        apis_hunts.RetroHuntDetailApi.as_view(),
        name="api-retrohunt-detail",
    ),
    path(
        "retrohunts/<id:hunt_id>/cancel/",
        apis_hunts.RetroHuntCancelApi.as_view(),
        name="api-retrohunt-cancel",
    ),
]
