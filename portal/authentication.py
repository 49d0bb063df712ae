from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from portal.models import ApiToken, User
from portal.services import api_token_lookup


class ApiTokenAuthentication(authentication.TokenAuthentication):
    """``Authorization: Token <key>`` for scripts. Device tokens are not accepted here."""

    keyword = "Token"

    def authenticate_credentials(self, key: str) -> tuple[User, ApiToken]:
        token = api_token_lookup(key=key)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("This account is disabled.")
        return token.user, token

    def authenticate(self, request: Request) -> Any:
        return super().authenticate(request)
