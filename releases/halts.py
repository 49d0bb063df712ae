"""Automatic halts: the portal stops a release that phones say is hurting people.

Two rules, over the detection reports of the last ``AUTO_HALT_WINDOW_MINUTES`` for the
current release (the newest published one):

- **clean app**: a signature revision *new in this release* (added, or changed since the
  previous release) was reported on an app labelled clean, or on an app whose package and
  signer match a clean sample (a rebuilt or re-signed clean app);
- **app share**: in a cohort (stable or beta), one app drew detections from more than
  ``AUTO_HALT_APP_SHARE`` of the devices that reported anything, once at least
  ``AUTO_HALT_MIN_DEVICES`` reported (a popular app is flagged, a tiny sample is not).

An automatic halt halts the release (signed at once: phones stop taking it, and the ones on it
get the next good release), is audited (``release.auto_halt``, no actor), records an
``AutoHalt`` that the release and signature pages show, alerts every reviewer (a notification
and an e-mail, once per release), and proposes the kill switch: ``release_kill_switch`` marks
the signature noisy and publishes a release, which is urgent by construction.

``auto_halt_check`` runs as a task shortly after reports arrive (debounced) and on a beat
schedule; it is idempotent.
"""

from __future__ import annotations

import datetime
import logging
from collections import Counter, defaultdict
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from portal.exceptions import ConflictError, NotFoundError
from portal.models import User
from portal.notifications import notify_role
from releases import pins as pin_codec
from releases.models import AutoHalt, DetectionReport, HaltRule, Release, ReleaseState, ReportBatch
from releases.services import release_halt_locked, release_publish
from scans.public import clean_facts
from threats.public import signature_quiet

logger = logging.getLogger(__name__)


def _current() -> Release | None:
    return Release.objects.filter(state=ReleaseState.PUBLISHED).order_by("-number").first()


def _new_pins(release: Release) -> set[tuple[int, int]]:
    """(signature id, revision) added or changed by ``release`` since the previous one."""
    previous = (
        Release.objects.filter(number__lt=release.number, state=ReleaseState.PUBLISHED)
        .order_by("-number")
        .first()
    )
    before = pin_codec.unpack(bytes(previous.pins)) if previous is not None else []
    change = pin_codec.diff(before, pin_codec.unpack(bytes(release.pins)))
    return {(p[0], p[1]) for p in change.added} | {(n[0], n[1]) for _, n in change.changed}


def _clean_app_hit(release: Release, since: datetime.datetime) -> dict[str, Any] | None:
    new = _new_pins(release)
    if not new:
        return None
    rows = list(
        DetectionReport.objects.filter(
            release=release.number,
            detected_at__gte=since,
            signature_id__in=sorted({sid for sid, _ in new}),
        )
        .values("signature_id", "revision", "app_sha256", "package", "cert_sha256")
        .annotate(devices=Count("device", distinct=True))
        .order_by("-devices")
    )
    rows = [r for r in rows if (r["signature_id"], r["revision"]) in new]
    if not rows:
        return None
    clean = clean_facts(
        sha256s=(r["app_sha256"] for r in rows), packages=(r["package"] for r in rows)
    )
    for row in rows:
        signer = (row["package"], row["cert_sha256"])
        if row["app_sha256"] in clean.sha256s:
            why = "an app labelled clean"
        elif row["cert_sha256"] and signer in clean.package_signers:
            why = f"an app with the package and signer of a clean sample ({row['package']})"
        else:
            continue
        return {
            **row,
            "rule": HaltRule.CLEAN_APP,
            "reason": (
                f"Signature {row['signature_id']} revision {row['revision']}, new in release "
                f"{release.number}, fired on {why} ({row['app_sha256'][:16]}…) on "
                f"{row['devices']} device(s)."
            ),
        }
    return None


