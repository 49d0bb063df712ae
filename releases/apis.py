"""REST API of the releases app: releases for people, and the device API for phones.

Device endpoints authenticate with ``DeviceTokenAuthentication`` only; every other endpoint
keeps the site's defaults (people's tokens and sessions), which never accept a device token.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.exceptions import NotFoundError
from portal.params import parse_int
from portal.permissions import require_perms
from portal.schema import ApiErrorSerializer
from releases.authentication import DevicePrincipal, DeviceTokenAuthentication, IsDevice
from releases.halts import auto_halts_by_release, release_kill_switch
from releases.models import AutoHalt, Channel, Release
from releases.selectors import release_adoption, release_diff
from releases.services import (
    device_register,
    release_halt,
    release_publish,
    release_rollout,
)
from releases.throttles import DeviceRegisterThrottle
from releases.update_check import device_update_limited, update_answer

# Release numbers and engine versions are PositiveIntegerFields (2^31-1 on every database).
RELEASE_NUMBER_MAX = 2**31 - 1


class DeviceTokenScheme(OpenApiAuthenticationExtension):
    target_class = "releases.authentication.DeviceTokenAuthentication"
    name = "deviceTokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <device token>` from /api/v1/devices/register/",
        }


# --- devices ------------------------------------------------------------------------------


class DeviceRegisterApi(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes = [DeviceRegisterThrottle]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "DeviceRegisterInput"

        enrollment_key = serializers.CharField(max_length=200)
        model = serializers.CharField(max_length=100, required=False, allow_blank=True)
        os_version = serializers.CharField(max_length=100, required=False, allow_blank=True)
        app_version = serializers.CharField(max_length=50, required=False, allow_blank=True)
        engine_version = serializers.IntegerField(
            min_value=1, max_value=RELEASE_NUMBER_MAX, required=False, default=1
        )
        channel = serializers.ChoiceField(choices=Channel.choices, default=Channel.STABLE)

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "DeviceRegisterOutput"

        device_id = serializers.CharField()
        token = serializers.CharField()

    @extend_schema(
        request=InputSerializer,
        responses={
            201: OutputSerializer,
            400: ApiErrorSerializer,
            403: OpenApiResponse(ApiErrorSerializer, description="The enrollment key is not valid"),
            429: OpenApiResponse(
                ApiErrorSerializer, description="Too many registrations from this address"
            ),
        },
        auth=[],
        summary="Enrol a device (enrollment key); the token is shown once",
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        enrolment = device_register(**data.validated_data)
        body = {"device_id": enrolment.device.device_id, "token": enrolment.token}
        return Response(self.OutputSerializer(body).data, status=status.HTTP_201_CREATED)


class DeviceUpdateApi(APIView):
    """Also answered by ``releases.update_check.UpdateCheckFastPath`` in front of Django."""

    authentication_classes = [DeviceTokenAuthentication]
    permission_classes = [IsDevice]

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "DeviceUpdateOutput"

        version = serializers.IntegerField(required=False)
        target = serializers.CharField(required=False)
        up_to_date = serializers.BooleanField(required=False)
        min_wait_seconds = serializers.IntegerField()

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "installed",
                {"type": "integer", "minimum": 0, "maximum": RELEASE_NUMBER_MAX},
                description="the release installed (0: none)",
            )
        ],
        responses={200: OutputSerializer, 400: ApiErrorSerializer, 429: ApiErrorSerializer},
        summary="Which release this device should have, and the TUF target to fetch",
    )
    def get(self, request: Request) -> Response:
        installed = parse_int(
            request.query_params.get("installed", "0"),
            field="installed",
            lowest=0,
            highest=RELEASE_NUMBER_MAX,
        )
        principal = request.user
        assert isinstance(principal, DevicePrincipal)
        limited = device_update_limited(principal.device)
        if limited is not None:
            raise limited
        return Response(update_answer(device=principal.device, installed=installed))


# --- releases, for people -----------------------------------------------------------------

_CAN_VIEW = require_perms("releases.view_release")
_CAN_PUBLISH = require_perms("releases.publish_release")
_CAN_STEER = require_perms("releases.rollout_release")


class ReleaseOutputSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username")

    class Meta:
        model = Release
        fields = [
            "number",
            "state",
            "created_by",
            "created_at",
            "published_at",
            "notes",
            "signature_count",
            "noisy_count",
            "added_count",
            "removed_count",
            "changed_count",
            "rollout_percent",
            "halted",
            "halted_at",
            "state_sha256",
            "build_seconds",
            "error",
        ]


_DIFF_ENTRY = inline_serializer(
    "ReleaseDiffEntry",
    {
        "signature_id": serializers.IntegerField(),
        "revision": serializers.IntegerField(),
        "noisy": serializers.BooleanField(),
        "name": serializers.CharField(),
        "kind": serializers.CharField(),
        "severity": serializers.CharField(help_text="the severity this revision ships with"),
        "url": serializers.CharField(),
        "approved_by": serializers.CharField(allow_null=True),
        "approved_at": serializers.DateTimeField(allow_null=True),
        # only on added/changed entries approved although the gate hunt hit clean apps
        "gate_override": inline_serializer(
            "ReleaseGateOverride",
            {
                "reason": serializers.CharField(),
                "clean_hits": serializers.IntegerField(),
                "hunt": serializers.IntegerField(allow_null=True),
            },
            required=False,
            help_text="present when the revision was approved with an override of clean hits",
        ),
    },
)


_FILE = inline_serializer(
    "ReleaseFileEntry",
    {
        "target": serializers.CharField(),
        "kind": serializers.CharField(),
        "base": serializers.IntegerField(allow_null=True),
        "size": serializers.IntegerField(),
        "sha256": serializers.CharField(),
        "listed": serializers.BooleanField(),
    },
).__class__
_CHANGE = inline_serializer("ReleaseDiffChange", {"before": _DIFF_ENTRY, "after": _DIFF_ENTRY})
_DIFF = inline_serializer(
    "ReleaseDiff",
    {
        "base": serializers.IntegerField(allow_null=True),
        "added": _DIFF_ENTRY.__class__(many=True),
        "removed": _DIFF_ENTRY.__class__(many=True),
        "changed": _CHANGE.__class__(many=True),
    },
)
_ADOPTION = inline_serializer(
    "ReleaseAdoption",
    {
        "devices": serializers.IntegerField(),
        "on_this_release": serializers.IntegerField(),
        "on_this_or_newer": serializers.IntegerField(),
    },
)


class AutoHaltSerializer(serializers.ModelSerializer):
    class Meta:
        model = AutoHalt
        fields = [
            "rule",
            "signature_id",
            "revision",
            "app_sha256",
            "package",
            "cert_sha256",
            "cohort",
            "devices",
            "reporting",
            "reason",
            "created_at",
            "resolved_by_release",
        ]


class ReleaseDetailSerializer(ReleaseOutputSerializer):
    files = serializers.SerializerMethodField()
    diff = serializers.SerializerMethodField()
    adoption = serializers.SerializerMethodField()
    auto_halts = serializers.SerializerMethodField()

    class Meta(ReleaseOutputSerializer.Meta):
        fields = [*ReleaseOutputSerializer.Meta.fields, "files", "diff", "adoption", "auto_halts"]

    @extend_schema_field(AutoHaltSerializer(many=True))
    def get_auto_halts(self, obj: Release) -> list[dict[str, Any]]:
        halts = auto_halts_by_release([obj.number]).get(obj.number, [])
        return list(AutoHaltSerializer(halts, many=True).data)

    @extend_schema_field(_FILE(many=True))
    def get_files(self, obj: Release) -> list[dict[str, Any]]:
        return [
            {
                "target": f.target,
                "kind": f.kind,
                "base": f.base,
                "size": f.size,
                "sha256": f.sha256,
                "listed": f.listed,
            }
            for f in obj.files.all()
        ]

    @extend_schema_field(_DIFF)
    def get_diff(self, obj: Release) -> dict[str, Any]:
        return release_diff(obj)

    @extend_schema_field(_ADOPTION)
    def get_adoption(self, obj: Release) -> dict[str, int]:
        return release_adoption(obj.number)


def _release(number: int) -> Release:
    release = Release.objects.select_related("created_by").filter(number=number).first()
    if release is None:
        raise NotFoundError(f"There is no release {number}.")
    return release


class ReleaseListApi(APIView):
    # GET answers {count, next, previous, results}; the schema says so through this
    pagination_class = PageNumberPagination

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ReleaseListInput"

        notes = serializers.CharField(required=False, allow_blank=True, default="")
        rollout_percent = serializers.IntegerField(min_value=1, max_value=100, required=False)

    def get_permissions(self) -> list[BasePermission]:
        return [_CAN_PUBLISH() if self.request.method == "POST" else _CAN_VIEW()]

    @extend_schema(
        responses={200: ReleaseOutputSerializer(many=True)}, summary="Releases, newest first"
    )
    def get(self, request: Request) -> Response:
        releases: QuerySet[Release] = Release.objects.select_related("created_by").order_by(
            "-number"
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(releases, request, view=self)
        return paginator.get_paginated_response(ReleaseOutputSerializer(page, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={
            202: ReleaseOutputSerializer,
            400: ApiErrorSerializer,
            403: ApiErrorSerializer,
            409: OpenApiResponse(
                ApiErrorSerializer,
                description="A release is still being built (extra.building names it), or "
                "shipping signatures were never gated",
            ),
            429: OpenApiResponse(
                ApiErrorSerializer, description="Published too often; see Retry-After"
            ),
        },
        summary="Publish a release (reviewers): snapshot now, files built on queue publish",
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assert request.user.is_authenticated
        release = release_publish(by=request.user, **data.validated_data)
        return Response(ReleaseOutputSerializer(release).data, status=status.HTTP_202_ACCEPTED)


class ReleaseDetailApi(APIView):
    permission_classes = [_CAN_VIEW]

    @extend_schema(
        responses={200: ReleaseDetailSerializer},
        summary="A release, its files, the diff from the previous release, adoption",
    )
    def get(self, request: Request, number: int) -> Response:
        return Response(ReleaseDetailSerializer(_release(number)).data)


class ReleaseRolloutApi(APIView):
    permission_classes = [_CAN_STEER]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ReleaseRolloutInput"

        percent = serializers.IntegerField(min_value=1, max_value=100)

    @extend_schema(
        request=InputSerializer,
        responses={
            200: ReleaseOutputSerializer,
            409: OpenApiResponse(
                ApiErrorSerializer, description="The release is halted, or failed to build"
            ),
        },
        summary="Set the share of stable devices offered this release",
    )
    def post(self, request: Request, number: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        release = release_rollout(
            number=number,
            percent=data.validated_data["percent"],
            by=request.user,  # type: ignore[arg-type]
        )
        return Response(ReleaseOutputSerializer(release).data)


class ReleaseHaltApi(APIView):
    permission_classes = [_CAN_STEER]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ReleaseHaltInput"

        # why, for the audit log and whoever reads it during the incident
        reason = serializers.CharField(max_length=2000)

    @extend_schema(
        request=InputSerializer,
        responses={200: ReleaseOutputSerializer},
        summary="Stop offering this release to any device; the reason is audited",
    )
    def post(self, request: Request, number: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        release = release_halt(
            number=number,
            by=request.user,  # type: ignore[arg-type]
            reason=data.validated_data["reason"],
        )
        return Response(ReleaseOutputSerializer(release).data)


class ReleaseKillSwitchApi(APIView):
    permission_classes = [_CAN_PUBLISH]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "ReleaseKillSwitchInput"

        signature_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)

    @extend_schema(
        request=InputSerializer,
        responses={
            202: ReleaseOutputSerializer,
            400: ApiErrorSerializer,
            403: ApiErrorSerializer,
            404: OpenApiResponse(
                ApiErrorSerializer, description="No automatic halt of this release names it"
            ),
            409: OpenApiResponse(
                ApiErrorSerializer,
                description="Used already, the signature is not deployed, or a release is "
                "still being built",
            ),
            429: OpenApiResponse(
                ApiErrorSerializer, description="Published too often; see Retry-After"
            ),
        },
        summary="The automatic halt's kill switch: mark the signature noisy, publish an urgent "
        "release",
    )
    def post(self, request: Request, number: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        release = release_kill_switch(
            number=number,
            signature_id=data.validated_data["signature_id"],
            by=request.user,  # type: ignore[arg-type]
        )
        return Response(ReleaseOutputSerializer(release).data, status=status.HTTP_202_ACCEPTED)
