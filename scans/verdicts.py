"""Current verdicts: what the rules of the current release say about each stored sample.

A sample's verdict is kept as rows (``CurrentMatch``: the signatures of release
``Sample.verdict_release`` that hit it) and the verdict computed from them with the engine's
own rule (``engine.ruleset.verdict_of``). A scan sets them directly. When the current release
changes (a publish, a halt), ``verdicts_sync`` moves every sample from the release it is
at to the current one by the *difference* of the two releases' pins, from what is already
known (docs/verdicts.md):

- a signature that left (or changed) loses its rows;
- a revision that came (or changed) gets its hits from its gate hunt's matches
  (``HuntMatch``), which covered every sample with an id up to the hunt's ``max_sample_id``;
- only samples newer than that hunt (or every sample, for a revision with no finished
  gate hunt) are matched again, from their stored features and unit packs, by the same
  code a retro-hunt chunk runs; never by analysing every app again;
- the verdict is recomputed for the samples whose rows changed, and every other sample at
  the old release simply moves on to the new one in one UPDATE.

Matching runs outside any transaction; each release's difference is then written in one
short transaction under a row lock (``VerdictSync``) and only to samples still at the old
release, so two workers on two machines never apply the same difference twice. It is a
Celery task sent when the current release changes and run every minute by beat (so a lost
message only delays it).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from engine.errors import AnalysisError
from engine.features import Match, RuleRecord
from engine.ruleset import compile_ruleset, record_weight, verdict_of
from releases.public import PinDiff, current_release_number, release_pins, release_records
from scans.models import (
    CurrentMatch,
    HuntMatch,
    HuntStatus,
    RetroHunt,
    Sample,
    ScanJob,
    ScanStatus,
    VerdictSync,
)
from scans.storage import ScanError
from threats.public import gate_facts

log = logging.getLogger(__name__)

_CHUNK = 900
# how long before a pass began a scan may have finished and still be committing (its
# finished_at is set before its transaction commits)
LATE_SCAN_MARGIN = timedelta(seconds=60)


@dataclass(frozen=True)
class SyncResult:
    release: int | None
    samples_changed: int  # samples whose rows (so maybe verdict) changed
    samples_matched: int  # samples matched again because no gate hunt covered them
    seconds: float


def _row(sample_id: int, record: RuleRecord) -> CurrentMatch:
    scoring = not record.noisy
    return CurrentMatch(
        sample_id=sample_id,
        signature_id=record.id,
        revision=record.revision,
        name=record.name[:255],
        kind=record.kind,
        severity=record.severity,
        scoring=scoring,
        weight=record_weight(record) if scoring else 0.0,
    )


def _match_row(sample_id: int, m: Match, weights: dict[tuple[int, int], float]) -> CurrentMatch:
    return CurrentMatch(
        sample_id=sample_id,
        signature_id=m.signature_id,
        revision=m.revision,
        name=m.name[:255],
        kind=m.kind,
        severity=m.severity,
        scoring=m.scoring,
        weight=weights.get((m.signature_id, m.revision), 0.0) if m.scoring else 0.0,
    )


def sample_verdict_from_scan(
    *,
    sample_id: int,
    release: int | None,
    records: Sequence[RuleRecord],
    matches: Iterable[Match],
    verdict: str,
    score: int,
) -> None:
    """A scan's result becomes the sample's current verdict (inside the scan's transaction).

    ``release`` is the release the scan used (None and no records: no release yet, kept as
    0); a scan with explicit records and no release (tests, tools) sets the verdict without
    a release, and ``verdicts_sync`` leaves such a sample alone until it is scanned again.
    """
    at = release if release is not None else (0 if not records else None)
    weights = {(r.id, r.revision): record_weight(r) for r in records}
    CurrentMatch.objects.filter(sample_id=sample_id).delete()
    CurrentMatch.objects.bulk_create(
        [_match_row(sample_id, m, weights) for m in matches if m.signature_id],
        ignore_conflicts=True,
    )
    Sample.objects.filter(pk=sample_id).update(
        verdict=verdict, verdict_score=score, verdict_release=at
    )
    if at is not None:
        transaction.on_commit(_maybe_behind(at))


def _maybe_behind(at: int) -> Callable[[], None]:
    def check() -> None:
        # a scan that started under an older release than the current one: bring it up
        if at != (current_release_number() or 0):
            from scans.tasks import verdicts_sync as task

            task.delay()

    return check


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def verdicts_recompute(sample_ids: Iterable[int]) -> None:
    """Each sample's verdict and score again from its rows (no rows: clean, 0)."""
    ids = sorted(set(sample_ids))
    for chunk in _chunks(ids):
        weighted: dict[int, list[tuple[str, float]]] = defaultdict(list)
        rows = CurrentMatch.objects.filter(sample_id__in=chunk, scoring=True).values_list(
            "sample_id", "severity", "weight"
        )
        for sample_id, severity, weight in rows:
            weighted[sample_id].append((severity, weight))
        by_outcome: dict[tuple[str, int], list[int]] = defaultdict(list)
        for sample_id in chunk:
            by_outcome[verdict_of(weighted.get(sample_id, ()))].append(sample_id)  # type: ignore[arg-type]
        for (verdict, score), members in by_outcome.items():
            Sample.objects.filter(pk__in=members).update(verdict=verdict, verdict_score=score)


def _covered_hits(hunt_id: int, pins: list[tuple[int, int]], at: int) -> list[tuple[int, int, int]]:
    """(sample id, signature id, revision) of the hunt's matches of these pins, on samples
    still at release ``at``."""
    wanted = set(pins)
    out: list[tuple[int, int, int]] = []
    for chunk in _chunks(sorted({sid for sid, _ in pins})):
        rows = HuntMatch.objects.filter(
            hunt_id=hunt_id, signature_id__in=chunk, sample__verdict_release=at
        ).values_list("sample_id", "signature_id", "revision_number")
        out.extend(r for r in rows if (r[1], r[2]) in wanted)
    return out


def _match_again(
    after_id: int, ceiling: int, records: list[RuleRecord], at: int
) -> dict[int, list[Match]]:
    """Match ``records`` on the samples at release ``at`` with an id above ``after_id``,
    from stored features and unit packs (a retro-hunt's per-sample code)."""
    from scans.hunt_match import sample_match

    ruleset = compile_ruleset(records)
    out: dict[int, list[Match]] = {}
    samples = Sample.objects.filter(verdict_release=at, id__gt=after_id, id__lte=ceiling).order_by(
        "id"
    )
    for sample in samples.iterator(chunk_size=200):
        try:
            out[sample.pk] = sample_match(sample, ruleset)
        except (AnalysisError, ScanError) as exc:
            log.warning("sample %s: not matched again for its current verdict: %s", sample, exc)
    return out


def _advance(at: int, to: int) -> tuple[int, int]:
    """Move every sample at release ``at`` to release ``to``; (changed, matched again)."""
    # samples stored (or moved back to ``at`` by a late scan) after this point wait for the
    # next pass: what is computed below covers exactly the samples up to ``ceiling``
    ceiling = Sample.objects.aggregate(m=Max("id"))["m"] or 0
    began = timezone.now()
    committed = _recent_scans(began)
    change = _pin_diff(at, to)
    records = {r.id: r for r in (release_records(to) if to else ())}
    gone = sorted({p[0] for p in change.removed} | {before[0] for before, _ in change.changed})
    new = list(change.added) + [after for _, after in change.changed]
    # where each new revision's hits come from: its finished gate hunt, plus matching again
    # the samples stored after that hunt started
    facts = gate_facts((sid, rev) for sid, rev, _ in new)
    hunt_ids = {f.gate_hunt_id for f in facts.values() if f.gate_hunt_id}
    covered = dict(
        RetroHunt.objects.filter(pk__in=hunt_ids, status=HuntStatus.FINISHED).values_list(
            "id", "max_sample_id"
        )
    )
    by_hunt: dict[int, list[tuple[int, int]]] = defaultdict(list)
    again: dict[int, list[RuleRecord]] = defaultdict(list)  # after sample id -> records
    for sid, rev, _ in new:
        if sid not in records:
            continue
        hunt_id = facts[(sid, rev)].gate_hunt_id if (sid, rev) in facts else None
        if hunt_id in covered:
            by_hunt[hunt_id].append((sid, rev))
            again[covered[hunt_id]].append(records[sid])
        else:
            again[0].append(records[sid])
    hits: list[tuple[int, int, int]] = []
    for hunt_id, pins in by_hunt.items():
        hits.extend(_covered_hits(hunt_id, pins, at))
    matched: dict[int, list[Match]] = {}
    for after_id, recs in again.items():
        for sample_id, found in _match_again(after_id, ceiling, recs, at).items():
            matched.setdefault(sample_id, []).extend(found)
    candidates = sorted({s for s, _, _ in hits} | set(matched))
    with transaction.atomic():
        # one writer at a time (PostgreSQL; SQLite has one anyway); what was computed above
        # is written only for samples still at ``at`` (a scan may have moved one meanwhile)
        VerdictSync.objects.select_for_update().get(pk=1)
        # a scan that committed while this pass matched may have moved its sample back to
        # ``at`` after the pass read it: such samples stay at ``at`` for the next pass
        late = set(
            Sample.objects.filter(
                pk__in=[s for scan, s in _recent_scans(began).items() if scan not in committed],
                verdict_release=at,
            ).values_list("id", flat=True)
        )
        still: set[int] = set()
        for chunk in _chunks(candidates):
            still.update(
                Sample.objects.filter(pk__in=chunk, verdict_release=at).values_list("id", flat=True)
            )
        still -= late
        changed: set[int] = set()
        for chunk in _chunks(gone):
            doomed = CurrentMatch.objects.filter(
                signature_id__in=chunk, sample__verdict_release=at, sample_id__lte=ceiling
            ).exclude(sample_id__in=late)
            changed.update(doomed.values_list("sample_id", flat=True))
            doomed.delete()
        rows = [_row(s, records[sid]) for s, sid, _ in hits if s in still]
        weights = {(r.id, r.revision): record_weight(r) for r in records.values()}
        rows += [
            _match_row(s, m, weights)
            for s, found in matched.items()
            if s in still
            for m in found
            if m.signature_id in records
        ]
        CurrentMatch.objects.bulk_create(rows, ignore_conflicts=True, batch_size=2000)
        changed.update(r.sample_id for r in rows)
        verdicts_recompute(changed)
        Sample.objects.filter(verdict_release=at, id__lte=ceiling).exclude(pk__in=late).update(
            verdict_release=to
        )
    return len(changed), len(matched)


def _recent_scans(began: Any) -> dict[int, int]:
    """{scan id: sample id} of the successful scans that finished lately (a few)."""
    return dict(
        ScanJob.objects.filter(
            status=ScanStatus.SUCCEEDED, finished_at__gte=began - LATE_SCAN_MARGIN
        ).values_list("id", "sample_id")
    )


def _pin_diff(at: int, to: int) -> PinDiff:
    from releases.public import pin_diff

    return pin_diff(release_pins(at) if at else [], release_pins(to) if to else [])


def verdicts_sync() -> SyncResult:
    """Bring every sample's verdict to the current release (see the module docstring)."""
    started = time.monotonic()
    to = current_release_number() or 0
    state, _ = VerdictSync.objects.get_or_create(pk=1)
    changed = matched = 0
    # the matching runs outside any transaction (it may read many stored apps); each
    # release's difference is then written in one short transaction (``_advance``)
    behind = sorted(
        {
            at
            for at in Sample.objects.exclude(verdict_release=to)
            .values_list("verdict_release", flat=True)
            .distinct()
            if at is not None
        }
    )
    if not behind and state.release == to:
        return SyncResult(to, 0, 0, 0.0)
    for at in behind:
        c, m = _advance(at, to)
        changed += c
        matched += m
    VerdictSync.objects.filter(pk=1).update(
        release=to,
        finished_at=timezone.now(),
        seconds=round(time.monotonic() - started, 3),
        samples_changed=changed,
        samples_matched=matched,
    )
    if behind:
        log.info(
            "verdicts: %s release(s) brought to %s; %s sample(s) changed, %s matched again",
            len(behind),
            to,
            changed,
            matched,
        )
    return SyncResult(to, changed, matched, round(time.monotonic() - started, 3))


def verdicts_as_of() -> int | None:
    """The release the last pass brought verdicts to (None before the first)."""
    return VerdictSync.objects.filter(pk=1).values_list("release", flat=True).first()
