"""Device authentication: used on device endpoints only, and accepting device tokens only.

People's tokens and sessions are not authenticators here (so they cannot open device
endpoints), and ``portal.authentication.ApiTokenAuthentication`` knows nothing of device
tokens (so a device token opens nothing else).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from releases.models import Device
from releases.services import token_hash


@dataclass(frozen=True)
class DevicePrincipal:
    """What ``request.user`` is on a device endpoint: not a person, never staff."""

    device: Device
    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False

    def has_perms(self, perms: Any, obj: Any = None) -> bool:
        return False

    def get_username(self) -> str:
        return f"device:{self.device.device_id}"


class DeviceTokenAuthentication(authentication.TokenAuthentication):
    keyword = "Token"

    def authenticate_credentials(self, key: str) -> tuple[DevicePrincipal, Device]:
        device = Device.objects.filter(token_hash=token_hash(key)).first()
        if device is None or device.revoked_at is not None:
            raise exceptions.AuthenticationFailed("Invalid or revoked device token.")
        return DevicePrincipal(device), device


class IsDevice(BasePermission):
    message = "This endpoint is for enrolled devices only."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, DevicePrincipal)
