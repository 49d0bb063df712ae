"""REST API of the scans app: thin views over scans.services and scans.selectors."""

from __future__ import annotations

from typing import Any

from django.http import FileResponse, HttpRequest
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.exceptions import ForbiddenError, NotFoundError
from portal.models import User
from portal.params import IdOrNameSerializerField
from portal.parsers import BoundedJSONParser
from portal.permissions import require_perms
from portal.schema import ApiErrorSerializer
from scans.downloads import (
    PeopleOrDeviceTokenAuthentication,
    SampleMissing,
    may_download_sample,
    sample_zip,
    zip_name,
)
from scans.models import Label, Sample, ScanJob
from scans.reports import ScanReportSerializer, report_filename, scan_report
from scans.selectors import sample_get, sample_list, sample_scans, scan_get, scan_list
from scans.services import sample_upload, scan_create
from scans.uploads import SizeLimitUploadHandler

CanViewSamples = require_perms("scans.view_sample", "scans.view_scanjob")
CanUpload = require_perms("scans.add_sample", "scans.add_scanjob")
CanScan = require_perms("scans.view_sample", "scans.add_scanjob")
CanViewScans = require_perms("scans.view_scanjob")

VERDICTS = ["malicious", "suspicious", "clean"]
SHA256_PARAM = OpenApiParameter(
    "sha256", {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}, OpenApiParameter.PATH
)


def _user(request: Request) -> User | None:
    return request.user if isinstance(request.user, User) else None


# --- serializers --------------------------------------------------------------------------------
class ScanBriefSerializer(serializers.ModelSerializer[ScanJob]):
    url = serializers.SerializerMethodField()

    class Meta:
        model = ScanJob
        fields = ["id", "status", "verdict", "score", "queued_at", "finished_at", "url"]

    def get_url(self, obj: ScanJob) -> str:
        return reverse("scans:scan-detail", args=[obj.pk])


class SampleSerializer(serializers.ModelSerializer[Sample]):
    family = serializers.SerializerMethodField()
    uploaded_by = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Sample
        fields = [
            "sha256",
            "sha1",
            "md5",
            "size",
            "original_name",
            "label",
            "family",
            "package",
            "app_label",
            "verdict",
            "verdict_score",
            "verdict_release",
            "first_seen",
            "last_seen",
            "uploaded_by",
            "url",
        ]

    def get_family(self, obj: Sample) -> str | None:
        return obj.family.name if obj.family else None

    def get_uploaded_by(self, obj: Sample) -> str | None:
        return obj.uploaded_by.get_username() if obj.uploaded_by else None

    def get_url(self, obj: Sample) -> str:
        return reverse("scans:sample-detail", args=[obj.sha256])


class SampleDetailSerializer(SampleSerializer):
    features = serializers.JSONField(
        help_text="What the engine extracted (DEX string/type/method tables as counts)."
    )
    features_engine_version = serializers.IntegerField(allow_null=True)
    scans = serializers.SerializerMethodField()

    class Meta(SampleSerializer.Meta):
        fields = [*SampleSerializer.Meta.fields, "features", "features_engine_version", "scans"]

    def get_scans(self, obj: Sample) -> list[dict[str, Any]]:
        return list(ScanBriefSerializer(sample_scans(sample=obj), many=True).data)


class MatchSerializer(serializers.Serializer):
    signature_id = serializers.IntegerField()
    revision = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField()
    severity = serializers.CharField()
    scoring = serializers.BooleanField(help_text="False for noisy signatures: reported only.")
    evidence = serializers.ListField(child=serializers.CharField())


