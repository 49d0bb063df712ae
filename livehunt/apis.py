"""REST API of livehunt (mounted under /api/v1/livehunt/): thin views over
livehunt.services (writes) and livehunt.selectors (reads). Who may do what:
livehunt/policies.py (researchers, reviewers and admins keep rules; auditors read)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils import timezone
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

from livehunt import policies
from livehunt.models import WatchHit, WatchRule
from livehunt.selectors import rule_get, rule_hits, rule_list
from livehunt.services import watch_rule_create, watch_rule_delete, watch_rule_update
from portal.exceptions import NotFoundError
from portal.models import User
from portal.params import IdSerializerField, JSONBodyField
from portal.permissions import IsStaffUser

ERROR = inline_serializer(
    "LivehuntError",
    {"message": serializers.CharField(), "extra": serializers.DictField(required=False)},
)
ERRORS = {
    400: OpenApiResponse(ERROR, description="Invalid input"),
    403: OpenApiResponse(ERROR, description="Your role does not allow this"),
    404: OpenApiResponse(ERROR, description="No such watch rule (or not yours)"),
}


class CanKeepWatchRules(IsStaffUser):
    """Reads: any portal role. Writes: researchers, reviewers and admins."""

    message = "Your role does not allow keeping watch rules (researcher, reviewer or admin)."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not super().has_permission(request, view):
            return False
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        return policies.can_write(request.user)


def _user(request: Request) -> User:
    assert isinstance(request.user, User)
    return request.user


def _rule(request: Request, rule_id: int) -> WatchRule:
    rule = rule_get(user=_user(request), rule_id=rule_id)
    if rule is None:
        raise NotFoundError(f"No watch rule {rule_id}.")
    return rule


class WatchRuleSerializer(serializers.ModelSerializer[WatchRule]):
    owner = serializers.SerializerMethodField()
    active = serializers.SerializerMethodField()
    webhook_url = serializers.SerializerMethodField()
    has_webhook = serializers.SerializerMethodField()
    hit_count = serializers.SerializerMethodField()
    body = serializers.JSONField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = WatchRule
        fields = [
            "id",
            "name",
            "kind",
            "body",
            "owner",
            "enabled",
            "active",
            "expires_at",
            "version",
            "source_signature_id",
            "source_revision_id",
            "webhook_url",
            "has_webhook",
            "hit_count",
            "created_at",
            "updated_at",
            "url",
        ]

    def get_owner(self, obj: WatchRule) -> str:
        return obj.owner.get_username()

    def get_active(self, obj: WatchRule) -> bool:
        return obj.enabled and obj.expires_at > timezone.now()

    def get_webhook_url(self, obj: WatchRule) -> str:
        """The URL (it may hold a secret) for the owner and admins; empty for others."""
        user = self.context.get("user")
        return obj.webhook_url if user is not None and policies.can_change(user, obj) else ""

    def get_has_webhook(self, obj: WatchRule) -> bool:
        return bool(obj.webhook_url)

    def get_hit_count(self, obj: WatchRule) -> int:
        count = getattr(obj, "hit_count", None)
        return int(count) if count is not None else obj.hits.count()

    def get_url(self, obj: WatchRule) -> str:
        return reverse("livehunt:rule-detail", args=[obj.pk])


class WatchHitSerializer(serializers.ModelSerializer[WatchHit]):
    sample = serializers.CharField(source="sample_sha256", help_text="the sample's SHA-256")
    file_name = serializers.CharField(source="original_name")
    url = serializers.SerializerMethodField()

    class Meta:
        model = WatchHit
        fields = [
            "id",
            "sample",
            "package",
            "app_label",
            "file_name",
            "scan_id",
            "rule_version",
            "evidence",
            "created_at",
            "url",
        ]

    def get_url(self, obj: WatchHit) -> str:
        return reverse("scans:sample-detail", args=[obj.sample_sha256])


EXAMPLES = [
    OpenApiExample(
        "A YARA rule written directly",
        value={
            "name": "SMS senders",
            "kind": "yara",
            "body": 'rule sms { strings: $a = "sendTextMessage" condition: $a }',
            "expires_at": "2027-01-31T00:00:00Z",
            "webhook_url": "https://hooks.example.com/livehunt/abc123",
        },
        request_only=True,
    ),
    OpenApiExample("From a signature revision", value={"revision_id": 42}, request_only=True),
]


class RuleInput(serializers.Serializer):
    class Meta:
        ref_name = "WatchRuleInput"

    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    kind = serializers.CharField(required=False, max_length=32)
    body = JSONBodyField(required=False, help_text="the kind's body (text for YARA)")
    signature_id = IdSerializerField(
        required=False, help_text="watch this signature's newest revision (drafts included)"
    )
    revision_id = IdSerializerField(required=False, help_text="watch this signature revision")
    expires_at = serializers.DateTimeField(
        required=False, help_text="required in the future; default 30 days from now"
    )
    webhook_url = serializers.URLField(required=False, allow_blank=True, max_length=500)
    enabled = serializers.BooleanField(required=False, default=True)


class RuleUpdateInput(serializers.Serializer):
    class Meta:
        ref_name = "WatchRuleUpdateInput"

    name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    kind = serializers.CharField(required=False, max_length=32)
    body = JSONBodyField(required=False)
    expires_at = serializers.DateTimeField(required=False)
    webhook_url = serializers.URLField(required=False, allow_blank=True, max_length=500)
    enabled = serializers.BooleanField(required=False)


class WatchRuleListApi(APIView):
    """Watch rules (yours; admins and auditors see everyone's); POST keeps a new one."""

    permission_classes = [CanKeepWatchRules]
    pagination_class = PageNumberPagination

    @extend_schema(
        operation_id="livehunt_rules_list",
        parameters=[OpenApiParameter("page", OpenApiTypes.INT)],
        responses={200: WatchRuleSerializer(many=True), **ERRORS},
        summary="List watch rules",
    )
    def get(self, request: Request) -> Response:
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rule_list(user=_user(request)), request, view=self)
        data = WatchRuleSerializer(page, many=True, context={"user": _user(request)}).data
        return paginator.get_paginated_response(data)

    @extend_schema(
        operation_id="livehunt_rules_create",
        request=RuleInput,
        responses={201: WatchRuleSerializer, **ERRORS},
        examples=EXAMPLES,
        summary="Keep a watch rule: matched against every new sample after its scan",
        description=(
            'Give "kind" and "body" (any signature kind; YARA includes Koodous androguard '
            'rules), or "signature_id" / "revision_id" (copied as it is now, drafts '
            'included). "expires_at" defaults to 30 days from now and may be at most '
            "LIVEHUNT_MAX_DAYS (365) away. A hit notifies you in the portal and, with "
            '"webhook_url", is POSTed there once as JSON.'
        ),
    )
    def post(self, request: Request) -> Response:
        data = RuleInput(data=request.data)
        data.is_valid(raise_exception=True)
        rule = watch_rule_create(user=_user(request), **data.validated_data)
        rule = _rule(request, rule.pk)
        out = WatchRuleSerializer(rule, context={"user": _user(request)}).data
        return Response(out, status=status.HTTP_201_CREATED)


