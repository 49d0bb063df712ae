"""REST API of the signature database (mounted under /api/v1/): signatures, and what the
other API modules share.

Thin views (HackSoft style): each parses its input with a nested serializer, calls one
service or selector, and answers with a nested output serializer. Errors are JSON
``{"message", "extra"}`` through portal's exception handler.

The API lives by concern: signatures here (list, create, read, edit, delete, history,
validate); families in ``apis_families``; the review workflow (submit, approve, reject, noisy,
disable, bulk) in ``apis_review``; import and export in ``apis_import_export``.

Roles: researchers create, edit their own drafts, submit and import; reviewers also approve,
reject (never their own work), mark noisy and disable; auditors read; admins do everything.
Who may do what to one signature is ``threats.policy``; a signature's detail lists it for the
requesting user (``allowed_actions``).
"""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import generics, serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from engine.kinds import REGISTRY, get_kind
from portal.exceptions import ApplicationError
from portal.models import User
from portal.params import JSONBodyField, parse_id_or_name
from portal.permissions import require_perms
from threats import selectors, services
from threats.models import Family, Severity, Signature, Status
from threats.policy import ACTIONS, allowed_actions
from threats.public import signature_url

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


def by_method(view: Any, request: Request) -> list[BasePermission]:
    perms: tuple[str, ...] = view.method_perms.get(request.method or "GET", (VIEW,))
    return [require_perms(*perms)()]


def request_user(request: Request) -> User:
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
    allowed_actions = serializers.SerializerMethodField(
        help_text="what the requesting user may do to this signature now (threats.policy): "
        "edit, delete, submit, approve, reject, noisy, disable; an approval still needs the "
        "clean-corpus gate, a reject, noisy or disable a reason"
    )

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

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=ACTIONS)))
    def get_allowed_actions(self, obj: Signature) -> list[str]:
        user = getattr(self.context.get("request"), "user", None)
        if not isinstance(user, User):
            return []
        allowed = allowed_actions(user, obj)
        return [a for a in ACTIONS if a in allowed]


def signature_detail(sig: Signature, request: Request) -> dict[str, Any]:
    """The signature as it is now, as the detail endpoint answers it to this request's user."""
    fresh = selectors.signature_get(pk=sig.pk)
    return dict(SignatureDetail(fresh, context={"request": request}).data)


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
        return by_method(self, self.request)

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
        sig = services.signature_create(actor=request_user(request), **values)
        return Response(signature_detail(sig, request), status=status.HTTP_201_CREATED)


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
        return by_method(self, self.request)

    @extend_schema(operation_id="signatures_retrieve", responses={200: SignatureDetail, **ERRORS})
    def get(self, request: Request, pk: int) -> Response:
        sig = selectors.signature_get(pk=pk)
        return Response(SignatureDetail(sig, context={"request": request}).data)

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
        services.signature_update(signature=sig, actor=request_user(request), **values)
        return Response(signature_detail(sig, request))

    @extend_schema(operation_id="signatures_destroy", responses={204: None, **ERRORS, 409: ERROR})
    def delete(self, request: Request, pk: int) -> Response:
        services.signature_delete(
            signature=selectors.signature_get(pk=pk), actor=request_user(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


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
