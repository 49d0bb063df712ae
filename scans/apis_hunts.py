"""REST API of retro-hunts (mounted under /api/v1/retrohunts/): thin views over
scans.retrohunts (writes) and scans.selectors (reads).

Roles: researchers and reviewers start hunts (and cancel their own; reviewers any); auditors
and everyone with a role read them.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.exceptions import NotFoundError
from portal.models import User
from portal.params import IdSerializerField, JSONBodyField
from portal.permissions import require_perms
from scans.models import RetroHunt
from scans.retrohunts import eta_seconds, retrohunt_cancel, retrohunt_create
from scans.selectors import hunt_get, hunt_list, hunt_matches

CanViewHunts = require_perms("scans.view_retrohunt")
CanStartHunts = require_perms("scans.add_retrohunt")
CanCancelHunts = require_perms("scans.change_retrohunt")

ERROR = inline_serializer(
    "HuntError",
    {"message": serializers.CharField(), "extra": serializers.DictField(required=False)},
)
ERRORS = {
    400: OpenApiResponse(ERROR, description="Invalid input"),
    403: OpenApiResponse(ERROR, description="Your role does not allow this"),
    404: OpenApiResponse(ERROR, description="No such retro-hunt"),
}


def _user(request: Request) -> User:
    assert isinstance(request.user, User)
    return request.user


def _hunt(hunt_id: int) -> RetroHunt:
    hunt = hunt_get(hunt_id=hunt_id)
    if hunt is None:
        raise NotFoundError(f"No retro-hunt {hunt_id}.")
    return hunt


class HuntRuleSerializer(serializers.Serializer):
    signature_id = serializers.IntegerField(source="id", allow_null=True)
    revision = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField()


class HuntMatchSerializer(serializers.Serializer):
    sample = serializers.CharField(source="sha256", help_text="the sample's SHA-256")
    package = serializers.CharField()
    label = serializers.CharField(help_text="the sample label when it matched")  # type: ignore[assignment]
    signature = serializers.SerializerMethodField()
    evidence = serializers.ListField(child=serializers.CharField())
    url = serializers.SerializerMethodField()

    @staticmethod
    def _sig(obj: Any) -> dict[str, Any]:
        return {"id": obj.signature_id, "name": obj.signature_name, "url": obj.signature_url}

    def get_signature(self, obj: Any) -> dict[str, Any]:
        return self._sig(obj)

    def get_url(self, obj: Any) -> str:
        return f"/samples/{obj.sha256}/"


class HuntSerializer(serializers.ModelSerializer[RetroHunt]):
    progress = serializers.IntegerField(help_text="percent of the samples scanned")
    eta_seconds = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()
    rules = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = RetroHunt
        fields = [
            "id",
            "status",
            "progress",
            "scanned",
            "total",
            "errors",
            "match_count",
            "eta_seconds",
            "chunks_total",
            "chunks_done",
            "clean_count",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "error",
            "rules",
            "url",
        ]

    def get_eta_seconds(self, obj: RetroHunt) -> int | None:
        return eta_seconds(obj)

    def get_created_by(self, obj: RetroHunt) -> str | None:
        return obj.created_by.get_username() if obj.created_by else None

    def get_rules(self, obj: RetroHunt) -> list[dict[str, Any]]:
        if "records" in obj.get_deferred_fields():
            return []
        return [
            {
                "signature_id": r["id"] or None,
                "revision": r["revision"],
                "name": r["name"],
                "kind": r["kind"],
            }
            for r in obj.records[:100]
        ]

    def get_url(self, obj: RetroHunt) -> str:
        return reverse("scans:retrohunt-detail", args=[obj.pk])


class HuntDetailSerializer(HuntSerializer):
    matches = serializers.SerializerMethodField()

    class Meta(HuntSerializer.Meta):
        fields = [*HuntSerializer.Meta.fields, "matches"]

    def get_matches(self, obj: RetroHunt) -> list[dict[str, Any]]:
        return list(HuntMatchSerializer(hunt_matches(hunt=obj), many=True).data)


START_EXAMPLES = [
    OpenApiExample("Signatures", value={"signatures": [12, 40]}, request_only=True),
    OpenApiExample(
        "An unsaved rule",
        value={
            "rule": {
                "kind": "yara",
                "body": 'rule t { strings: $a = "sendTextMessage" condition: $a }',
            }
        },
        request_only=True,
    ),
    OpenApiExample("Started", value={"id": 7}, response_only=True, status_codes=["201"]),
]


class RetroHuntListApi(APIView):
    """List retro-hunts (newest first); POST starts one."""

    # GET answers {count, next, previous, results}; the schema says so through this
    pagination_class = PageNumberPagination

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "RetroHuntCreateInput"

        signatures = serializers.ListField(
            child=IdSerializerField(),
            required=False,
            max_length=10_000,
            help_text="signature ids: their newest revisions (drafts included) are hunted",
        )
        rule = inline_serializer(
            "UnsavedRule",
            {"kind": serializers.CharField(), "body": JSONBodyField()},
            required=False,
            help_text="an unsaved rule {kind, body}, validated like a signature body",
        )

    def get_permissions(self) -> list[Any]:
        return [CanStartHunts()] if self.request.method == "POST" else [CanViewHunts()]

    @extend_schema(
        operation_id="retrohunts_list",
        parameters=[
            OpenApiParameter("page", OpenApiTypes.INT),
            OpenApiParameter("mine", OpenApiTypes.BOOL, description="only hunts I started"),
        ],
        responses={200: HuntSerializer(many=True), **ERRORS},
        summary="List retro-hunts",
    )
    def get(self, request: Request) -> Response:
        mine = request.query_params.get("mine", "").lower() in ("1", "true", "yes")
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(
            hunt_list(user=_user(request), mine=mine), request, view=self
        )
        return paginator.get_paginated_response(HuntSerializer(page, many=True).data)

    @extend_schema(
        operation_id="retrohunts_create",
        request=InputSerializer,
        responses={
            201: inline_serializer("HuntStarted", {"id": serializers.IntegerField()}),
            **ERRORS,
        },
        examples=START_EXAMPLES,
        summary="Start a retro-hunt over every stored sample",
        description=(
            'Give "signatures" (ids; their newest revisions are hunted, drafts included) or '
            '"rule" ({"kind", "body"}, not saved). The hunt runs on queue "hunts" in chunks '
            "that several workers share; poll GET /api/v1/retrohunts/{id}/."
        ),
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        hunt = retrohunt_create(
            user=_user(request),
            signature_ids=data.validated_data.get("signatures"),
            rule=data.validated_data.get("rule"),
        )
        return Response({"id": hunt.pk}, status=status.HTTP_201_CREATED)


class RetroHuntDetailApi(APIView):
    permission_classes = [CanViewHunts]

    @extend_schema(
        operation_id="retrohunts_retrieve",
        responses={200: HuntDetailSerializer, **ERRORS},
        summary="A retro-hunt: status, progress, ETA and matches",
    )
    def get(self, request: Request, hunt_id: int) -> Response:
        return Response(HuntDetailSerializer(_hunt(hunt_id)).data)


class RetroHuntCancelApi(APIView):
    permission_classes = [CanCancelHunts]

    @extend_schema(
        operation_id="retrohunts_cancel",
        request=None,
        responses={200: HuntSerializer, **ERRORS, 409: ERROR},
        summary="Cancel a queued or running retro-hunt (its remaining chunks do nothing)",
    )
    def post(self, request: Request, hunt_id: int) -> Response:
        hunt = retrohunt_cancel(hunt=_hunt(hunt_id), user=_user(request))
        return Response(HuntSerializer(hunt).data)