class WatchRuleDetailApi(APIView):
    permission_classes = [CanKeepWatchRules]

    @extend_schema(
        operation_id="livehunt_rules_retrieve",
        responses={200: WatchRuleSerializer, **ERRORS},
        summary="A watch rule",
    )
    def get(self, request: Request, rule_id: int) -> Response:
        rule = _rule(request, rule_id)
        return Response(WatchRuleSerializer(rule, context={"user": _user(request)}).data)

    @extend_schema(
        operation_id="livehunt_rules_partial_update",
        request=RuleUpdateInput,
        responses={200: WatchRuleSerializer, **ERRORS},
        summary="Change a watch rule (owner or admin): name, body, expiry, webhook, enabled",
    )
    def patch(self, request: Request, rule_id: int) -> Response:
        rule = _rule(request, rule_id)
        data = RuleUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        watch_rule_update(rule=rule, user=_user(request), **data.validated_data)
        rule = _rule(request, rule_id)
        return Response(WatchRuleSerializer(rule, context={"user": _user(request)}).data)

    @extend_schema(
        operation_id="livehunt_rules_destroy",
        request=None,
        responses={204: None, **ERRORS},
        summary="Delete a watch rule (owner or admin) with its hits",
    )
    def delete(self, request: Request, rule_id: int) -> Response:
        watch_rule_delete(rule=_rule(request, rule_id), user=_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WatchRuleHitsApi(APIView):
    permission_classes = [CanKeepWatchRules]
    pagination_class = PageNumberPagination

    @extend_schema(
        operation_id="livehunt_rules_hits",
        parameters=[OpenApiParameter("page", OpenApiTypes.INT)],
        responses={200: WatchHitSerializer(many=True), **ERRORS},
        summary="The samples a watch rule matched, newest first",
    )
    def get(self, request: Request, rule_id: int) -> Response:
        rule = _rule(request, rule_id)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rule_hits(rule=rule), request, view=self)
        return paginator.get_paginated_response(WatchHitSerializer(page, many=True).data)
