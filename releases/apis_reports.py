"""REST API of detection reports: phones post batches and may delete themselves; people read
the aggregates (docs/privacy.md).

- ``POST /api/v1/devices/reports/`` (device token): a batch of detections and what is
  installed now. 201 with a receipt; the same batch id again from the same device: 200 with
  the same receipt and nothing stored. A bad field: 400 naming it (``detections[3].app_sha256``)
  and nothing stored. Per device ``DEVICE_REPORT_RATE``, then 429 with Retry-After.
- ``DELETE /api/v1/devices/me/`` (device token): the device, its reports and batches go.
- ``GET /api/v1/devices/detections/?signature=<id>`` and
  ``GET /api/v1/releases/<n>/detections/`` (people with a role): the aggregates.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from portal.exceptions import NotFoundError, body_too_big_error
from portal.params import ID_MAX, IdSerializerField, parse_id
from portal.parsers import MAX_JSON_DEPTH, BoundedJSONParser, json_depth, too_deep_error
from portal.permissions import require_perms
from portal.schema import ApiErrorSerializer
from releases.authentication import DevicePrincipal, DeviceTokenAuthentication, IsDevice
from releases.models import Release
from releases.selectors_reports import release_detections, signature_detections
from releases.services_reports import (
    MAX_BODY_BYTES,
    MAX_DETECTIONS,
    NUMBER_MAX,
    detections_report,
    device_delete,
    report_batch_parse,
)


class ReportJSONParser(BoundedJSONParser):
    """JSON bounded to one batch's size (413 beyond ``MAX_BODY_BYTES``), and in depth."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        data = stream.read(MAX_BODY_BYTES + 1)
        if len(data) > MAX_BODY_BYTES:
            raise body_too_big_error(MAX_BODY_BYTES)
        depth = json_depth(data)
        if depth > MAX_JSON_DEPTH:
            raise too_deep_error(depth)
        return super().parse(io.BytesIO(data), media_type, parser_context)


class DeviceReportThrottle(SimpleRateThrottle):
    """Per device: ``DEVICE_REPORT_RATE`` batches (read at call time), then 429 + Retry-After."""

    scope = "device_report"

    def get_rate(self) -> str:
        return str(settings.DEVICE_REPORT_RATE)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        user = request.user
        if not isinstance(user, DevicePrincipal):
            return None
        return f"throttle_device_report_{user.device.pk}"


def _device(request: Request) -> DevicePrincipal:
    principal = request.user
    assert isinstance(principal, DevicePrincipal)
    return principal


# --- phones -------------------------------------------------------------------------------


# What the schema says of the body; report_batch_parse checks it (and names a bad field).
class DetectionSerializer(serializers.Serializer):
    class Meta:
        ref_name = "DeviceReportDetection"

    signature_id = IdSerializerField()
    revision = serializers.IntegerField(min_value=1, max_value=NUMBER_MAX)
    release = serializers.IntegerField(min_value=1, max_value=NUMBER_MAX)
    app_sha256 = serializers.RegexField(r"^[0-9a-fA-F]{64}$", max_length=64)
    package = serializers.RegexField(
        r"^[A-Za-z0-9_.]*$",
        max_length=255,
        allow_blank=True,
        help_text="the app's Android package name",
    )
    cert_sha256 = serializers.RegexField(
        r"^([0-9a-fA-F]{64})?$",
        max_length=64,
        required=False,
        allow_blank=True,
        help_text="SHA-256 of the signer's certificate; empty or absent when unknown",
    )
    detected_at = serializers.DateTimeField(
        help_text="with a time zone; kept within the retention window and not after receipt"
    )


class InstalledSerializer(serializers.Serializer):
    class Meta:
        ref_name = "DeviceReportInstalled"

    release = serializers.IntegerField(min_value=0, max_value=NUMBER_MAX)
    engine_version = serializers.IntegerField(min_value=1, max_value=NUMBER_MAX)


class BatchSerializer(serializers.Serializer):
    class Meta:
        ref_name = "DeviceReportBatch"

    batch_id = serializers.UUIDField(help_text="a new UUID per batch; a repeat is idempotent")
    installed = InstalledSerializer(
        help_text="what the device has now (replaces the last-seen of update checks)"
    )
    detections = serializers.ListField(child=DetectionSerializer(), max_length=MAX_DETECTIONS)


class ReceiptSerializer(serializers.Serializer):
    class Meta:
        ref_name = "DeviceReportReceipt"

    batch_id = serializers.UUIDField()
    accepted = serializers.IntegerField(help_text="detections stored from this batch")
    received_at = serializers.DateTimeField()


