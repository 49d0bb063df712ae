"""Write paths for accounts, tokens, log-in throttling and worker heartbeats."""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from portal.audit import audit_log
from portal.models import ApiToken, User, WorkerHeartbeat
from portal.ratelimit import counter_add
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
# Two buckets per attempt: the (username, source IP) pair, locked after LOGIN_FAILURE_LIMIT
# failures, and the username alone, locked after LOGIN_FAILURE_LIMIT_PER_USERNAME failures
# from any IPs but never for an IP the username logged in from lately. Nothing is locked per
# IP alone, so someone behind the team's NAT cannot lock the team out, and API tokens (and the
# other users behind that IP) are never affected. A pair that is locked is refused without
# counting, so one IP adds at most LOGIN_FAILURE_LIMIT failures to a username per lockout.
# Counters are cache.add + cache.incr (atomic on Redis and local memory) and live for
# LOGIN_FAILURE_WINDOW after the last failure. Cache keys carry a hash, never a username.
@dataclass(frozen=True)
class _Bucket:
    scope: str  # "pair" or "username"
    key: str
    limit: int


def username_digest(username: str) -> str:
    """What throttling keys hold instead of a username (case-insensitive)."""
    data = username.lower().encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:40]


def _buckets(username: str, ip: str | None) -> list[_Bucket]:
    user = username_digest(username)
    return [
        _Bucket("pair", f"{user}:{ip or '-'}", max(1, settings.LOGIN_FAILURE_LIMIT)),
        _Bucket("username", user, max(1, settings.LOGIN_FAILURE_LIMIT_PER_USERNAME)),
    ]


def _known_ip_key(username: str, ip: str) -> str:
    return f"login-known:{username_digest(username)}:{ip}"


def _window_seconds() -> int:
    return max(1, int(settings.LOGIN_FAILURE_WINDOW.total_seconds()))


def login_locked_for(*, username: str, ip: str | None) -> int:
    """Seconds until this username may try again from this IP; 0 if it may now."""
    now = time.time()
    wait = 0.0
    known = ip is not None and cache.get(_known_ip_key(username, ip)) is not None
    for bucket in _buckets(username, ip):
        if bucket.scope == "username" and known:
            continue
        until = cache.get(f"login-lock:{bucket.scope}:{bucket.key}")
        if until is not None:
            wait = max(wait, float(until) - now)
    return math.ceil(wait) if wait > 0 else 0


def login_locked_message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"Too many failed log-ins. Try again in about {minutes} minute(s)."


def login_failure_record(*, username: str, ip: str | None) -> int:
    """Count a failed log-in; the seconds the caller is locked out for now (0: not locked).

    Every LOGIN_FAILURE_LIMIT-th failure of a pair (every ..._PER_USERNAME-th of a username)
    starts a lockout: LOGIN_FAILURE_WINDOW the first time, twice the previous one each
    further time (strikes are remembered for LOGIN_LOCKOUT_MAX), at most LOGIN_LOCKOUT_MAX.
    """
    window = _window_seconds()
    cap = max(window, int(settings.LOGIN_LOCKOUT_MAX.total_seconds()))
    first_of_pair = False
    lockouts: list[dict[str, Any]] = []
    for bucket in _buckets(username, ip):
        failures = counter_add(f"login-fail:{bucket.scope}:{bucket.key}", timeout=window)
        if bucket.scope == "pair":
            first_of_pair = failures == 1
        if failures % bucket.limit:
            continue
        strikes = counter_add(f"login-strikes:{bucket.scope}:{bucket.key}", timeout=cap + window)
        seconds = min(window * 2 ** min(strikes - 1, 32), cap)
        cache.set(f"login-lock:{bucket.scope}:{bucket.key}", time.time() + seconds, timeout=seconds)
        lockouts.append({"scope": bucket.scope, "failures": failures, "locked_seconds": seconds})
    _login_failure_audit(username=username, ip=ip, first_of_pair=first_of_pair, lockouts=lockouts)
    return max((int(lock["locked_seconds"]) for lock in lockouts), default=0)


def _login_failure_audit(
    *, username: str, ip: str | None, first_of_pair: bool, lockouts: list[dict[str, Any]]
) -> None:
    """Audit rows for anonymous failures, bounded: the first failure of a (username, IP)
    pair in a window and each lockout, at most LOGIN_AUDIT_ROWS_PER_IP per IP and window;
    then one row saying the rest from that IP are counted, not logged."""
    rows: list[tuple[str, dict[str, Any], str]] = []
    if first_of_pair:
        rows.append(
            ("login.failed", {}, "further failures of this username from this IP are counted")
        )
    for lock in lockouts:
        what = "username from this IP" if lock["scope"] == "pair" else "username from any IP"
        rows.append(("login.locked", lock, f"{lock['failures']} failed log-ins of this {what}"))
    if not rows:
        return
    window = _window_seconds()
    budget = max(0, settings.LOGIN_AUDIT_ROWS_PER_IP)
    # fixed windows: the budget comes back each window even while the failures go on
    budget_key = f"login-audit:{ip or '-'}:{int(time.time() // window)}"
    for action, after, reason in rows:
        written = counter_add(budget_key, timeout=window)
        if written > budget + 1:
            return
        if written == budget + 1:
            action, after = "login.failed.suppressed", {}
            reason = "more failed log-ins from this IP in this window are counted, not logged"
        audit_log(
            actor=None,
            action=action,
            object_type="portal.user",
            object_repr=username,
            after=after,
            reason=reason,
        )


def login_success_record(*, username: str, ip: str | None) -> None:
    """Forget the pair's failures and lockouts, and remember the IP as one this username
    logs in from (its own username lockouts do not apply there)."""
    pair = _buckets(username, ip)[0]
    cache.delete_many([f"login-fail:pair:{pair.key}", f"login-strikes:pair:{pair.key}"])
    if ip is not None:
        cache.set(_known_ip_key(username, ip), 1, timeout=settings.LOGIN_KNOWN_IP_DAYS * 86400)


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
