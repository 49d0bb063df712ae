"""REST API of the releases app (included under /api/v1/)."""

from django.urls import path

from releases import apis, apis_reports

urlpatterns = [
    path("devices/register/", apis.DeviceRegisterApi.as_view(), name="device-register"),
    path("devices/update/", apis.DeviceUpdateApi.as_view(), name="device-update"),
    path("devices/reports/", apis_reports.DeviceReportApi.as_view(), name="device-reports"),
    path("devices/me/", apis_reports.DeviceMeApi.as_view(), name="device-me"),
    path(
        "devices/detections/",
        apis_reports.SignatureDetectionsApi.as_view(),
        name="signature-detections-api",
    ),
    path("releases/", apis.ReleaseListApi.as_view(), name="release-list-api"),
    path("releases/<id:number>/", apis.ReleaseDetailApi.as_view(), name="release-detail-api"),
    path(
        "releases/<id:number>/rollout/",
        apis.ReleaseRolloutApi.as_view(),
        name="release-rollout-api",
    ),
    path("releases/<id:number>/halt/", apis.ReleaseHaltApi.as_view(), name="release-halt-api"),
    path(
        "releases/<id:number>/kill-switch/",
        apis.ReleaseKillSwitchApi.as_view(),
        name="release-kill-switch-api",
    ),
    path(
        "releases/<id:number>/detections/",
        apis_reports.ReleaseDetectionsApi.as_view(),
        name="release-detections-api",
    ),
]
