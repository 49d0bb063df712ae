"""REST API of families: list, create, read and update (with signature counts)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import (
    OpenApiExample,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import generics, serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from threats import selectors, services
from threats.apis import (
    ERROR,
    ERRORS,
    by_method,
    request_user,
)
from threats.models import Category, Family, Severity


class FamilyOutput(serializers.ModelSerializer):
    """A family as every family endpoint answers it, always with its signature count."""

    signature_count = serializers.SerializerMethodField(
        help_text="signatures of this family, in any state"
    )
    url = serializers.SerializerMethodField()

    class Meta:
        model = Family
        fields = [
            "id",
            "name",
            "category",
            "severity",
            "description",
            "aliases",
            "references",
            "signature_count",
            "url",
            "created_at",
            "updated_at",
        ]

    def get_signature_count(self, obj: Family) -> int:
        # lists annotate it (selectors.family_list); one family counts its own
        count = getattr(obj, "signature_count", None)
        return int(count) if count is not None else obj.signatures.count()

    def get_url(self, obj: Family) -> str:
        return f"/families/{obj.pk}/"


class FamilyListApi(generics.ListAPIView):
    """List families (with their signature counts) and create one."""

    serializer_class = FamilyOutput
    method_perms = {"GET": ("threats.view_family",), "POST": ("threats.add_family",)}

    @extend_schema_serializer(component_name="FamilyCreateInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=64)
        category = serializers.ChoiceField(choices=Category.choices)
        severity = serializers.ChoiceField(choices=Severity.choices)
        description = serializers.CharField(required=False, allow_blank=True, default="")
        aliases = serializers.ListField(child=serializers.CharField(), required=False, default=[])
        references = serializers.ListField(
            child=serializers.CharField(), required=False, default=[]
        )

    def get_permissions(self) -> list[BasePermission]:
        return by_method(self, self.request)

    def get_queryset(self) -> Any:
        return selectors.family_list()

    @extend_schema(
        operation_id="families_create",
        request=InputSerializer,
        responses={201: FamilyOutput, **ERRORS, 409: ERROR},
        examples=[
            OpenApiExample(
                "Joker",
                value={
                    "name": "Joker",
                    "category": "sms-fraud",
                    "severity": "malicious",
                    "description": "Subscribes users to premium services by SMS and WAP.",
                    "aliases": ["Bread"],
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        family = services.family_create(actor=request_user(request), **data.validated_data)
        return Response(FamilyOutput(family).data, status=status.HTTP_201_CREATED)


class FamilyDetailApi(APIView):
    method_perms = {"GET": ("threats.view_family",), "PATCH": ("threats.change_family",)}

    @extend_schema_serializer(component_name="FamilyUpdateInput")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=64, required=False)
        category = serializers.ChoiceField(choices=Category.choices, required=False)
        severity = serializers.ChoiceField(choices=Severity.choices, required=False)
        description = serializers.CharField(required=False, allow_blank=True)
        aliases = serializers.ListField(child=serializers.CharField(), required=False)
        references = serializers.ListField(child=serializers.CharField(), required=False)

    def get_permissions(self) -> list[BasePermission]:
        return by_method(self, self.request)

    @extend_schema(operation_id="families_retrieve", responses={200: FamilyOutput, **ERRORS})
    def get(self, request: Request, pk: int) -> Response:
        return Response(FamilyOutput(selectors.family_get(pk=pk)).data)

    @extend_schema(
        operation_id="families_partial_update",
        request=InputSerializer,
        responses={200: FamilyOutput, **ERRORS, 409: ERROR},
        examples=[
            OpenApiExample(
                "Add an alias", value={"aliases": ["Bread", "Jocker"]}, request_only=True
            )
        ],
    )
    def patch(self, request: Request, pk: int) -> Response:
        family = selectors.family_get(pk=pk)
        data = self.InputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        family = services.family_update(
            family=family, actor=request_user(request), data=dict(data.validated_data)
        )
        return Response(FamilyOutput(family).data)
