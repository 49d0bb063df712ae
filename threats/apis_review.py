"""REST API of the review workflow: submit, approve (with the clean-corpus gate's override),
reject, mark noisy, disable, one signature at a time or many (bulk). Who may is
``threats.policy``, which the services enforce."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from drf_spectacular.utils import (
    OpenApiExample,
    extend_schema,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.exceptions import ForbiddenError
from portal.models import User
from portal.params import IdSerializerField
from portal.permissions import require_perms
from threats import selectors, services
from threats.apis import (
    CHANGE,
    ERROR,
    ERRORS,
    MODERATE,
    REVIEW,
    VIEW,
    SignatureDetail,
    request_user,
    signature_detail,
)
from threats.models import Signature
from threats.policy import BULK_PERMS


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
        self.call(signature=sig, actor=request_user(request), reason=data.validated_data["reason"])
        return Response(signature_detail(sig, request))


_View = TypeVar("_View", bound=Callable[..., Any])


def _transition_schema(action: str, what: str, *, reason: bool) -> Callable[[_View], _View]:
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
            actor=request_user(request),
            comment=data.validated_data["reason"],
            override_reason=data.validated_data["override_reason"],
        )
        return Response(signature_detail(sig, request))


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


class SignatureBulkApi(APIView):
    ACTION_PERMS = BULK_PERMS  # threats.policy

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
        user = request_user(request)
        if not user.has_perm(self.ACTION_PERMS[action]):
            raise ForbiddenError(f"Your role does not allow {action}.")
        result = services.signature_bulk_action(actor=user, **data.validated_data)
        return Response(self.OutputSerializer(result).data)
