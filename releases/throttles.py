"""Throttles for the device API; rates are read from settings at call time.

The update check's per-device limit is ``releases.update_check.device_update_limited``: a
shared counter both of its doors (the fast path and the DRF view) count in."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle


class DeviceRegisterThrottle(SimpleRateThrottle):
    """Per source IP: enrolment guesses and registration storms."""

    scope = "device_register"

    def get_rate(self) -> str:
        return str(settings.DEVICE_REGISTER_RATE)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return f"throttle_device_register_{self.get_ident(request)}"
