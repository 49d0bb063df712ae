"""REST API of the signature database (mounted under /api/v1/).

Thin views (HackSoft style): each parses its input with a nested serializer, calls one
service or selector, and answers with a nested output serializer. Errors are JSON
``{"message", "extra"}`` through portal's exception handler.

Roles: researchers create, edit their own drafts, submit and import; reviewers also approve,
reject (never their own work), mark noisy and disable; auditors read; admins do everything.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import generics, serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from engine.exporters import to_csv, to_stix, to_yara
from engine.kinds import REGISTRY, get_kind
from portal.exceptions import ApplicationError, ForbiddenError
from portal.models import User
from portal.params import IdSerializerField, JSONBodyField, parse_id_or_name
from portal.permissions import require_perms
from threats import selectors, services
from threats.api import signature_url
from threats.models import Category, Family, Severity, Signature, Status

VIEW = "threats.view_signature"
ADD = "threats.add_signature"
CHANGE = "threats.change_signature"
DELETE = "threats.delete_signature"
REVIEW = "threats.review_signature"
MODERATE = "threats.moderate_signature"
IMPORT = "threats.import_signature"

ERROR = inline_serializer(
    "Error",
    {"message": serializers.CharField(), "extra": serializers.DictField(required=False)},
)
ERRORS = {
    400: OpenApiResponse(ERROR, description="Invalid input"),
    403: OpenApiResponse(ERROR, description="Your role does not allow this"),
    404: OpenApiResponse(ERROR, description="No such object"),
}
DUPLICATE_EXAMPLE = OpenApiExample(
    "Duplicate",
    value={
        "message": "The same signature already exists (#42).",
        "extra": {"existing": {"id": 42, "url": "/signatures/42/"}},
    },
    response_only=True,
    status_codes=["409"],
)
HASH_EXAMPLE = {
    "kind": "hash",
    "body": {
        "algorithm": "sha256",
        "target": "apk",
        "value": "3f9a6c1d2b7e4f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708",
    },
    "family": "Joker",
    "severity": "malicious",
    "tags": ["premium-sms"],
}
YARA_EXAMPLE = {
    "kind": "yara",
    "body": (
        'rule premium_sms_sender {\n  strings:\n    $a = "sendTextMessage"\n'
        "  condition:\n    $a and android.permission_count > 0\n}\n"
    ),
    "family": 3,
}


def _by_method(view: Any, request: Request) -> list[BasePermission]:
    perms: tuple[str, ...] = view.method_perms.get(request.method or "GET", (VIEW,))
    return [require_perms(*perms)()]


def _user(request: Request) -> User:
    assert isinstance(request.user, User)
    return request.user


def family_by_ref(value: Any) -> Family:
    """A family by id or by name (case-insensitive); a clear 400 when there is none."""
    ref = parse_id_or_name(value, field="family")
    family = (
        Family.objects.filter(pk=ref).first()
        if isinstance(ref, int)
        else Family.objects.filter(name__iexact=ref).first()
    )
    if family is None:
        raise ApplicationError(
            f"Unknown family {str(ref)[:80]!r}.", {"fields": {"family": ["No such family."]}}
        )
    return family


# --- families ------------------------------------------------------------------------------
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
        return _by_method(self, self.request)

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
        family = services.family_create(actor=_user(request), **data.validated_data)
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
        return _by_method(self, self.request)

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
            family=family, actor=_user(request), data=dict(data.validated_data)
        )
        return Response(FamilyOutput(family).data)


# --- signatures ----------------------------------------------------------------------------
class SignatureRow(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    url = serializers.SerializerMethodField()
    kind = serializers.CharField()
    status = serializers.CharField()
    status_reason = serializers.CharField()
    severity = serializers.CharField()
    family = inline_serializer(
        "FamilyRef",
        {
            "id": serializers.IntegerField(),
            "name": serializers.CharField(),
            "category": serializers.CharField(),
        },
    )
    author = serializers.CharField(source="author.username")
    tags = serializers.SerializerMethodField()
    revision = serializers.IntegerField(source="revision_number")
    revision_state = serializers.SerializerMethodField()
    summary = serializers.SerializerMethodField()
    updated_at = serializers.DateTimeField()

    def get_url(self, obj: Signature) -> str:
        return signature_url(obj.pk)

    def get_tags(self, obj: Signature) -> list[str]:
        return [t.name for t in obj.tags.all()]

    def get_revision_state(self, obj: Signature) -> str | None:
        return obj.current_revision.state if obj.current_revision else None

    def get_summary(self, obj: Signature) -> str:
        rev = obj.current_revision
        if rev is None or obj.status == Status.INVALID or obj.kind not in REGISTRY:
            return obj.status_reason[:80]
        try:
            return get_kind(obj.kind).summary(rev.body)
        except Exception:
            return ""


class SignatureDetail(SignatureRow):
    body = serializers.SerializerMethodField()
    deployed_revision = serializers.SerializerMethodField()
    deployed_severity = serializers.SerializerMethodField(
        help_text="the severity phones get now (the deployed revision's), null if none ships"
    )
    deployed_family = serializers.SerializerMethodField(
        help_text="the family phones get now (the deployed revision's), null if none ships"
    )
    references = serializers.ListField(child=serializers.CharField())
    linked_samples = serializers.ListField(child=serializers.CharField())
    description = serializers.CharField()
    created_at = serializers.DateTimeField()

    @extend_schema_field(OpenApiTypes.ANY)
    def get_body(self, obj: Signature) -> Any:
        return obj.current_revision.body if obj.current_revision else None

    def get_deployed_revision(self, obj: Signature) -> int | None:
        rev = obj.deployed_revision
        return rev.number if rev is not None else None

    def get_deployed_severity(self, obj: Signature) -> str | None:
        rev = obj.deployed_revision
        return rev.severity if rev is not None else None

    def get_deployed_family(self, obj: Signature) -> str | None:
        rev = obj.deployed_revision
        return rev.family.name if rev is not None else None


def _detail(sig: Signature) -> dict[str, Any]:
    return dict(SignatureDetail(selectors.signature_get(pk=sig.pk)).data)


@extend_schema_view(
    get=extend_schema(
        responses={
            200: SignatureRow(many=True),
            400: OpenApiResponse(ERROR, description="A filter value that is not valid"),
        }
    )
)
class SignatureListApi(generics.ListAPIView):
    """List signatures with filters, or create a draft."""

    serializer_class = SignatureRow
    filterset_class = selectors.SignatureFilter
    method_perms = {"GET": (VIEW,), "POST": (ADD,)}

    @extend_schema_serializer(component_name="SignatureCreateInput")
    class InputSerializer(serializers.Serializer):
        kind = serializers.CharField(help_text=f"one of {', '.join(REGISTRY)}")
        body = JSONBodyField(help_text="a string for yara; an object for other kinds")
        family = serializers.CharField(help_text="family id or name")
        severity = serializers.ChoiceField(choices=Severity.choices, required=False)
        tags = serializers.ListField(child=serializers.CharField(), required=False, default=[])
        references = serializers.ListField(
            child=serializers.CharField(), required=False, default=[]
        )
        linked_samples = serializers.ListField(
            child=serializers.CharField(), required=False, default=[]
        )
        description = serializers.CharField(required=False, allow_blank=True, default="")

    def get_permissions(self) -> list[BasePermission]:
        return _by_method(self, self.request)

    def get_queryset(self) -> Any:
        return selectors.signature_queryset()

    @extend_schema(
        operation_id="signatures_create",
        request=InputSerializer,
        responses={201: SignatureDetail, **ERRORS, 409: ERROR},
        examples=[
            OpenApiExample("A hash", value=HASH_EXAMPLE, request_only=True),
            OpenApiExample("A YARA rule", value=YARA_EXAMPLE, request_only=True),
            DUPLICATE_EXAMPLE,
        ],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        values["family"] = family_by_ref(values["family"])
        sig = services.signature_create(actor=_user(request), **values)
        return Response(_detail(sig), status=status.HTTP_201_CREATED)


class SignatureDetailApi(APIView):
    method_perms = {"GET": (VIEW,), "PATCH": (CHANGE,), "DELETE": (DELETE,)}

    @extend_schema_serializer(component_name="SignatureUpdateInput")
    class InputSerializer(serializers.Serializer):
        body = JSONBodyField(required=False)
        family = serializers.CharField(required=False)
        severity = serializers.ChoiceField(choices=Severity.choices, required=False)
        tags = serializers.ListField(child=serializers.CharField(), required=False)
        references = serializers.ListField(child=serializers.CharField(), required=False)
        linked_samples = serializers.ListField(child=serializers.CharField(), required=False)
        description = serializers.CharField(required=False, allow_blank=True)
        reason = serializers.CharField(required=False, allow_blank=True, default="")

    def get_permissions(self) -> list[BasePermission]:
        return _by_method(self, self.request)

    @extend_schema(operation_id="signatures_retrieve", responses={200: SignatureDetail, **ERRORS})
    def get(self, request: Request, pk: int) -> Response:
        return Response(SignatureDetail(selectors.signature_get(pk=pk)).data)

    @extend_schema(
        operation_id="signatures_partial_update",
        request=InputSerializer,
        responses={200: SignatureDetail, **ERRORS, 409: ERROR},
        description=(
            "A draft is edited in place by its author. Changing the body, severity or family "
            "of a deployed (or noisy, or disabled) signature makes a new draft revision; the "
            "deployed revision keeps shipping, with its own severity and family, until the "
            "new one is approved. Tags, references, linked samples and description never "
            "ship and change at once."
        ),
        examples=[
            OpenApiExample(
                "New body",
                value={"body": {"value": "ab" * 32}, "reason": "the dropper, not the loader"},
                request_only=True,
            ),
            OpenApiExample(
                "Downgrade (a new revision to review)",
                value={"severity": "riskware", "reason": "an ad SDK, not a trojan"},
                request_only=True,
            ),
            DUPLICATE_EXAMPLE,
        ],
    )
    def patch(self, request: Request, pk: int) -> Response:
        sig = selectors.signature_get(pk=pk)
        data = self.InputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        if "family" in values:
            values["family"] = family_by_ref(values["family"])
        services.signature_update(signature=sig, actor=_user(request), **values)
        return Response(_detail(sig))

    @extend_schema(operation_id="signatures_destroy", responses={204: None, **ERRORS, 409: ERROR})
    def delete(self, request: Request, pk: int) -> Response:
        services.signature_delete(signature=selectors.signature_get(pk=pk), actor=_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class _TransitionApi(APIView):
    """POST one workflow transition; subclasses name the service and permission."""

    perm: str = CHANGE
    action: str = ""
    reason_required = False

    @extend_schema_serializer(component_name="TransitionInput")
    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, default="")

    def get_permissions(self) -> list[BasePermission]:
        return [require_perms(self.perm)()]

    def call(self, *, signature: Signature, actor: User, reason: str) -> None:
        raise NotImplementedError

    def post(self, request: Request, pk: int) -> Response:
        sig = selectors.signature_get(pk=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        self.call(signature=sig, actor=_user(request), reason=data.validated_data["reason"])
        return Response(_detail(sig))


def _transition_schema(action: str, what: str, *, reason: bool) -> Any:
    return extend_schema(
        operation_id=f"signatures_{action}",
        request=_TransitionApi.InputSerializer,
        responses={200: SignatureDetail, **ERRORS, 409: ERROR},
        summary=what,
        examples=[
            OpenApiExample(
                "With a reason",
                value={"reason": "matches a popular game's SDK" if reason else "looks right"},
                request_only=True,
            ),
            OpenApiExample(
                "Four eyes",
                value={
                    "message": "You wrote or last edited revision 1; another reviewer must "
                    "approve it (four eyes).",
                    "extra": {},
                },
                response_only=True,
                status_codes=["403"],
            ),
        ],
    )


class SignatureSubmitApi(_TransitionApi):
    perm = CHANGE

    @_transition_schema("submit", "Submit the current draft revision for review", reason=False)
    def post(self, request: Request, pk: int) -> Response:
        return super().post(request, pk)

    def call(self, *, signature: Signature, actor: User, reason: str) -> None:
        services.signature_submit(signature=signature, actor=actor, reason=reason)


class SignatureApproveApi(_TransitionApi):
    perm = REVIEW

    @extend_schema_serializer(component_name="ApproveInput")
    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, default="")
        override_reason = serializers.CharField(
            required=False,
            allow_blank=True,
            default="",
            help_text="why to approve although the gate hunt hit clean apps, or covered "
            "fewer clean apps than GATE_MIN_CLEAN_APPS (audited, shown on the release)",
        )

    @extend_schema(
        operation_id="signatures_approve",
        request=InputSerializer,
        responses={200: SignatureDetail, **ERRORS, 409: ERROR},
        summary="Approve the revision in review (not your own work; clean-corpus gate)",
        description=(
            "Refused (409) until a retro-hunt of this revision has finished over the current "
            "clean corpus. A hit on a clean app is refused too, with the clean hits and the "
            "difference from the shipping revision in `extra`, unless `override_reason` says "
            "why it is fine. So is a gate hunt that covered fewer clean apps than "
            "GATE_MIN_CLEAN_APPS (`extra.gate` = `no_clean_corpus`): a gate over no clean "
            "corpus never passes on its own."
        ),
        examples=[
            OpenApiExample(
                "Clean hits",
                value={
                    "message": "Revision 1 hits 9 clean app(s) (a2dp.Vol, ...); approve only "
                    "with an override reason.",
                    "extra": {
                        "gate": "clean_hits",
                        "hunt": 12,
                        "clean_hit_count": 9,
                        "clean_hits": [{"sha256": "fb91...", "package": "a2dp.Vol"}],
                        "review_diff": {
                            "against": "nothing (first revision)",
                            "new_clean_hits": ["fb91..."],
                            "new_malicious_hits": [],
                            "lost_malicious_hits": [],
                        },
                    },
                },
                response_only=True,
                status_codes=["409"],
            ),
            OpenApiExample(
                "Override",
                value={"override_reason": "matches our own test build only"},
                request_only=True,
            ),
        ],
    )
    def post(self, request: Request, pk: int) -> Response:
        sig = selectors.signature_get(pk=pk)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.signature_approve(
            signature=sig,
            actor=_user(request),
            comment=data.validated_data["reason"],
            override_reason=data.validated_data["override_reason"],
        )
        return Response(_detail(sig))


class SignatureRejectApi(_TransitionApi):
    perm = REVIEW

    @_transition_schema("reject", "Send the revision back to its author (reason)", reason=True)
    def post(self, request: Request, pk: int) -> Response:
        return super().post(request, pk)

    def call(self, *, signature: Signature, actor: User, reason: str) -> None:
        services.signature_reject(signature=signature, actor=actor, reason=reason)


class SignatureNoisyApi(_TransitionApi):
    perm = MODERATE

    @_transition_schema("noisy", "Mark noisy: shipped, reported, never scores", reason=True)
    def post(self, request: Request, pk: int) -> Response:
        return super().post(request, pk)

    def call(self, *, signature: Signature, actor: User, reason: str) -> None:
        services.signature_mark_noisy(signature=signature, actor=actor, reason=reason)


class SignatureDisableApi(_TransitionApi):
    perm = MODERATE

    @_transition_schema("disable", "Disable: no longer shipped (reason)", reason=True)
    def post(self, request: Request, pk: int) -> Response:
        return super().post(request, pk)

    def call(self, *, signature: Signature, actor: User, reason: str) -> None:
        services.signature_disable(signature=signature, actor=actor, reason=reason)


class SignatureHistoryApi(APIView):
    permission_classes = [require_perms(VIEW)]

    @extend_schema_serializer(component_name="SignatureRevisionHistory")
    class OutputSerializer(serializers.Serializer):
        number = serializers.IntegerField()
        state = serializers.CharField()
        author = serializers.CharField()
        last_editor = serializers.CharField()
        reviewed_by = serializers.CharField(allow_null=True)
        reviewed_at = serializers.DateTimeField(allow_null=True)
        review_comment = serializers.CharField()
        submitted_at = serializers.DateTimeField(allow_null=True)
        created_at = serializers.DateTimeField()
        severity = serializers.CharField(help_text="the severity this revision ships with")
        family = serializers.CharField(help_text="the family this revision ships under")
        body = serializers.CharField()
        diff = serializers.CharField(
            help_text="unified diff from the previous revision: severity, family, then body"
        )
        deployed = serializers.BooleanField(help_text="the revision releases ship now")

    @extend_schema(
        operation_id="signatures_history",
        responses={200: OutputSerializer(many=True), **ERRORS},
        summary="Revisions, newest first, with diffs and who approved each",
    )
    def get(self, request: Request, pk: int) -> Response:
        sig = selectors.signature_get(pk=pk)
        history = selectors.signature_history(signature=sig)
        return Response(self.OutputSerializer(history, many=True).data)


VALIDATION = inline_serializer(
    "ValidationResult",
    {
        "valid": serializers.BooleanField(),
        "body": serializers.JSONField(help_text="the normalised body"),
        "warnings": serializers.ListField(child=serializers.DictField()),
    },
)
VALIDATION_FAILED = inline_serializer(
    "ValidationFailed",
    {
        "message": serializers.CharField(),
        "extra": serializers.DictField(
            help_text="for a body that does not compile: errors and warnings, as below"
        ),
        "valid": serializers.BooleanField(
            required=False, help_text="false: the body does not compile"
        ),
        "errors": serializers.ListField(
            child=serializers.DictField(),
            required=False,
            help_text="message, line, column (a body that does not compile)",
        ),
        "warnings": serializers.ListField(child=serializers.DictField(), required=False),
    },
)


class SignatureValidateApi(APIView):
    permission_classes = [require_perms(VIEW)]

    @extend_schema_serializer(component_name="ValidateInput")
    class InputSerializer(serializers.Serializer):
        kind = serializers.CharField()
        body = JSONBodyField()

    @extend_schema(
        operation_id="signatures_validate",
        request=InputSerializer,
        responses={
            200: VALIDATION,
            400: OpenApiResponse(
                VALIDATION_FAILED,
                description="Invalid input (an ApiError), or a body that does not compile: "
                "then also valid, errors and warnings",
            ),
        },
        summary="Validate a body without saving it",
        examples=[
            OpenApiExample(
                "A YARA rule",
                value={"kind": "yara", "body": YARA_EXAMPLE["body"]},
                request_only=True,
            ),
            OpenApiExample(
                "Valid",
                value={"valid": True, "body": YARA_EXAMPLE["body"], "warnings": []},
                response_only=True,
                status_codes=["200"],
            ),
            OpenApiExample(
                "Compile error",
                value={
                    "message": "line 5, column 5: unknown identifier `foo`",
                    "extra": {
                        "errors": [{"message": "unknown identifier `foo`", "line": 5, "column": 5}],
                        "warnings": [],
                    },
                    "valid": False,
                    "errors": [{"message": "unknown identifier `foo`", "line": 5, "column": 5}],
                    "warnings": [],
                },
                response_only=True,
                status_codes=["400"],
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.body_validate(**data.validated_data)
        warnings = services.issues_json(result.warnings)
        if result.errors:
            # an error like every other ({message, extra}, as signatures_create's), and the
            # editor's fields at the top
            errors = services.issues_json(result.errors)
            return Response(
                {
                    "message": str(result.errors[0]),
                    "extra": {"errors": errors, "warnings": warnings},
                    "valid": False,
                    "errors": errors,
                    "warnings": warnings,
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        return Response({"valid": True, "body": result.body, "warnings": warnings})


SUMMARY = inline_serializer(
    "ImportSummary",
    {
        "files": serializers.IntegerField(),
        "imported": serializers.IntegerField(),
        "duplicates": serializers.IntegerField(),
        "invalid": serializers.IntegerField(),
        "invalid_reasons": serializers.DictField(child=serializers.IntegerField()),
        "duplicate_links": serializers.ListField(child=serializers.DictField()),
        "failed_files": serializers.ListField(child=serializers.DictField()),
        "submitted": serializers.IntegerField(
            required=False, help_text="with submit: drafts submitted for review"
        ),
        "submit_failed": serializers.ListField(
            child=serializers.DictField(),
            required=False,
            help_text="with submit: {id, message} of drafts that could not be submitted",
        ),
    },
)


class SignatureImportApi(APIView):
    permission_classes = [require_perms(ADD, IMPORT)]
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="signatures_import",
        request={
            "multipart/form-data": inline_serializer(
                "ImportUpload",
                {
                    "files": serializers.ListField(child=serializers.FileField()),
                    "submit": serializers.BooleanField(
                        required=False,
                        default=False,
                        help_text="submit the imported drafts for review: ONE gate hunt over "
                        "all of them",
                    ),
                },
            )
        },
        responses={200: SUMMARY, **ERRORS, 413: ERROR},
        summary="Import YARA, ClamAV, Quark JSON or CSV files (everything lands as draft)",
        examples=[
            OpenApiExample(
                "Summary",
                value={
                    "files": 2,
                    "imported": 31,
                    "duplicates": 1,
                    "invalid": 2,
                    "invalid_reasons": {
                        "needs the 'androguard' module, which yara-x does not have": 2
                    },
                    "duplicate_links": [
                        {"source": "a.hdb:3", "existing": {"id": 7, "url": "/signatures/7/"}}
                    ],
                    "failed_files": [],
                },
                response_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        files = [(f.name or "upload", f) for f in request.FILES.getlist("files")]
        flag = serializers.BooleanField(required=False, default=False)
        submit = flag.run_validation(request.data.get("submit", False))
        summary = services.signatures_import_uploads(actor=_user(request), files=files)
        data = summary.as_dict()
        if submit:
            submitted = services.signatures_submit_imported(actor=_user(request), summary=summary)
            data["submitted"] = len(submitted.succeeded)
            data["submit_failed"] = submitted.failed
        return Response(data)


class SignatureExportApi(APIView):
    permission_classes = [require_perms(VIEW)]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # ``format`` is this endpoint's own parameter, not DRF's renderer override
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        operation_id="signatures_export",
        parameters=[
            OpenApiParameter(
                "format", OpenApiTypes.STR, enum=["yara", "csv", "stix"], default="yara"
            ),
            *[
                OpenApiParameter(name, OpenApiTypes.STR)
                for name in ("kind", "status", "family", "severity", "author", "tag", "q")
            ],
        ],
        responses={(200, "text/plain"): OpenApiTypes.STR, **ERRORS},
        summary="Export the filtered signatures (current revisions) as YARA, CSV or STIX 2.1",
    )
    def get(self, request: Request) -> HttpResponse:
        fmt = request.query_params.get("format", "yara")
        if fmt not in ("yara", "csv", "stix"):
            raise ApplicationError("format must be yara, csv or stix.")
        filters = {k: v for k, v in request.query_params.items() if k != "format"}
        fs = selectors.signature_list(filters=filters)
        if not fs.is_valid():
            fields = {name: list(errors) for name, errors in fs.errors.items()}
            first = next(iter(fields.items()))
            raise ApplicationError(f"{first[0]}: {first[1][0]}", {"fields": fields})
        records = selectors.signature_export_records(filters=filters)
        if fmt == "yara":
            text, ctype, ext = to_yara(records), "text/plain; charset=utf-8", "yar"
        elif fmt == "csv":
            text, ctype, ext = to_csv(records), "text/csv; charset=utf-8", "csv"
        else:
            text = json.dumps(to_stix(records), indent=2)
            ctype, ext = "application/json", "json"
        response = HttpResponse(text, content_type=ctype)
        response["Content-Disposition"] = f'attachment; filename="signatures.{ext}"'
        return response


class SignatureBulkApi(APIView):
    ACTION_PERMS = {
        "submit": CHANGE,
        "approve": REVIEW,
        "reject": REVIEW,
        "noisy": MODERATE,
        "disable": MODERATE,
    }

    @extend_schema_serializer(component_name="BulkInput")
    class InputSerializer(serializers.Serializer):
        ids = serializers.ListField(child=IdSerializerField(), allow_empty=False, max_length=10_000)
        action = serializers.ChoiceField(choices=services.BULK_ACTIONS)
        reason = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema_serializer(component_name="BulkOutput")
    class OutputSerializer(serializers.Serializer):
        succeeded = serializers.ListField(child=serializers.IntegerField())
        failed = serializers.ListField(
            child=inline_serializer(
                "BulkFailure",
                {"id": serializers.IntegerField(), "message": serializers.CharField()},
            )
        )

    def get_permissions(self) -> list[BasePermission]:
        return [require_perms(VIEW)()]

    @extend_schema(
        operation_id="signatures_bulk",
        request=InputSerializer,
        responses={200: OutputSerializer, **ERRORS},
        summary="One transition on many signatures, each under the usual rules",
        examples=[
            OpenApiExample(
                "Approve a feed",
                value={"ids": [101, 102, 103], "action": "approve", "reason": "feed 2024-05"},
                request_only=True,
            ),
            OpenApiExample(
                "Answer",
                value={
                    "succeeded": [101, 102],
                    "failed": [
                        {
                            "id": 103,
                            "message": "You wrote or last edited revision 1; "
                            "another reviewer must approve it (four eyes).",
                        }
                    ],
                },
                response_only=True,
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        action = data.validated_data["action"]
        user = _user(request)
        if not user.has_perm(self.ACTION_PERMS[action]):
            raise ForbiddenError(f"Your role does not allow {action}.")
        result = services.signature_bulk_action(actor=user, **data.validated_data)
        return Response(self.OutputSerializer(result).data)
