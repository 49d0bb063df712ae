"""Labels: what we know about an app ("known clean", "known malicious", "unknown"), changed
by people with a reason, one sample or many at once (docs/verdicts.md).

A label is not a verdict: the verdict is what the rules say (``scans.verdicts``). But the
clean-corpus gate is built on labels: a gate hunt's clean hits are its matches on samples
labelled clean. So a change to or from "known clean" on a sample that a finished hunt hit
makes that hunt *stale* (``RetroHunt.stale_reason``): every gate resting on it says so in
the review queue, and approval asks for a new hunt. A hunt that covered the sample without
hitting it stays valid: its answer for that sample ("no hit") has not changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction

from portal.audit import audit_log
from portal.exceptions import ApplicationError, ForbiddenError
from portal.models import User
from scans.models import HuntMatch, HuntStatus, Label, RetroHunt, Sample, SignatureHit

MAX_RELABEL = 1000
_HASH_LENGTHS = {32: "md5", 40: "sha1", 64: "sha256"}


@dataclass(frozen=True)
class RelabelResult:
    label: str
    changed: tuple[str, ...]  # SHA-256s whose label changed
    unchanged: tuple[str, ...]  # already had it
    not_found: tuple[str, ...]  # hashes no stored sample has
    stale_hunts: tuple[int, ...]  # hunts made stale by the change


def _clean_reason(reason: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise ApplicationError("Say why the label changes: a reason is required.")
    if len(text) > 2000:
        raise ApplicationError("The reason is too long (at most 2,000 characters).")
    return text


def _hashes(values: Sequence[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        text = value.strip().lower() if isinstance(value, str) else ""
        if len(text) not in _HASH_LENGTHS or any(c not in "0123456789abcdef" for c in text):
            raise ApplicationError(
                f"{str(value)[:80]!r} is not an MD5, SHA-1 or SHA-256 in hexadecimal."
            )
        if text not in out:
            out.append(text)
    if not out:
        raise ApplicationError("Give at least one sample hash.")
    if len(out) > MAX_RELABEL:
        raise ApplicationError(f"At most {MAX_RELABEL:,} samples can be relabelled at once.")
    return out


def samples_relabel(*, hashes: Sequence[str], label: str, reason: str, by: User) -> RelabelResult:
    """Set ``label`` on the samples with these hashes (MD5, SHA-1 or SHA-256), audited per
    sample with ``reason``; marks stale the hunts whose clean hits this changes."""
    if not by.has_perm("scans.change_sample"):
        raise ForbiddenError("You may not change labels.")
    if label not in Label.values:
        raise ApplicationError(
            f"{str(label)[:40]!r} is not a label; use one of: {', '.join(Label.values)}."
        )
    why = _clean_reason(reason)
    wanted = _hashes(hashes)
    by_column: dict[str, list[str]] = {}
    for h in wanted:
        by_column.setdefault(_HASH_LENGTHS[len(h)], []).append(h)
    with transaction.atomic():
        samples: dict[int, Sample] = {}
        for column, values in by_column.items():
            for s in Sample.objects.select_for_update().filter(**{f"{column}__in": values}):
                samples[s.pk] = s
        found = {getattr(s, col) for s in samples.values() for col in ("md5", "sha1", "sha256")}
        changed = [s for s in samples.values() if s.label != label]
        for sample in changed:
            audit_log(
                actor=by,
                action="sample.label",
                obj=sample,
                object_repr=sample.package or sample.sha256,
                before={"label": sample.label},
                after={"label": label},
                reason=why,
            )
        Sample.objects.filter(pk__in=[s.pk for s in changed]).update(label=label)
        touching_clean = [
            s for s in changed if Label.CLEAN in (s.label, label)
        ]  # s.label is still the old one here
        stale = _stale_hunts(touching_clean, label, by, why)
    if changed:
        _refresh_hit_stats([s.pk for s in changed])
    return RelabelResult(
        label=label,
        changed=tuple(sorted(s.sha256 for s in changed)),
        unchanged=tuple(sorted(s.sha256 for s in samples.values() if s not in changed)),
        not_found=tuple(h for h in wanted if h not in found),
        stale_hunts=stale,
    )


def _stale_hunts(samples: list[Sample], label: str, by: User, why: str) -> tuple[int, ...]:
    if not samples:
        return ()
    hit = set(
        HuntMatch.objects.filter(
            sample_id__in=[s.pk for s in samples], hunt__status=HuntStatus.FINISHED
        ).values_list("hunt_id", "sample_id")
    )
    if not hit:
        return ()
    names = {s.pk: (s.package or s.sha256[:12], s.label) for s in samples}
    per_hunt: dict[int, int] = {}
    for hunt_id, sample_id in sorted(hit):
        per_hunt.setdefault(hunt_id, sample_id)
    for hunt_id, sample_id in per_hunt.items():
        name, old = names[sample_id]
        more = sum(1 for h, _ in hit if h == hunt_id) - 1
        also = f" (and {more} other sample(s))" if more else ""
        RetroHunt.objects.filter(pk=hunt_id, stale_reason="").update(
            stale_reason=(
                f"{name}{also} was relabelled from {Label(old).label.lower()} to "
                f"{Label(label).label.lower()} by {by.get_username()}: {why}"
            )[:2000]
        )
    return tuple(sorted(per_hunt))


def _refresh_hit_stats(sample_ids: list[int]) -> None:
    """Signature hit counts are by label: recount those of the signatures that hit these."""
    from scans.services import signature_stats_refresh

    ids = set(
        SignatureHit.objects.filter(sample_id__in=sample_ids).values_list("signature_id", flat=True)
    )
    if ids:
        signature_stats_refresh(signature_ids=ids)
