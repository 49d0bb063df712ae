"""REST API of labels (docs/verdicts.md): change one sample's label, or many at once, with a
reason that the audit log keeps. A thin view over ``scans.labels``."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.exceptions import NotFoundError
from portal.models import User
from portal.permissions import require_perms
from portal.schema import ApiErrorSerializer
from scans.labels import MAX_RELABEL, RelabelResult, samples_relabel
from scans.models import Label
from scans.selectors import sample_get

CanRelabel = require_perms("scans.view_sample", "scans.change_sample")

ERRORS = {
    400: OpenApiResponse(ApiErrorSerializer, description="Invalid input"),
    403: OpenApiResponse(ApiErrorSerializer, description="Your role does not allow this"),
}


class LabelInputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "LabelChangeInput"

    label = serializers.ChoiceField(choices=Label.values)  # type: ignore[assignment]
    reason = serializers.CharField(max_length=2000, help_text="why: kept in the audit log")


class BulkLabelInputSerializer(LabelInputSerializer):
    class Meta:
        ref_name = "BulkLabelChangeInput"

    hashes = serializers.ListField(
        child=serializers.CharField(max_length=64),
        min_length=1,
        max_length=MAX_RELABEL,
        help_text="MD5, SHA-1 or SHA-256 of stored samples",
    )


class RelabelResultSerializer(serializers.Serializer):
    label = serializers.CharField()  # type: ignore[assignment]
    changed = serializers.ListField(child=serializers.CharField(), help_text="SHA-256s")
    unchanged = serializers.ListField(
        child=serializers.CharField(), help_text="SHA-256s that already had the label"
    )
    not_found = serializers.ListField(
        child=serializers.CharField(), help_text="hashes of no stored sample"
    )
    stale_hunts = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="retro-hunts whose clean hits this changed: gates on them must hunt again",
    )


def _data(result: RelabelResult) -> dict[str, object]:
    return {
        "label": result.label,
        "changed": list(result.changed),
        "unchanged": list(result.unchanged),
        "not_found": list(result.not_found),
        "stale_hunts": list(result.stale_hunts),
    }


def _user(request: Request) -> User:
    assert isinstance(request.user, User)
    return request.user


class SampleLabelsApi(APIView):
    permission_classes = [CanRelabel]

    @extend_schema(
        operation_id="samples_labels_change",
        request=BulkLabelInputSerializer,
        responses={200: RelabelResultSerializer, **ERRORS},
        summary="Change the label of many samples at once (audited, with a reason)",
        description=(
            "The label is what we know (known clean, known malicious, unknown), not what the "
            "rules say. A change to or from clean makes stale the retro-hunts that hit the "
            "sample, so gates resting on them ask for a new hunt."
        ),
    )
    def post(self, request: Request) -> Response:
        data = BulkLabelInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = samples_relabel(
            hashes=data.validated_data["hashes"],
            label=data.validated_data["label"],
            reason=data.validated_data["reason"],
            by=_user(request),
        )
        return Response(_data(result))


class SampleLabelApi(APIView):
    permission_classes = [CanRelabel]

    @extend_schema(
        operation_id="samples_label_change",
        request=LabelInputSerializer,
        responses={
            200: RelabelResultSerializer,
            **ERRORS,
            404: OpenApiResponse(ApiErrorSerializer, description="No such sample"),
        },
        summary="Change one sample's label (audited, with a reason)",
    )
    def post(self, request: Request, sha256: str) -> Response:
        if sample_get(sha256=sha256) is None:
            raise NotFoundError(f"No sample {sha256[:64]}.")
        data = LabelInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = samples_relabel(
            hashes=[sha256],
            label=data.validated_data["label"],
            reason=data.validated_data["reason"],
            by=_user(request),
        )
        return Response(_data(result))