def _app_share_hit(release: Release, since: datetime.datetime) -> dict[str, Any] | None:
    share, least = float(settings.AUTO_HALT_APP_SHARE), int(settings.AUTO_HALT_MIN_DEVICES)
    reporting = dict(
        ReportBatch.objects.filter(received_at__gte=since)
        .values_list("device__channel")
        .annotate(n=Count("device", distinct=True))
    )
    per_app = (
        DetectionReport.objects.filter(release=release.number, detected_at__gte=since)
        .values("device__channel", "app_sha256", "package", "cert_sha256")
        .annotate(devices=Count("device", distinct=True))
        .order_by("-devices")
    )
    for row in per_app:
        cohort = row["device__channel"]
        total = reporting.get(cohort, 0)
        if total < least or row["devices"] <= share * total:
            continue
        signatures: Counter[tuple[int, int]] = Counter(
            DetectionReport.objects.filter(
                release=release.number,
                detected_at__gte=since,
                app_sha256=row["app_sha256"],
                device__channel=cohort,
            ).values_list("signature_id", "revision")
        )
        (signature_id, revision), _ = signatures.most_common(1)[0]
        return {
            "signature_id": signature_id,
            "revision": revision,
            "app_sha256": row["app_sha256"],
            "package": row["package"],
            "cert_sha256": row["cert_sha256"],
            "devices": row["devices"],
            "cohort": cohort,
            "reporting": total,
            "rule": HaltRule.APP_SHARE,
            "reason": (
                f"One app ({row['package'] or row['app_sha256'][:16]}) drew detections from "
                f"{row['devices']} of the {total} {cohort} devices that reported in the last "
                f"{settings.AUTO_HALT_WINDOW_MINUTES} minutes (over "
                f"{share:.0%}), mostly signature {signature_id}."
            ),
        }
    return None


def auto_halt_check(*, now: datetime.datetime | None = None) -> AutoHalt | None:
    """Halt the current release when a rule fires; the AutoHalt made, or None."""
    release = _current()
    if release is None or release.halted:
        return None
    since = (now or timezone.now()) - datetime.timedelta(
        minutes=int(settings.AUTO_HALT_WINDOW_MINUTES)
    )
    hit = _clean_app_hit(release, since) or _app_share_hit(release, since)
    if hit is None:
        return None
    with transaction.atomic():
        locked = Release.objects.select_for_update().get(pk=release.pk)
        if locked.halted:
            return None
        release_halt_locked(locked, by=None, reason=hit["reason"], action="release.auto_halt")
        halt = AutoHalt.objects.create(
            release=locked,
            rule=hit["rule"],
            signature_id=hit["signature_id"],
            revision=hit["revision"],
            app_sha256=hit["app_sha256"],
            package=hit["package"],
            cert_sha256=hit["cert_sha256"],
            cohort=hit.get("cohort", ""),
            devices=hit["devices"],
            reporting=hit.get("reporting", 0),
            reason=hit["reason"],
        )
        number = locked.number
        transaction.on_commit(lambda: _alert(number, halt.reason, halt.signature_id))
    logger.warning("release %s halted automatically: %s", number, halt.reason)
    return halt


def schedule_check() -> None:
    """Run ``auto_halt_check`` soon after reports arrive: at most one queued check per
    ``AUTO_HALT_DELAY_SECONDS``, however many batches a fleet posts meanwhile."""
    from releases.tasks import check_auto_halt

    delay = int(settings.AUTO_HALT_DELAY_SECONDS)
    if cache.add("releases:auto-halt-check-queued", 1, timeout=max(1, delay)):
        check_auto_halt.apply_async(countdown=delay)


def _alert(number: int, reason: str, signature_id: int) -> None:
    notify_role(
        "reviewer",
        kind="release.auto_halt",
        key=f"release-auto-halt:{number}",
        title=f"Release {number} was halted automatically",
        body=(
            f"{reason}\n\nPhones no longer take it. Proposed: mark signature {signature_id} "
            "noisy and publish an urgent release (the kill switch), from the release page."
        ),
        url=f"/releases/{number}/",
    )


def release_kill_switch(*, number: int, signature_id: int, by: User) -> Release:
    """The proposed fix: mark the signature noisy and publish a release (urgent, since a
    signature turns noisy); the auto-halt records which release resolved it."""
    halt = AutoHalt.objects.filter(release__number=number, signature_id=signature_id).first()
    if halt is None:
        raise NotFoundError(f"Release {number} has no automatic halt for signature {signature_id}.")
    if halt.resolved_by_release is not None:
        raise ConflictError(
            f"The kill switch was used already: release {halt.resolved_by_release}."
        )
    reason = f"Kill switch for the automatic halt of release {number}: {halt.reason}"
    signature_quiet(signature_id=signature_id, actor=by, reason=reason[:1000])
    release = release_publish(by=by, notes=reason[:2000])
    AutoHalt.objects.filter(pk=halt.pk).update(resolved_by_release=release.number)
    return release


def auto_halts_for_signature(signature_id: int) -> list[AutoHalt]:
    return list(AutoHalt.objects.filter(signature_id=signature_id).select_related("release")[:20])


def auto_halts_by_release(numbers: list[int]) -> dict[int, list[AutoHalt]]:
    out: dict[int, list[AutoHalt]] = defaultdict(list)
    for halt in AutoHalt.objects.filter(release__number__in=numbers).select_related("release"):
        out[halt.release.number].append(halt)
    return dict(out)
