"""REST API of the threats app (included under /api/v1/)."""

from django.urls import path

from threats import apis, apis_families, apis_import_export, apis_review

urlpatterns = [
    path("families/", apis_families.FamilyListApi.as_view(), name="family-list-api"),
    path("families/<id:pk>/", apis_families.FamilyDetailApi.as_view(), name="family-detail-api"),
    path("signatures/", apis.SignatureListApi.as_view(), name="signature-list-api"),
    path("signatures/validate/", apis.SignatureValidateApi.as_view(), name="signature-validate"),
    path(
        "signatures/import/",
        apis_import_export.SignatureImportApi.as_view(),
        name="signature-import-api",
    ),
    path(
        "signatures/export/",
        apis_import_export.SignatureExportApi.as_view(),
        name="signature-export",
    ),
    path("signatures/bulk/", apis_review.SignatureBulkApi.as_view(), name="signature-bulk-api"),
    path("signatures/<id:pk>/", apis.SignatureDetailApi.as_view(), name="signature-detail-api"),
    path(
        "signatures/<id:pk>/submit/",
        apis_review.SignatureSubmitApi.as_view(),
        name="signature-submit",
    ),
    path(
        "signatures/<id:pk>/approve/",
        apis_review.SignatureApproveApi.as_view(),
        name="signature-approve",
    ),
    path(
        "signatures/<id:pk>/reject/",
        apis_review.SignatureRejectApi.as_view(),
        name="signature-reject",
    ),
    path(
        "signatures/<id:pk>/noisy/",
        apis_review.SignatureNoisyApi.as_view(),
        name="signature-noisy",
    ),
    path(
        "signatures/<id:pk>/disable/",
        apis_review.SignatureDisableApi.as_view(),
        name="signature-disable",
    ),
    path(
        "signatures/<id:pk>/history/",
        apis.SignatureHistoryApi.as_view(),
        name="signature-history",
    ),
]