class ScanSerializer(serializers.ModelSerializer[ScanJob]):
    sample = serializers.CharField(source="sample.sha256")
    ruleset = serializers.SerializerMethodField()
    matches = MatchSerializer(many=True)
    features = serializers.JSONField(source="sample.features", allow_null=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = ScanJob
        fields = [
            "id",
            "sample",
            "status",
            "error",
            "verdict",
            "score",
            "queued_at",
            "started_at",
            "finished_at",
            "analyse_ms",
            "match_ms",
            "attempts",
            "engine_version",
            "ruleset",
            "matches",
            "features",
            "url",
        ]

    def get_ruleset(self, obj: ScanJob) -> dict[str, Any]:
        return {"release": obj.ruleset_release, "revisions": obj.ruleset_revisions}

    def get_url(self, obj: ScanJob) -> str:
        return reverse("scans:scan-detail", args=[obj.pk])


class ScanListSerializer(ScanSerializer):
    class Meta(ScanSerializer.Meta):
        fields = [f for f in ScanSerializer.Meta.fields if f not in ("matches", "features")]


# --- views -----------------------------------------------------------------------------------
UPLOAD_EXAMPLE = {
    "sha256": "5d4e88bad4f8d9a7d043dca2661788be51f69514eb060524bfd1aaff4f6e4cec",
    "created": True,
    "scan": {"id": 42, "status": "queued", "url": "/scans/42/"},
    "sample": {"sha256": "5d4e88ba…", "label": "unknown", "url": "/samples/5d4e88ba…/"},
}


class SampleListApi(APIView):
    """List samples; upload an APK (multipart) to store it and queue a scan."""

    parser_classes = [MultiPartParser, FormParser]
    # GET answers {count, next, previous, results}; the schema says so through this
    pagination_class = PageNumberPagination

    class UploadSerializer(serializers.Serializer):
        file = serializers.FileField(help_text="The APK or XAPK.")
        # "label" shadows Field.label in the stubs; it is the form field's name here
        label = serializers.ChoiceField(choices=Label.choices, required=False)  # type: ignore[assignment]
        family = IdOrNameSerializerField(
            required=False, help_text="A family id or name (optional)."
        )

    class UploadOutputSerializer(serializers.Serializer):
        sha256 = serializers.CharField()
        created = serializers.BooleanField()
        scan = ScanBriefSerializer()
        sample = SampleSerializer()

    def get_permissions(self) -> list[Any]:
        return [CanUpload()] if self.request.method == "POST" else [CanViewSamples()]

    def initialize_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Request:
        if request.method == "POST":
            request.upload_handlers = [
                SizeLimitUploadHandler(request),
                *request.upload_handlers,
            ]
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(
        operation_id="samples_list",
        parameters=[
            OpenApiParameter("label", OpenApiTypes.STR, enum=Label.values),
            OpenApiParameter("verdict", OpenApiTypes.STR, enum=VERDICTS),
            OpenApiParameter("package", OpenApiTypes.STR, description="Part of a package name."),
            OpenApiParameter("family", OpenApiTypes.STR, description="Family id or name."),
            OpenApiParameter(
                "q",
                OpenApiTypes.STR,
                description=(
                    "One search box: an MD5, SHA-1 or SHA-256 (of the app, a signing "
                    "certificate or a DEX), a URL, IP, domain or SMS short code, or part of a "
                    "package, app name or file name. A prefix types the value: md5:, sha1:, "
                    "sha256:, cert:, domain:, url:, ip:, sms:, package: (exact), app:, name:. "
                    "See docs/search.md."
                ),
            ),
            OpenApiParameter(
                "cert",
                OpenApiTypes.STR,
                description="Apps signed by this certificate (SHA-256 or SHA-1 fingerprint).",
            ),
            OpenApiParameter(
                "domain",
                OpenApiTypes.STR,
                description="Apps naming this domain or a subdomain of it.",
            ),
            OpenApiParameter("url", OpenApiTypes.STR, description="Apps naming this URL."),
            OpenApiParameter("ip", OpenApiTypes.STR, description="Apps naming this IP address."),
            OpenApiParameter(
                "short_code", OpenApiTypes.STR, description="Apps naming this SMS short code."
            ),
            OpenApiParameter(
                "signature",
                OpenApiTypes.INT,
                description="Samples this signature id hit (in scans and retro-hunts).",
            ),
            OpenApiParameter(
                "order",
                OpenApiTypes.STR,
                enum=["version"],
                description="version: newest versionCode first (other versions of an app).",
            ),
            OpenApiParameter("page", OpenApiTypes.INT),
        ],
        responses={200: SampleSerializer(many=True), 400: ApiErrorSerializer},
        summary="List and search samples",
    )
    def get(self, request: Request) -> Response:
        filterset = sample_list(filters=request.query_params)
        if not filterset.is_valid():
            raise serializers.ValidationError(filterset.errors)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(filterset.qs, request, view=self)
        return paginator.get_paginated_response(SampleSerializer(page, many=True).data)

    @extend_schema(
        operation_id="samples_upload",
        request={"multipart/form-data": UploadSerializer},
        responses={
            201: UploadOutputSerializer,
            200: UploadOutputSerializer,
            400: ApiErrorSerializer,
            413: ApiErrorSerializer,
        },
        examples=[
            OpenApiExample(
                "New sample", value=UPLOAD_EXAMPLE, response_only=True, status_codes=["201"]
            ),
            OpenApiExample(
                "Too big",
                value={"message": "files over 200 MB are refused (MAX_UPLOAD_MB).", "extra": {}},
                response_only=True,
                status_codes=["413"],
            ),
        ],
        summary="Upload an app",
        description=(
            "Stores the file under its SHA-256 and queues a scan. 201 for a new sample, 200 "
            "with the existing sample and a new scan for a file already stored. Files over "
            "MAX_UPLOAD_MB are refused with 413."
        ),
    )
    def post(self, request: Request) -> Response:
        data = self.UploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        sample, scan, created = sample_upload(
            file=upload,
            name=upload.name or "",
            label=data.validated_data.get("label"),
            family=data.validated_data.get("family"),
            user=_user(request),
        )
        body = {"sha256": sample.sha256, "created": created, "scan": scan, "sample": sample}
        return Response(
            self.UploadOutputSerializer(body).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class SampleDetailApi(APIView):
    permission_classes = [CanViewSamples]

    @extend_schema(
        operation_id="samples_retrieve",
        parameters=[SHA256_PARAM],
        responses={200: SampleDetailSerializer},
        summary="A sample: features, label and scans",
    )
    def get(self, request: Request, sha256: str) -> Response:
        sample = sample_get(sha256=sha256.lower())
        if sample is None:
            raise NotFoundError(f"No sample with SHA-256 {sha256}.")
        return Response(SampleDetailSerializer(sample).data)


class ScanListApi(APIView):
    """List scans (newest first); POST re-scans a stored sample."""

    parser_classes = [BoundedJSONParser, FormParser, MultiPartParser]
    pagination_class = PageNumberPagination

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ScanCreateInput"

        sample = serializers.RegexField(
            r"^[0-9a-fA-F]{64}$", help_text="The SHA-256 of a stored sample."
        )

    def get_permissions(self) -> list[Any]:
        return [CanScan()] if self.request.method == "POST" else [CanViewScans()]

    @extend_schema(
        operation_id="scans_list",
        parameters=[
            OpenApiParameter(
                "status", OpenApiTypes.STR, enum=["queued", "running", "succeeded", "failed"]
            ),
            OpenApiParameter("verdict", OpenApiTypes.STR, enum=VERDICTS),
            OpenApiParameter("page", OpenApiTypes.INT),
        ],
        responses={200: ScanListSerializer(many=True), 400: ApiErrorSerializer},
        summary="List scans",
    )
    def get(self, request: Request) -> Response:
        filterset = scan_list(filters=request.query_params)
        if not filterset.is_valid():
            raise serializers.ValidationError(filterset.errors)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(filterset.qs, request, view=self)
        return paginator.get_paginated_response(ScanListSerializer(page, many=True).data)

    @extend_schema(
        operation_id="scans_create",
        request=InputSerializer,
        responses={
            201: ScanBriefSerializer,
            404: OpenApiResponse(ApiErrorSerializer, description="No sample with that SHA-256"),
        },
        examples=[
            OpenApiExample(
                "Re-scan",
                value={"sample": UPLOAD_EXAMPLE["sha256"]},
                request_only=True,
            )
        ],
        summary="Re-scan a stored sample",
        description="Queues a new scan with the current release's signatures.",
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        sha256 = data.validated_data["sample"].lower()
        sample = sample_get(sha256=sha256)
        if sample is None:
            raise NotFoundError(f"No sample with SHA-256 {sha256}; upload it first.")
        scan = scan_create(sample=sample, user=_user(request))
        return Response(ScanBriefSerializer(scan).data, status=status.HTTP_201_CREATED)


class ScanDetailApi(APIView):
    permission_classes = [CanViewScans]

    @extend_schema(
        operation_id="scans_retrieve",
        responses={200: ScanSerializer},
        summary="A scan: status, error, verdict, score, matches with evidence, features",
    )
    def get(self, request: Request, scan_id: int) -> Response:
        scan = scan_get(scan_id=scan_id)
        if scan is None:
            raise NotFoundError(f"No scan {scan_id}.")
        return Response(ScanSerializer(scan).data)


class ScanReportApi(APIView):
    """The scan's full report as a JSON file (docs/reports.md)."""

    permission_classes = [CanViewScans]

    @extend_schema(
        operation_id="scans_report",
        responses={200: ScanReportSerializer, 404: ApiErrorSerializer},
        summary="A scan's full report: sample, features, matches, ruleset, timings, verdict",
        description=(
            "The same facts as the scan page, as one JSON document; sent as an attachment "
            "(`scan-<id>-<sha256 prefix>.json`)."
        ),
    )
    def get(self, request: Request, scan_id: int) -> Response:
        scan = scan_get(scan_id=scan_id)
        if scan is None:
            raise NotFoundError(f"No scan {scan_id}.")
        response = Response(scan_report(scan))
        response["Content-Disposition"] = f'attachment; filename="{report_filename(scan)}"'
        return response


class SampleDownloadApi(APIView):
    """The sample in a ZIP encrypted with the password ``infected`` (AES-256), audited."""

    authentication_classes = [PeopleOrDeviceTokenAuthentication, SessionAuthentication]
    permission_classes = [CanViewSamples]
    # no HEAD: each download is built and audited, so only a GET makes one
    http_method_names = ["get", "options"]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # the answer is a ZIP or a JSON error, whatever the client accepts
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        operation_id="samples_download",
        parameters=[SHA256_PARAM],
        responses={
            (200, "application/zip"): OpenApiTypes.BINARY,
            403: OpenApiResponse(
                ApiErrorSerializer, description="Not a researcher, reviewer or admin"
            ),
            404: ApiErrorSerializer,
        },
        summary="Download a sample as a ZIP encrypted with the password 'infected'",
        description=(
            "`<sha256>.zip` holding `<sha256>.apk`, WinZip AES-256 encrypted with the password "
            "`infected` (open it with 7-Zip). Researchers, reviewers and admins only; every "
            "download is written to the audit log."
        ),
    )
    def get(self, request: Request, sha256: str) -> FileResponse:
        if not may_download_sample(request.user):
            raise ForbiddenError("Only researchers, reviewers and admins may download samples.")
        sample = sample_get(sha256=sha256.lower())
        if sample is None:
            raise NotFoundError(f"No sample with SHA-256 {sha256}.")
        user = _user(request)
        assert user is not None
        try:
            archive = sample_zip(sample=sample, user=user)
        except SampleMissing as exc:
            raise NotFoundError(
                f"The file of sample {sample.sha256} is missing from storage."
            ) from exc
        return FileResponse(
            archive, as_attachment=True, filename=zip_name(sample), content_type="application/zip"
        )