class DeviceReportApi(APIView):
    authentication_classes = [DeviceTokenAuthentication]
    permission_classes = [IsDevice]
    throttle_classes = [DeviceReportThrottle]
    parser_classes = [ReportJSONParser]

    @extend_schema(
        request=BatchSerializer,
        responses={
            201: ReceiptSerializer,
            200: OpenApiResponse(
                ReceiptSerializer,
                description="This batch id was received before: the same receipt, nothing stored",
            ),
            400: OpenApiResponse(
                ApiErrorSerializer,
                description="A field is not valid; extra.fields names it, e.g. "
                "detections[3].app_sha256. Nothing of the batch is stored.",
            ),
            413: OpenApiResponse(
                ApiErrorSerializer, description=f"The batch is over {MAX_BODY_BYTES} bytes"
            ),
            429: OpenApiResponse(
                ApiErrorSerializer, description="Too many batches from this device; Retry-After"
            ),
        },
        summary="Report what this device detected, and what it has installed now",
    )
    def post(self, request: Request) -> Response:
        batch = report_batch_parse(request.data)
        receipt = detections_report(device=_device(request).device, batch=batch)
        code = status.HTTP_200_OK if receipt.duplicate else status.HTTP_201_CREATED
        return Response(ReceiptSerializer(receipt).data, status=code)


class DeviceMeApi(APIView):
    authentication_classes = [DeviceTokenAuthentication]
    permission_classes = [IsDevice]

    @extend_schema(
        request=None,
        responses={204: OpenApiResponse(description="The device and its reports are deleted")},
        summary="Delete this device, its reports and batches (the app on uninstall)",
    )
    def delete(self, request: Request) -> Response:
        device_delete(device=_device(request).device)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- people -------------------------------------------------------------------------------


class _AppSerializer(serializers.Serializer):
    class Meta:
        ref_name = "DetectionApp"

    package = serializers.CharField()
    cert_sha256 = serializers.CharField()
    devices = serializers.IntegerField(help_text="distinct devices in the last window_days")
    reports = serializers.IntegerField(help_text="all reports received")
    first_seen = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()


class SignatureDetectionsSerializer(serializers.Serializer):
    class Meta:
        ref_name = "SignatureDetections"

    signature_id = serializers.IntegerField()
    window_days = serializers.IntegerField(help_text="raw reports are kept this many days")
    devices = serializers.IntegerField(help_text="distinct devices in the last window_days")
    reports = serializers.IntegerField(help_text="all reports received")
    first_seen = serializers.DateTimeField(allow_null=True)
    last_seen = serializers.DateTimeField(allow_null=True)
    apps = _AppSerializer(many=True, help_text="by package and signer, most devices first")


class _AdoptionSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ReportAdoption"

    window_days = serializers.IntegerField()
    devices_reporting = serializers.IntegerField(help_text="devices that reported in the window")
    on_this_release = serializers.IntegerField()
    on_this_or_newer = serializers.IntegerField()


class _SignatureCountSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ReleaseSignatureDetections"

    signature_id = serializers.IntegerField()
    revision = serializers.IntegerField()
    name = serializers.CharField(help_text="empty for a signature this portal does not know")
    url = serializers.CharField()
    devices = serializers.IntegerField()
    reports = serializers.IntegerField()
    first_seen = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()


class ReleaseDetectionsSerializer(serializers.Serializer):
    class Meta:
        ref_name = "ReleaseDetections"

    release = serializers.IntegerField()
    adoption = _AdoptionSerializer()
    signature_count = serializers.IntegerField()
    signatures = _SignatureCountSerializer(many=True, help_text="most devices first")


class SignatureDetectionsApi(APIView):
    permission_classes = [require_perms("releases.view_device")]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "signature",
                {"type": "integer", "minimum": 1, "maximum": ID_MAX},
                required=True,
                description="the signature id",
            )
        ],
        responses={200: SignatureDetectionsSerializer, 400: ApiErrorSerializer},
        summary="What phones report of a signature: devices, apps (package, signer), since when",
    )
    def get(self, request: Request) -> Response:
        signature_id = parse_id(request.query_params.get("signature"), field="signature")
        found = signature_detections(signature_id=signature_id)
        return Response(SignatureDetectionsSerializer(found).data)


class ReleaseDetectionsApi(APIView):
    permission_classes = [require_perms("releases.view_release")]

    @extend_schema(
        responses={200: ReleaseDetectionsSerializer},
        summary="Adoption from device reports and detections per signature of a release",
    )
    def get(self, request: Request, number: int) -> Response:
        if not Release.objects.filter(number=number).exists():
            raise NotFoundError(f"There is no release {number}.")
        return Response(ReleaseDetectionsSerializer(release_detections(number=number)).data)
