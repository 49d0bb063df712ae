"""Write paths of the releases app for devices: enrolment, revocation, the cached token entry,
what a device reports having installed, and the daily adoption snapshot.

Publishing, building and rolling out releases are in ``releases.services``, which re-exports
these names for its older callers.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from engine.rollout import rollout_bucket
from portal.audit import audit_log
from portal.exceptions import ForbiddenError
from portal.models import User
from releases.models import AdoptionSnapshot, Channel, Device


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def device_token_cache_key(key_hash: str) -> str:
    return f"device-token:{key_hash}"


# what the device endpoints need of a device, cached by token hash (releases.authentication)
DEVICE_TOKEN_FIELDS = (
    "pk",
    "device_id",
    "rollout_bucket",
    "channel",
    "engine_version",
    "installed_release",
)


def device_token_remember(device: Device) -> None:
    """Cache the device's entry, so that even its first update check needs no query."""
    entry = {name: getattr(device, name) for name in DEVICE_TOKEN_FIELDS}
    cache.set(
        device_token_cache_key(device.token_hash),
        entry,
        timeout=settings.DEVICE_TOKEN_CACHE_SECONDS,
    )


def device_token_forget(device: Device) -> None:
    """Drop the device's cached token entry (``releases.authentication.cached_device``): call
    on every revocation, deletion or change of what the entry holds."""
    cache.delete(device_token_cache_key(device.token_hash))


@transaction.atomic
def device_revoke(*, device: Device, by: User | None = None) -> Device:
    """Revoke a device's token: it can no longer reach any device endpoint."""
    if device.revoked_at is None:
        device.revoked_at = timezone.now()
        device.save(update_fields=["revoked_at"])
        audit_log(actor=by, action="device.revoke", obj=device)
    transaction.on_commit(lambda: device_token_forget(device))
    device_token_forget(device)
    return device


@dataclass(frozen=True)
class Enrolment:
    device: Device
    token: str  # shown once; only its hash is stored


def device_register(
    *,
    enrollment_key: str,
    model: str = "",
    os_version: str = "",
    app_version: str = "",
    engine_version: int = 1,
    channel: str = Channel.STABLE,
) -> Enrolment:
    if not hmac.compare_digest(
        enrollment_key.encode("utf-8"), settings.DEVICE_ENROLLMENT_KEY.encode("utf-8")
    ):
        raise ForbiddenError("The enrollment key is not valid.")
    device_id = str(uuid.uuid4())
    token = "dev_" + secrets.token_urlsafe(32)
    device = Device(
        device_id=device_id,
        token_hash=token_hash(token),
        token_prefix=token[:8],
        rollout_bucket=rollout_bucket(device_id),
        channel=channel,
        model=model[:100],
        os_version=os_version[:100],
        app_version=app_version[:50],
        engine_version=engine_version,
    )
    device.full_clean()
    device.save()
    transaction.on_commit(lambda: device_token_remember(device))
    audit_log(
        actor=None,
        action="device.register",
        obj=device,
        after={"channel": channel, "model": device.model, "app_version": device.app_version},
    )
    return Enrolment(device=device, token=token)


def device_seen(*, device: Device, installed: int) -> None:
    """Record what a device reports having installed (adoption) and when it last asked."""
    now = timezone.now()
    fresh = device.last_seen_at is not None and (now - device.last_seen_at).total_seconds() < 60
    if device.installed_release == installed and fresh:
        return  # nothing new to say: spare the database a write per check
    Device.objects.filter(pk=device.pk).update(installed_release=installed, last_seen_at=now)
    device.installed_release = installed
    device.last_seen_at = now


def adoption_snapshot(*, day: Any = None) -> int:
    """Today's (or ``day``'s) devices per installed release; replaces that day's rows."""
    day = day or timezone.localdate()
    counts = (
        Device.objects.filter(revoked_at__isnull=True)
        .values("installed_release")
        .annotate(n=Count("id"))
    )
    with transaction.atomic():
        AdoptionSnapshot.objects.filter(day=day).delete()
        AdoptionSnapshot.objects.bulk_create(
            AdoptionSnapshot(day=day, release_number=row["installed_release"], devices=row["n"])
            for row in counts
        )
    return len(counts)
