from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from portal.authentication import ApiTokenAuthentication
from portal.exceptions import ApplicationError, RateLimitedError
from portal.models import ApiToken, User
from portal.permissions import IsStaffUser
from portal.schema import ApiErrorSerializer
from portal.services import (
    api_token_create,
    api_token_revoke,
    login_failure_record,
    login_locked_for,
    login_locked_message,
    login_success_record,
    username_digest,
)


class AuthThrottle(SimpleRateThrottle):
    """At most "auth" (20/min) token requests per (username, source IP): a script looping on
    one account is slowed, and nobody else behind that IP is."""

    scope = "auth"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        data = request.data
        username = str(data.get("username", "")) if hasattr(data, "get") else ""
        ident = f"{username_digest(username)}:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class TokenApi(APIView):
    """Exchange a username and password for an API token; revoke the token in use."""

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "TokenCreateInput"

        username = serializers.CharField()
        password = serializers.CharField(style={"input_type": "password"})

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "Token"

        token = serializers.CharField()

    def get_authenticators(self) -> list[Any]:
        # POST authenticates with the password in the body; DELETE with the token itself.
        return [ApiTokenAuthentication()]

    def get_permissions(self) -> list[Any]:
        return [AllowAny()] if self.request.method == "POST" else [IsStaffUser()]

    def get_throttles(self) -> list[Any]:
        return [AuthThrottle()] if self.request.method == "POST" else []

    @extend_schema(
        operation_id="auth_token_create",
        request=InputSerializer,
        responses={
            200: OutputSerializer,
            400: ApiErrorSerializer,
            401: OpenApiResponse(ApiErrorSerializer, description="Wrong username or password"),
            429: OpenApiResponse(
                ApiErrorSerializer,
                description="Too many failed log-ins of this username (from this IP, or from "
                "many): wait `Retry-After` seconds",
            ),
        },
        auth=[],
        examples=[
            OpenApiExample(
                "Log in", value={"username": "alice", "password": "…"}, request_only=True
            ),
            OpenApiExample("Token", value={"token": "q8Vx…"}, response_only=True),
        ],
        summary="Get an API token",
        description=(
            "Send it as `Authorization: Token <token>`. Failed tries are rate-limited per "
            "username and source IP, and per username: 429 with `Retry-After`."
        ),
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        username = data.validated_data["username"]
        ip = request.META.get("REMOTE_ADDR") or None
        wait = login_locked_for(username=username, ip=ip)
        if wait:
            raise RateLimitedError(login_locked_message(wait), retry_after=wait)
        user = authenticate(request, username=username, password=data.validated_data["password"])
        if not isinstance(user, User) or not user.is_active:
            login_failure_record(username=username, ip=ip)
            raise ApplicationError(
                "Wrong username or password.", status_code=status.HTTP_401_UNAUTHORIZED
            )
        login_success_record(username=username, ip=ip)
        _, key = api_token_create(user=user)
        return Response(self.OutputSerializer({"token": key}).data, status=status.HTTP_200_OK)

    @extend_schema(
        operation_id="auth_token_revoke",
        request=None,
        responses={204: inline_serializer("Empty", {})},
        summary="Revoke the token sent with this request",
    )
    def delete(self, request: Request) -> Response:
        token = request.auth
        if not isinstance(token, ApiToken):
            raise ApplicationError(
                "Send the token to revoke as `Authorization: Token <token>`.",
                status_code=status.HTTP_400_BAD_REQUEST,
            )
        assert isinstance(request.user, User)
        api_token_revoke(token=token, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeApi(APIView):
    """Who the caller is: username and roles. Scripts use it to check their token."""

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "Me"

        username = serializers.CharField()
        roles = serializers.ListField(child=serializers.CharField())

    @extend_schema(operation_id="auth_me", responses={200: OutputSerializer})
    def get(self, request: Request) -> Response:
        from portal.roles import user_roles

        data = {"username": request.user.get_username(), "roles": sorted(user_roles(request.user))}
        return Response(self.OutputSerializer(data).data)


class NotificationOutputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "Notification"

    id = serializers.IntegerField()
    kind = serializers.CharField()
    title = serializers.CharField()
    body = serializers.CharField()
    url = serializers.CharField()
    created_at = serializers.DateTimeField()
    read_at = serializers.DateTimeField(allow_null=True)


class NotificationListApi(APIView):
    """The caller's notifications (newest 100) and how many are unread."""

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "NotificationList"

        unread = serializers.IntegerField()
        results = NotificationOutputSerializer(many=True)

    @extend_schema(operation_id="notifications_list", responses={200: OutputSerializer})
    def get(self, request: Request) -> Response:
        from portal.notifications import notifications_for, unread_count

        user = request.user
        assert isinstance(user, User)
        data = {"unread": unread_count(user), "results": notifications_for(user)}
        return Response(self.OutputSerializer(data).data)


class NotificationReadApi(APIView):
    """Mark notifications read: the ones named, or all unread ones."""

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "NotificationReadInput"

        ids = serializers.ListField(
            child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
            required=False,
            max_length=1000,
            help_text="omit to mark every unread notification read",
        )

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "NotificationReadOutput"

        marked = serializers.IntegerField()

    @extend_schema(
        operation_id="notifications_read",
        request=InputSerializer,
        responses={200: OutputSerializer, 400: ApiErrorSerializer},
    )
    def post(self, request: Request) -> Response:
        from portal.notifications import notifications_mark_read

        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = request.user
        assert isinstance(user, User)
        marked = notifications_mark_read(user=user, ids=data.validated_data.get("ids"))
        return Response(self.OutputSerializer({"marked": marked}).data)
