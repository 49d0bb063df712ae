"""REST API of the threats app (included under /api/v1/)."""

from django.urls import path

from threats import apis

urlpatterns = [
    path("families/", apis.FamilyListApi.as_view(), name="family-list-api"),
    path("families/<id:pk>/", apis.FamilyDetailApi.as_view(), name="family-detail-api"),
    path("signatures/", apis.SignatureListApi.as_view(), name="signature-list-api"),
    path("signatures/validate/", apis.SignatureValidateApi.as_view(), name="signature-validate"),
    path("signatures/import/", apis.SignatureImportApi.as_view(), name="signature-import-api"),
    path("signatures/export/", apis.SignatureExportApi.as_view(), name="signature-export"),
    path("signatures/bulk/", apis.SignatureBulkApi.as_view(), name="signature-bulk-api"),
    path("signatures/<id:pk>/", apis.SignatureDetailApi.as_view(), name="signature-detail-api"),
    path("signatures/<id:pk>/submit/", apis.SignatureSubmitApi.as_view(), name="signature-submit"),
    path(
        "signatures/<id:pk>/approve/",
        apis.SignatureApproveApi.as_view(),
        name="signature-approve",
    ),
    path("signatures/<id:pk>/reject/", apis.SignatureRejectApi.as_view(), name="signature-reject"),
    path("signatures/<id:pk>/noisy/", apis.SignatureNoisyApi.as_view(), name="signature-noisy"),
    path(
        "signatures/<id:pk>/disable/",
        apis.SignatureDisableApi.as_view(),
        name="signature-disable",
    ),
    path(
        "signatures/<id:pk>/history/",
        apis.SignatureHistoryApi.as_view(),
        name="signature-history",
    ),
]
