"""Write paths for accounts, tokens, log-in throttling and worker heartbeats."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from portal.audit import audit_log
from portal.models import ApiToken, User, WorkerHeartbeat
from portal.roles import ADMIN, ROLES


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def api_token_create(*, user: User) -> tuple[ApiToken, str]:
    """A new token for ``user``; the raw key is returned once and never stored."""
    key = secrets.token_urlsafe(32)
    token = ApiToken(user=user, key_hash=_hash_key(key), prefix=key[:8])
    token.full_clean()
    token.save()
    audit_log(actor=user, action="token.create", obj=token)
    return token, key


def api_token_lookup(*, key: str) -> ApiToken | None:
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=_hash_key(key), revoked_at__isnull=True)
        .first()
    )
    if token is not None:
        now = timezone.now()
        # Writing on every request would serialise readers on SQLite; a minute is enough.
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


@transaction.atomic
def api_token_revoke(*, token: ApiToken, actor: User) -> None:
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit_log(actor=actor, action="token.revoke", obj=token)


# --- log-in throttling -----------------------------------------------------------------------
def _failure_keys(username: str, ip: str | None) -> list[str]:
    keys = [f"login-fail:user:{_hash_key(username.lower())}"]
    if ip:
        keys.append(f"login-fail:ip:{ip}")
    return keys


def login_locked_for(*, username: str, ip: str | None) -> int:
    """Seconds until another attempt is allowed for this username or IP; 0 if allowed."""
    limit = settings.LOGIN_FAILURE_LIMIT
    now = timezone.now().timestamp()
    wait = 0
    for key in _failure_keys(username, ip):
        failures: list[float] = cache.get(key, [])
        recent = [t for t in failures if now - t < settings.LOGIN_FAILURE_WINDOW.total_seconds()]
        if len(recent) >= limit:
            oldest = sorted(recent)[-limit]
            wait = max(wait, int(oldest + settings.LOGIN_FAILURE_WINDOW.total_seconds() - now) + 1)
    return wait


def login_failure_record(*, username: str, ip: str | None) -> None:
    now = timezone.now().timestamp()
    window = settings.LOGIN_FAILURE_WINDOW.total_seconds()
    for key in _failure_keys(username, ip):
        failures = [t for t in cache.get(key, []) if now - t < window]
        failures.append(now)
        cache.set(key, failures[-100:], timeout=int(window))
    audit_log(actor=None, action="login.failed", object_type="portal.user", object_repr=username)


def login_failures_clear(*, username: str) -> None:
    cache.delete(_failure_keys(username, None)[0])


# --- users -----------------------------------------------------------------------------------
@transaction.atomic
def user_set_roles(*, user: User, roles: Iterable[str], actor: User | None) -> User:
    wanted = set(roles)
    unknown = wanted - set(ROLES)
    if unknown:
        from portal.exceptions import ApplicationError

        raise ApplicationError(f"Unknown role(s): {', '.join(sorted(unknown))}.")
    before = sorted(user.groups.values_list("name", flat=True))
    user.groups.set(Group.objects.filter(name__in=wanted))
    # The Django admin is for the admin role only.
    is_staff = ADMIN in wanted
    if user.is_staff != is_staff:
        user.is_staff = is_staff
        user.save(update_fields=["is_staff"])
    audit_log(
        actor=actor,
        action="user.roles",
        obj=user,
        before={"roles": before},
        after={"roles": sorted(wanted)},
    )
    return user


def worker_heartbeat(*, hostname: str, queues: list[str]) -> None:
    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname, defaults={"queues": queues, "last_seen": timezone.now()}
    )


def heartbeats_prune(*, older_than: timedelta = timedelta(days=1)) -> int:
    deleted, _ = WorkerHeartbeat.objects.filter(last_seen__lt=timezone.now() - older_than).delete()
    return deleted
