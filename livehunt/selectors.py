"""Read paths of livehunt: rules a person may see, active rules and their stamp, hits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Max, QuerySet
from django.utils import timezone

from livehunt.models import WatchHit, WatchRule, WebhookDelivery
from livehunt.policies import sees_all


def active_rules() -> QuerySet[WatchRule]:
    """Enabled and not expired, as of now (expiry needs no write: the stamp sees it)."""
    return WatchRule.objects.filter(enabled=True, expires_at__gt=timezone.now())


def any_active() -> bool:
    return active_rules().exists()


@dataclass(frozen=True)
class ActiveSet:
    stamp: str  # changes when a rule is added, edited, deleted, disabled or expires
    ids: tuple[int, ...]


def active_set() -> ActiveSet:
    """The active rules' (id, version) pairs and a stamp derived from them, read from the
    database every time: every process on every machine agrees on it, and a rule that
    expires leaves the set at once without anything being written."""
    rows = list(active_rules().order_by("id").values_list("id", "version"))
    digest = hashlib.sha256(";".join(f"{i}:{v}" for i, v in rows).encode()).hexdigest()
    return ActiveSet(stamp=f"{len(rows)}:{digest[:32]}", ids=tuple(i for i, _ in rows))


def rules_for_compile(ids: tuple[int, ...]) -> list[dict[str, Any]]:
    rows = WatchRule.objects.filter(pk__in=ids).order_by("id")
    return [dict(row) for row in rows.values("id", "version", "name", "kind", "body")]


def rule_list(*, user: Any) -> QuerySet[WatchRule]:
    rules = WatchRule.objects.select_related("owner").annotate(
        hit_count=Count("hits"), last_hit=Max("hits__created_at")
    )
    if not sees_all(user):
        rules = rules.filter(owner=user)
    return rules.order_by("-id")


def rule_get(*, user: Any, rule_id: int) -> WatchRule | None:
    """The rule if ``user`` may see it (others' rules are 404 to them, not 403)."""
    return rule_list(user=user).filter(pk=rule_id).first()


def rule_hits(*, rule: WatchRule) -> QuerySet[WatchHit]:
    return WatchHit.objects.filter(rule=rule).order_by("-id")


def rule_deliveries(*, rule: WatchRule, limit: int = 20) -> list[WebhookDelivery]:
    return list(WebhookDelivery.objects.filter(rule=rule).order_by("-id")[:limit])
