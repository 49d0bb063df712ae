"""REST API of the cloud look-up (docs/lookup.md).

- ``POST /api/v1/devices/lookup/`` (device token): up to 100 app SHA-256s; per app the
  verdict under the current release, ``unknown`` for an app never scanned here, and the
  family. Per device ``DEVICE_LOOKUP_RATE``, then 429 with Retry-After.
- ``GET /api/v1/samples/wanted/`` (people with a role): the unknown apps phones ask about
  most, to collect next.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from portal.exceptions import ApplicationError
from portal.permissions import require_perms
from portal.schema import ApiErrorSerializer
from releases.public import DevicePrincipal, DeviceTokenAuthentication, IsDevice
from scans.lookup import MAX_LOOKUP, apps_lookup, lookup_hashes, lookups_unknown_top

_LIMIT = re.compile(r"[0-9]{1,4}")


class DeviceLookupThrottle(SimpleRateThrottle):
    """Per device: ``DEVICE_LOOKUP_RATE`` look-ups (read at call time), then 429."""

    scope = "device_lookup"

    def get_rate(self) -> str:
        return str(settings.DEVICE_LOOKUP_RATE)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        user = request.user
        if not isinstance(user, DevicePrincipal):
            return None
        return f"throttle_device_lookup_{user.device.pk}"


class LookupInputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "DeviceLookupInput"

    sha256s = serializers.ListField(
        child=serializers.RegexField(r"^[0-9a-fA-F]{64}$", max_length=64),
        min_length=1,
        max_length=MAX_LOOKUP,
        help_text="SHA-256 of each app file (APK) to look up",
    )


class LookupAnswerSerializer(serializers.Serializer):
    class Meta:
        ref_name = "DeviceLookupAnswer"

    sha256 = serializers.CharField()
    verdict = serializers.ChoiceField(choices=["malicious", "suspicious", "clean", "unknown"])
    label = serializers.ChoiceField(  # type: ignore[assignment]
        choices=["clean", "malicious", "unknown"],
        help_text="what researchers know of the app, apart from what the rules say",
    )
    family = serializers.CharField(allow_null=True)
    signature = serializers.CharField(
        allow_null=True, help_text="the strongest signature behind the verdict"
    )
    release = serializers.IntegerField(
        allow_null=True, help_text="the release the verdict is under (null: unknown app)"
    )


class LookupResultSerializer(serializers.Serializer):
    class Meta:
        ref_name = "DeviceLookupResult"

    release = serializers.IntegerField(
        allow_null=True, help_text="the release the portal's verdicts are brought to"
    )
    cache_seconds = serializers.IntegerField(
        help_text="keep each app's answer this long, or until this device's release changes"
    )
    results = LookupAnswerSerializer(many=True)


class DeviceLookupApi(APIView):
    authentication_classes = [DeviceTokenAuthentication]
    permission_classes = [IsDevice]
    throttle_classes = [DeviceLookupThrottle]

    @extend_schema(
        operation_id="devices_lookup",
        request=LookupInputSerializer,
        responses={
            200: LookupResultSerializer,
            400: OpenApiResponse(ApiErrorSerializer, description="Not a list of 1 to 100 SHA-256s"),
            429: OpenApiResponse(
                ApiErrorSerializer, description="Too many look-ups from this device; Retry-After"
            ),
        },
        summary="Verdicts of up to 100 apps by SHA-256, under the current release",
        description=(
            "Each app's answer depends on its hash and the release only: keep it for "
            "cache_seconds or until this device's release changes. The portal counts how often "
            "each hash is asked about, without recording which device asked."
        ),
    )
    def post(self, request: Request) -> Response:
        data = request.data if isinstance(request.data, dict) else {}
        result = apps_lookup(sha256s=lookup_hashes(data.get("sha256s")))
        return Response(
            {
                "release": result.release,
                "cache_seconds": result.cache_seconds,
                "results": [
                    {
                        "sha256": a.sha256,
                        "verdict": a.verdict,
                        "label": a.label,
                        "family": a.family,
                        "signature": a.signature,
                        "release": a.release,
                    }
                    for a in result.answers
                ],
            }
        )


class WantedSerializer(serializers.Serializer):
    class Meta:
        ref_name = "WantedApp"

    sha256 = serializers.CharField()
    lookups = serializers.IntegerField(help_text="how many times phones asked about it")
    first_at = serializers.DateTimeField()
    last_at = serializers.DateTimeField()
    url = serializers.CharField(help_text="its sample page, once it is stored")


class WantedApi(APIView):
    permission_classes = [require_perms("scans.view_sample")]

    @extend_schema(
        operation_id="samples_wanted",
        parameters=[
            OpenApiParameter(
                "limit", {"type": "integer", "minimum": 1, "maximum": 1000}, required=False
            )
        ],
        responses={
            200: WantedSerializer(many=True),
            400: OpenApiResponse(ApiErrorSerializer, description="limit is not 1 to 1000"),
        },
        summary="The unknown apps phones look up most (collect these next)",
    )
    def get(self, request: Request) -> Response:
        raw = request.query_params.get("limit", "100")
        if not (_LIMIT.fullmatch(raw) and 0 < int(raw) <= 1000):
            raise ApplicationError("limit must be a whole number from 1 to 1000.")
        limit = int(raw)
        return Response(
            [
                {
                    "sha256": w.sha256,
                    "lookups": w.count,
                    "first_at": w.first_at,
                    "last_at": w.last_at,
                    "url": reverse("scans:sample-detail", args=[w.sha256]),
                }
                for w in lookups_unknown_top(limit=limit)
            ]
        )
