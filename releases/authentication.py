"""Device authentication: used on device endpoints only, and accepting device tokens only.

People's tokens and sessions are not authenticators here (so they cannot open device
endpoints), and ``portal.authentication.ApiTokenAuthentication`` knows nothing of device
tokens (so a device token opens nothing else).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework import authentication, exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from releases.models import Channel, Device
from releases.services import DEVICE_TOKEN_FIELDS, device_token_cache_key, token_hash


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
        device = cached_device(token_hash(key))
        if device is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked device token.")
        return DevicePrincipal(device), device


# What a device endpoint needs of a device, kept in the shared cache by token hash, so that an
# update check costs no database query (a phone checks often; millions of phones do). The
# entry is written at registration and on a miss, and deleted by every service that revokes
# or deletes a device (``releases.services.device_token_forget``). Unknown tokens are cached
# briefly too, so guessing tokens does not turn into database load.
_FIELDS = DEVICE_TOKEN_FIELDS
_UNKNOWN_SECONDS = 60


def cached_device(key_hash: str) -> Device | None:
    """The active device with this token hash (an unsaved-looking instance with its pk), or
    None for an unknown or revoked token."""
    cache_key = device_token_cache_key(key_hash)
    entry = cache.get(cache_key)
    if entry is None:
        row = Device.objects.filter(token_hash=key_hash).values(*_FIELDS, "revoked_at").first()
        if row is None or row["revoked_at"] is not None:
            cache.set(cache_key, {"unknown": True}, timeout=_UNKNOWN_SECONDS)
            return None
        entry = {name: row[name] for name in _FIELDS}
        cache.set(cache_key, entry, timeout=settings.DEVICE_TOKEN_CACHE_SECONDS)
    if not isinstance(entry, dict) or entry.get("unknown"):
        return None
    device = device_from_entry(key_hash, entry)
    if device is None:  # an entry from another version of this code
        cache.delete(cache_key)
        return cached_device(key_hash)
    return device


def device_from_entry(key_hash: str, entry: dict[str, Any]) -> Device | None:
    """A Device (with its pk, as stored) from a cache entry; None if the entry is malformed."""
    try:
        device = Device(token_hash=key_hash, **{name: entry[name] for name in _FIELDS})
    except (KeyError, TypeError):
        return None
    device._state.adding = False  # it is a stored row: save() must update, never insert
    if device.channel not in Channel.values:
        device.channel = Channel.STABLE
    return device


class IsDevice(BasePermission):
    message = "This endpoint is for enrolled devices only."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.user, DevicePrincipal)
