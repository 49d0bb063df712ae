"""Write paths of livehunt: keeping watch rules, and matching a newly scanned sample.

- ``watch_rule_create`` / ``watch_rule_update`` / ``watch_rule_delete``: a rule from a
  signature revision (drafts included) or from a body written directly, validated by the
  kind's own ``validate`` (a Koodous rule is rewritten by the YARA kind, as for retro-hunts).
- ``sample_watch``: the body of the task chained after each successful scan: the active
  rules, compiled once per stamp in each process, matched on the stored sample; each hit is
  recorded once per (rule, sample), notified once (the notification's key), and its webhook
  sent at most once (``webhook_deliver``).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from datetime import datetime, timedelta
from http.client import HTTPException
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from engine import ENGINE_VERSION
from engine.features import RuleRecord
from engine.kinds import REGISTRY, UnknownKind, get_kind
from engine.ruleset import Ruleset, compile_ruleset
from livehunt import policies
from livehunt.models import DeliveryStatus, WatchHit, WatchRule, WebhookDelivery
from livehunt.selectors import active_set, any_active, rules_for_compile
from livehunt.webhooks import WebhookRefused, check_url, post_json
from portal.audit import audit_log
from portal.exceptions import ApplicationError, ForbiddenError
from portal.models import User
from portal.notifications import notify

log = logging.getLogger(__name__)

DEFAULT_DAYS = 30
NAME_MAX = 200
# a form that says "365 days" computes now + 365 d a moment before the service does
_SLACK = timedelta(minutes=5)


def max_days() -> int:
    return max(1, int(settings.LIVEHUNT_MAX_DAYS))


def rule_url(rule_id: int) -> str:
    return reverse("livehunt:rule-detail", args=[rule_id])


# --- keeping rules ---------------------------------------------------------------------------
def _expiry(expires_at: datetime | None) -> datetime:
    now = timezone.now()
    if expires_at is None:
        return now + timedelta(days=min(DEFAULT_DAYS, max_days()))
    if timezone.is_naive(expires_at):
        raise ApplicationError(
            "The expiry date needs a time zone (e.g. 2026-12-31T00:00:00Z).",
            {"fields": {"expires_at": ["no time zone"]}},
        )
    if expires_at <= now:
        raise ApplicationError(
            "The expiry date must be in the future.", {"fields": {"expires_at": ["in the past"]}}
        )
    if expires_at > now + timedelta(days=max_days()) + _SLACK:
        raise ApplicationError(
            f"A watch rule expires within {max_days()} days.",
            {"fields": {"expires_at": [f"more than {max_days()} days away"]}},
        )
    return expires_at


def _validated(kind: str, body: Any) -> tuple[str, Any]:
    try:
        kind_obj = get_kind(kind)
    except UnknownKind:
        raise ApplicationError(
            f"Unknown signature kind {kind!r}.",
            {"fields": {"kind": ["unknown"]}, "kinds": list(REGISTRY)},
        ) from None
    result = kind_obj.validate(body)
    if result.errors:
        raise ApplicationError(
            f"The {kind} rule is not valid: {result.errors[0]}",
            {
                "fields": {"body": [str(i) for i in result.errors]},
                "errors": [
                    {"message": i.message, "line": i.line, "column": i.column}
                    for i in result.errors
                ],
            },
        )
    return kind, result.body


def _webhook(url: str) -> str:
    url = (url or "").strip()
    if not url:
        return ""
    try:
        check_url(url)
    except WebhookRefused as exc:
        raise ApplicationError(
            f"The webhook URL cannot be used: {exc}", {"fields": {"webhook_url": [str(exc)]}}
        ) from None
    return url


def _from_signature(*, signature_id: int | None, revision_id: int | None) -> tuple[RuleRecord, int]:
    from threats.public import current_revision_ids, records_by_revision

    if revision_id is None:
        assert signature_id is not None
        current = current_revision_ids([signature_id])
        if signature_id not in current:
            raise ApplicationError(
                f"No signature #{signature_id}.", {"fields": {"signature_id": ["no such"]}}
            )
        revision_id = current[signature_id]
    record = records_by_revision([revision_id]).get(revision_id)
    if record is None:
        raise ApplicationError(
            f"No signature revision {revision_id}.", {"fields": {"revision_id": ["no such"]}}
        )
    return record, revision_id


def _name(name: str, default: str) -> str:
    name = (name or "").strip() or default
    if len(name) > NAME_MAX:
        raise ApplicationError(
            f"A name has at most {NAME_MAX} characters.", {"fields": {"name": ["too long"]}}
        )
    return name


def _snapshot(rule: WatchRule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "kind": rule.kind,
        "enabled": rule.enabled,
        "expires_at": rule.expires_at.isoformat(),
        "webhook": bool(rule.webhook_url),
        "source_revision_id": rule.source_revision_id,
        "version": rule.version,
    }


@transaction.atomic
def watch_rule_create(
    *,
    user: User,
    name: str = "",
    kind: str | None = None,
    body: Any = None,
    signature_id: int | None = None,
    revision_id: int | None = None,
    expires_at: datetime | None = None,
    webhook_url: str = "",
    enabled: bool = True,
) -> WatchRule:
    """A watch rule of ``user``'s: from a signature (its current revision) or a revision,
    drafts included, copied as it is now; or from ``kind`` and ``body`` written directly."""
    if not policies.can_write(user):
        raise ForbiddenError("Your role does not allow keeping watch rules.")
    from_signature = signature_id is not None or revision_id is not None
    if from_signature and (kind or body is not None):
        raise ApplicationError(
            "Give either a signature (or revision) or a kind and body, not both.",
            {"fields": {"body": ["given with a signature"]}},
        )
    source_sig: int | None = None
    source_rev: int | None = None
    if from_signature:
        record, source_rev = _from_signature(signature_id=signature_id, revision_id=revision_id)
        kind_name, norm = _validated(record.kind, record.body)
        source_sig = record.id
        default_name = record.name
    else:
        if not kind or body is None or body == "":
            raise ApplicationError(
                "A watch rule needs a signature, or a kind and a body.",
                {"fields": {"body": ["required"]}},
            )
        kind_name, norm = _validated(kind, body)
        default_name = get_kind(kind_name).summary(norm)
    rule = WatchRule(
        owner=user,
        name=_name(name, default_name),
        kind=kind_name,
        body=norm,
        source_signature_id=source_sig,
        source_revision_id=source_rev,
        webhook_url=_webhook(webhook_url),
        enabled=bool(enabled),
        expires_at=_expiry(expires_at),
    )
    rule.full_clean()
    rule.save()
    audit_log(actor=user, action="watch_rule.create", obj=rule, after=_snapshot(rule))
    return rule


_UNSET: Any = object()


@transaction.atomic
def watch_rule_update(
    *,
    rule: WatchRule,
    user: User,
    name: str | None = None,
    kind: str | None = None,
    body: Any = _UNSET,
    expires_at: datetime | None = None,
    webhook_url: str | None = None,
    enabled: bool | None = None,
) -> WatchRule:
    """Change a rule; every change bumps its version, so every process compiles it again."""
    if not policies.can_change(user, rule):
        raise ForbiddenError("Only the rule's owner (or an admin) may change it.")
    rule = WatchRule.objects.select_for_update().get(pk=rule.pk)
    before = _snapshot(rule)
    if kind is not None or body is not _UNSET:
        new_kind = kind or rule.kind
        new_body = rule.body if body is _UNSET else body
        rule.kind, rule.body = _validated(new_kind, new_body)
        rule.source_signature_id = None if body is not _UNSET else rule.source_signature_id
        rule.source_revision_id = None if body is not _UNSET else rule.source_revision_id
    if name is not None:
        rule.name = _name(name, rule.name)
    if expires_at is not None:
        rule.expires_at = _expiry(expires_at)
    if webhook_url is not None:
        rule.webhook_url = _webhook(webhook_url)
    if enabled is not None:
        rule.enabled = bool(enabled)
    rule.version += 1
    rule.full_clean()
    rule.save()
    audit_log(
        actor=user, action="watch_rule.update", obj=rule, before=before, after=_snapshot(rule)
    )
    return rule


@transaction.atomic
def watch_rule_delete(*, rule: WatchRule, user: User) -> None:
    if not policies.can_change(user, rule):
        raise ForbiddenError("Only the rule's owner (or an admin) may delete it.")
    audit_log(actor=user, action="watch_rule.delete", obj=rule, before=_snapshot(rule))
    rule.delete()


# --- the active rules, compiled once per stamp in each process ---------------------------------
_lock = threading.Lock()
_compiled: OrderedDict[str, Ruleset] = OrderedDict()
_CACHE_SIZE = 2


def _record(row: dict[str, Any]) -> RuleRecord:
    kind = REGISTRY.get(row["kind"])
    return RuleRecord(
        id=row["id"],
        revision=row["version"],
        name=f"Livehunt.{row['kind']}.{row['id']}-{row['version']}",
        kind=row["kind"],
        body=row["body"],
        severity="malicious",
        min_engine=kind.min_engine if kind is not None else 1,
    )


def active_ruleset() -> Ruleset | None:
    """The active rules compiled, or None when there are none. The stamp is read from the
    database on each call (one indexed query), so a rule added, edited or expired on any
    machine is seen by the next task everywhere; compiling happens once per stamp."""
    active = active_set()
    if not active.ids:
        return None
    key = f"{active.stamp}@engine{ENGINE_VERSION}"
    with _lock:
        found = _compiled.get(key)
        if found is not None:
            _compiled.move_to_end(key)
            return found
    ruleset = compile_ruleset([_record(r) for r in rules_for_compile(active.ids)])
    if ruleset.errors:
        log.warning("livehunt: %d watch rule(s) do not compile here", len(ruleset.errors))
    with _lock:
        _compiled[key] = ruleset
        while len(_compiled) > _CACHE_SIZE:
            _compiled.popitem(last=False)
    return ruleset


def ruleset_cache_clear() -> None:
    with _lock:
        _compiled.clear()


# --- matching a new sample ---------------------------------------------------------------------
def sample_watch(*, sample_id: int, scan_id: int | None = None) -> list[WatchHit]:
    """Match every active watch rule on a sample that was just scanned. Safe to run twice:
    a hit is one row per (rule, sample) and its notification has a key per (rule, sample).
    Returns the hits (new or already recorded) this run found."""
    from scans.public import SampleMatchError, sample_match, sample_ref

    ruleset = active_ruleset()
    if ruleset is None:
        return []
    ref = sample_ref(sample_id)
    if ref is None:
        return []
    try:
        matches = sample_match(sample_id=sample_id, ruleset=ruleset)
    except SampleMatchError as exc:
        log.warning("livehunt: sample %s could not be matched: %s", sample_id, exc)
        return []
    if not matches:
        return []
    by_rule = {m.signature_id: m for m in matches}
    rules = WatchRule.objects.select_related("owner").filter(pk__in=list(by_rule))
    hits: list[WatchHit] = []
    for rule in rules:
        match = by_rule[rule.pk]
        try:
            with transaction.atomic():
                hit, _ = WatchHit.objects.get_or_create(
                    rule=rule,
                    sample_id=ref.id,
                    defaults={
                        "sample_sha256": ref.sha256,
                        "package": ref.package[:255],
                        "app_label": ref.app_label[:255],
                        "original_name": ref.original_name[:255],
                        "scan_id": scan_id,
                        "rule_version": match.revision,
                        "evidence": list(match.evidence)[:20],
                    },
                )
        except IntegrityError:  # a concurrent run recorded it first
            hit = WatchHit.objects.get(rule=rule, sample_id=ref.id)
        hits.append(hit)
        who = ref.package or ref.original_name or ref.sha256[:16]
        notify(
            recipients=[rule.owner],
            kind="livehunt",
            key=f"livehunt:{rule.pk}:{ref.id}",
            title=f"Watch rule “{rule.name}” matched {who}"[:200],
            body=f"SHA-256 {ref.sha256}\n" + "\n".join(match.evidence[:5]),
            url=ref.url,
        )
        if rule.webhook_url:
            transaction.on_commit(functools.partial(webhook_enqueue, hit_id=hit.pk))
    return hits


def watch_enqueue(*, scan_id: int, sample_id: int) -> None:
    """After a successful scan: send ``livehunt.watch_sample`` (when any rule is active)."""
    from livehunt.tasks import watch_sample

    try:
        if not any_active():
            return
        watch_sample.apply_async((sample_id, scan_id))
    except Exception:  # the scan is done either way; a lost watch is logged
        log.exception("livehunt: could not queue the watch of sample %s", sample_id)


def webhook_enqueue(*, hit_id: int) -> None:
    from livehunt.tasks import deliver_webhook

    try:
        deliver_webhook.apply_async((hit_id,))
    except Exception:
        log.exception("livehunt: could not queue the webhook of hit %s", hit_id)


def hit_payload(hit: WatchHit) -> dict[str, Any]:
    base = settings.PORTAL_BASE_URL.rstrip("/")
    rule = hit.rule
    return {
        "event": "livehunt.hit",
        "rule": {
            "id": rule.pk,
            "name": rule.name,
            "kind": rule.kind,
            "version": hit.rule_version,
            "url": f"{base}{rule_url(rule.pk)}",
        },
        "sample": {
            "sha256": hit.sample_sha256,
            "package": hit.package,
            "app_label": hit.app_label,
            "file_name": hit.original_name,
            "url": f"{base}/samples/{hit.sample_sha256}/",
        },
        "evidence": list(hit.evidence or []),
        "matched_at": hit.created_at.isoformat(),
    }


def webhook_deliver(*, hit_id: int) -> WebhookDelivery | None:
    """POST the hit to its rule's webhook, at most once per (rule, sample): the delivery row
    is claimed (a unique constraint) before the request, so a retried or redelivered task
    finds it and sends nothing. A failure is recorded, not retried."""
    hit = WatchHit.objects.select_related("rule").filter(pk=hit_id).first()
    if hit is None or not hit.rule.webhook_url:
        return None
    url = hit.rule.webhook_url
    try:
        with transaction.atomic():
            delivery = WebhookDelivery.objects.create(
                rule=hit.rule, sample_id=hit.sample_id, url=url, status=DeliveryStatus.SENDING
            )
    except IntegrityError:
        return None  # delivered (or tried) already
    try:
        answer = post_json(url, hit_payload(hit))
    except WebhookRefused as exc:
        delivery.status, delivery.error = DeliveryStatus.REFUSED, str(exc)[:500]
    except (OSError, HTTPException) as exc:
        delivery.status = DeliveryStatus.FAILED
        delivery.error = (str(exc) or type(exc).__name__)[:500]
    else:
        delivery.status_code = answer.status
        ok = 200 <= answer.status < 300
        delivery.status = DeliveryStatus.DELIVERED if ok else DeliveryStatus.FAILED
        if not ok:
            delivery.error = f"the webhook answered HTTP {answer.status}"
    delivery.finished_at = timezone.now()
    delivery.save(update_fields=["status", "status_code", "error", "finished_at"])
    return delivery
