"""Throttles for the device API; rates are read from settings at call time."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from releases.authentication import DevicePrincipal


class DeviceUpdateThrottle(SimpleRateThrottle):
    """Per device: a fleet that ignores min_wait_seconds is told to back off (429)."""

    scope = "device_update"

    def get_rate(self) -> str:
        return str(settings.DEVICE_UPDATE_RATE)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        user = request.user
        if not isinstance(user, DevicePrincipal):
            return None
        return f"throttle_device_update_{user.device.pk}"


class DeviceRegisterThrottle(SimpleRateThrottle):
    """Per source IP: enrolment guesses and registration storms."""

    scope = "device_register"

    def get_rate(self) -> str:
        return str(settings.DEVICE_REGISTER_RATE)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return f"throttle_device_register_{self.get_ident(request)}"
