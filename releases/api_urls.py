"""REST API of the releases app (included under /api/v1/)."""

from django.urls import path

from releases import apis

urlpatterns = [
    path("devices/register/", apis.DeviceRegisterApi.as_view(), name="device-register"),
    path("devices/update/", apis.DeviceUpdateApi.as_view(), name="device-update"),
    path("releases/", apis.ReleaseListApi.as_view(), name="release-list-api"),
    path("releases/<id:number>/", apis.ReleaseDetailApi.as_view(), name="release-detail-api"),
    path(
        "releases/<id:number>/rollout/",
        apis.ReleaseRolloutApi.as_view(),
        name="release-rollout-api",
    ),
    path("releases/<id:number>/halt/", apis.ReleaseHaltApi.as_view(), name="release-halt-api"),
]
