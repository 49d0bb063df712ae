"""How a hunt matches stored samples: from what is stored, reading as little as it can.

- ``sample_match``: one sample, from its stored summary (YARA rules that read no bytes), its
  unit pack (YARA), its stored features (other kinds), or analysed again when none is current
  (docs/retrohunts.md "What a chunk reads"). Current verdicts use it too.
- ``chunk_facts_matches``: a chunk's facts-only YARA rules over all its samples at once
  (``engine.facts_batch``), from the compact facts in each row (``Sample.facts``);
  ``keyed_matches``: keyed rules on the candidates' summaries.
"""

from __future__ import annotations

import gc
import logging
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db.models import Count, F
from django.utils import timezone

from engine import ENGINE_VERSION
from engine.analyze import analyze_with_content, read_content
from engine.facts_batch import FactsBatch
from engine.facts_segment import (
    SEGMENT_IDS,
    SEGMENT_VERSION,
    Segment,
    SegmentPlan,
    block_of,
    positions_mask,
    segment_encode,
    segment_match,
)
from engine.facts_summary import facts_current, stored_facts
from engine.features import AppContent, AppFeatures, Match
from engine.ruleset import FactsScanner, Ruleset, android_globals, compile_ruleset
from engine.ruleset import match as engine_match
from engine.ruleset import match_yara as engine_match_yara
from scans.featurekeys import summary_features
from scans.models import FactsSegment, Sample
from scans.storage import (
    ScanError,
    local_path,
    sample_features_load,
    sample_features_store,
    sample_units_load,
    sample_units_store,
)


def _features_for(sample: Sample, *, full: bool) -> AppFeatures | None:
    """Stored features of the current engine (the summary suffices without behaviour rules)."""
    if sample.features_engine_version != ENGINE_VERSION or not sample.features_file:
        return None
    if full:
        return sample_features_load(sample)
    return AppFeatures.from_dict(sample.features) if sample.features else None


log = logging.getLogger(__name__)

# one yara-x scanner per facts-only ruleset in this process (derived from the ruleset: never
# stale; a hunt's rulesets are cached per process the same way, see hunt_plan)
_facts_scanners: OrderedDict[int, tuple[Ruleset, FactsScanner]] = OrderedDict()


def _facts_scanner(ruleset: Ruleset) -> FactsScanner:
    found = _facts_scanners.get(id(ruleset))
    if found is not None and found[0] is ruleset:
        return found[1]
    scanner = FactsScanner(ruleset)
    _facts_scanners[id(ruleset)] = (ruleset, scanner)
    while len(_facts_scanners) > 8:
        _facts_scanners.popitem(last=False)
    return scanner


# Koodous facts rules answered for a whole chunk at once (engine.facts_batch, over segments:
# engine.facts_segment), per ruleset as above; the records it cannot answer keep FactsScanner,
# compiled apart as ``rest``
_facts_batches: OrderedDict[int, tuple[Ruleset, SegmentPlan, Ruleset | None]] = OrderedDict()


def _facts_batch(ruleset: Ruleset) -> tuple[SegmentPlan, Ruleset | None]:
    found = _facts_batches.get(id(ruleset))
    if found is not None and found[0] is ruleset:
        return found[1], found[2]
    batch = FactsBatch(ruleset.records, ruleset.yara_namespaces.values())
    rest = compile_ruleset([ruleset.records[i] for i in batch.rest]) if batch.rest else None
    plan = SegmentPlan(batch)
    _facts_batches[id(ruleset)] = (ruleset, plan, rest)
    while len(_facts_batches) > 8:
        _facts_batches.popitem(last=False)
    return plan, rest


def facts_batch_enabled() -> bool:
    """False only to measure the sample-by-sample path (bench/bench_koodous_facts.py)."""
    return bool(getattr(settings, "RETROHUNT_FACTS_BATCH", True))


def chunk_facts_matches(id_range: tuple[int, int], ruleset: Ruleset) -> dict[int, list[Match]]:
    """``sample_match`` of a facts-only ruleset for the samples with ids in ``id_range`` (a
    chunk's, inclusive) that have current stored features, all at once: per block of ids from
    its facts segment (``FactsSegment``, ``engine.facts_segment``: an inverted index of the
    block's facts, so that no row is read per sample but its id), built from the compact
    facts in the rows (``Sample.facts``) when the block has none or one that lacks too many of
    its samples; samples stored since the segment was built are answered from their rows. A
    sample stored before that column (or by another engine) gets its facts computed from its
    summary and kept. The others are left out: ``sample_match`` takes them one by one,
    analysing them again if need be. Same matches, same evidence."""
    if not ruleset.yara_facts_only or not facts_batch_enabled():
        return {}
    plan, rest = _facts_batch(ruleset)
    with _gc_paused():
        return _chunk_facts_matches(id_range, plan, rest)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Python's cycle collector off while a chunk decodes and batches its facts: thousands of
    small acyclic dicts and lists (freed by reference counting) would otherwise trigger
    collections that walk the worker's whole heap, the compiled rules and the batch's
    remembered answers included; measured, 40 % of a 5,000-sample chunk. Cycles made
    meanwhile are collected once it is back on."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _chunk_facts_matches(
    id_range: tuple[int, int], plan: SegmentPlan, rest: Ruleset | None
) -> dict[int, list[Match]]:
    first, last = id_range
    batch = plan.batch
    current = (
        Sample.objects.filter(id__gte=first, id__lte=last, features_engine_version=ENGINE_VERSION)
        .exclude(features_file="")
        .order_by("id")
    )
    out: dict[int, list[Match]] = {}
    by_block: dict[int, list[int]] = {}
    for pk in current.values_list("id", flat=True):
        by_block.setdefault(block_of(pk), []).append(pk)
    stored = {
        row.block: row
        for row in FactsSegment.objects.filter(block__in=list(by_block), version=SEGMENT_VERSION)
    }
    for block, ids in by_block.items():
        segment = _segment_read(stored.get(block))
        held = set(segment.ids()) if segment is not None else set()
        uncovered = [pk for pk in ids if pk not in held]
        if segment is None or len(set(uncovered) - set(segment.skipped)) > _SEGMENT_SLACK:
            # no segment, or one that lacks too many samples: built (again) from the rows
            segment = _segment_build(block)
            held = set(segment.ids())
            uncovered = [pk for pk in ids if pk not in held]
        base = segment.base
        everyone = positions_mask([pk - base for pk in ids if pk in held])
        found_here = segment_match(plan, segment, everyone) if batch.rules else {}
        for pk in ids:
            if pk in held:
                out[pk] = found_here.get(pk - base, [])
        if uncovered:
            out.update(_rows_facts_matches(uncovered, batch))
    if rest is None:
        return out
    ids = sorted(out)
    return _rest_matches(ids, [out[pk] for pk in ids], rest)


def _segment_read(row: FactsSegment | None) -> Segment | None:
    """The stored segment, or None when there is none or it cannot be read (built again)."""
    if row is None:
        return None
    try:
        return Segment.decode(bytes(row.data))
    except ValueError:
        log.warning("facts segment of block %s damaged: built again", row.block)
        return None


# a block's segment is built again when more of its current samples than this are not in it
# (stored since it was built); fewer are answered from their rows
_SEGMENT_SLACK = 64


def _rows_facts(ids: list[int]) -> tuple[list[int], list[dict[str, Any]]]:
    """The compact facts of samples ``ids`` (ascending, current features), from their rows; a
    row without a current form gets it computed and kept (``_facts_keep``). A sample whose
    facts cannot be read is left out: ``sample_match`` takes it."""
    found: dict[int, dict[str, Any]] = {}
    missing: list[int] = []
    for start in range(0, len(ids), 2000):
        rows = Sample.objects.filter(pk__in=ids[start : start + 2000])
        for pk, stored in rows.values_list("id", "facts"):
            if facts_current(stored):
                found[pk] = stored
            else:
                missing.append(pk)
    if missing:
        found.update(_facts_keep(missing))
    kept = sorted(found)
    return kept, [found[pk] for pk in kept]


def _rows_facts_matches(ids: list[int], batch: FactsBatch) -> dict[int, list[Match]]:
    kept, facts = _rows_facts(ids)
    found = batch.match(facts) if batch.rules else [[] for _ in kept]
    return dict(zip(kept, found, strict=True))


def _segment_build(block: int) -> Segment:
    """The segment of every sample of ``block`` with current features (not only a chunk's:
    the next hunt's chunks may be cut elsewhere), from their rows, kept for the next hunts.
    Another machine's hunt may build the same block at once: the last one written stays,
    and both are right, a sample's facts being the same for one engine."""
    first = block * SEGMENT_IDS
    current = Sample.objects.filter(
        id__gte=first, id__lt=first + SEGMENT_IDS, features_engine_version=ENGINE_VERSION
    ).exclude(features_file="")
    ids = list(current.order_by("id").values_list("id", flat=True))
    kept, facts = _rows_facts(ids)
    data = segment_encode(block, kept, facts, sorted(set(ids) - set(kept)))
    FactsSegment.objects.bulk_create(
        [
            FactsSegment(
                block=block,
                version=SEGMENT_VERSION,
                apps=len(kept),
                covered=len(ids),
                data=data,
                built_at=timezone.now(),
            )
        ],
        update_conflicts=True,
        unique_fields=["block"],
        update_fields=["version", "apps", "covered", "data", "built_at"],
    )
    return Segment.decode(data)


def facts_segments_build(*, limit: int = 25) -> list[int]:
    """Build the facts segments of up to ``limit`` blocks that have none of this version, or
    that more samples were stored in since (beat, every few minutes): so that a hunt reads
    segments rather than builds them. What it counts is only a hint; a hunt checks its
    block's ids itself. Returns the blocks built."""
    current = (
        Sample.objects.filter(features_engine_version=ENGINE_VERSION)
        .exclude(features_file="")
        .annotate(block=F("id") / SEGMENT_IDS)
        .values("block")
        .annotate(samples=Count("id"))
        .order_by("block")
    )
    covered = dict(
        FactsSegment.objects.filter(version=SEGMENT_VERSION).values_list("block", "covered")
    )
    wanted = [
        row["block"]
        for row in current
        if row["block"] not in covered or row["samples"] > covered[row["block"]] + _SEGMENT_SLACK
    ]
    for block in wanted[:limit]:
        with _gc_paused():
            _segment_build(block)
    return wanted[:limit]


def _facts_keep(ids: list[int]) -> dict[int, dict[str, Any]]:
    """The compact facts of samples whose row lacks them (stored before ``Sample.facts``, or
    by another engine), from their stored summaries; kept in their rows for the next hunt.
    Each form carries the engine version it was made by (``facts_current``), so a form this
    writes over a newer one is only computed again, never believed."""
    out: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        rows = Sample.objects.filter(pk__in=ids[start : start + 500]).values_list("id", "features")
        for pk, summary in rows:
            if not summary:
                continue  # sample_match decides
            try:
                out[pk] = stored_facts(summary)
            except (KeyError, TypeError, ValueError, AttributeError):
                continue  # a summary this engine cannot read: sample_match decides
    Sample.objects.bulk_update(
        [Sample(pk=pk, facts=value) for pk, value in out.items()], ["facts"], batch_size=500
    )
    return dict(sorted(out.items()))


def _rest_matches(
    ids: list[int], found: list[list[Match]], rest: Ruleset
) -> dict[int, list[Match]]:
    """The batch's matches plus those of the records it left to yara-x (``rest``), which read
    the facts yara-x sees from the summary; a sample whose scan timed out is left out."""
    out: dict[int, list[Match]] = {}
    summaries: dict[int, Any] = {}
    for start in range(0, len(ids), 500):
        rows = Sample.objects.filter(pk__in=ids[start : start + 500])
        summaries.update(rows.values_list("id", "features"))
    for pk, matches in zip(ids, found, strict=True):
        try:
            summary = AppFeatures.from_dict(summaries.get(pk) or {})
            out[pk] = matches + _facts_scanner(rest).match(android_globals(summary))
        except Exception as exc:
            if type(exc).__name__ != "TimeoutError":  # yara_x.TimeoutError
                raise
            continue  # sample_match reports it as this sample's error
    return out


def sample_match(sample: Sample, ruleset: Ruleset) -> list[Match]:
    """The matches of ``ruleset`` on one stored sample, from its stored facts, unit pack or
    features (analysed again only when none is current): what a hunt chunk runs per sample,
    and what current verdicts use for samples no gate hunt covered. AnalysisError/ScanError
    when it cannot be analysed."""
    if ruleset.yara_facts_only:
        # YARA rules that read no bytes (most rewritten Koodous rules, android.* conditions)
        # are answered from the stored summary in the sample's row: no file, no unit pack
        summary = _features_for(sample, full=False)
        if summary is not None:
            try:
                return _facts_scanner(ruleset).match(android_globals(summary))
            except Exception as exc:
                if type(exc).__name__ == "TimeoutError":  # yara_x.TimeoutError
                    raise ScanError("YARA matching timed out on this app's facts") from exc
                raise
    needs_bytes = ruleset.yara_rules is not None and bool(ruleset.yara_namespaces)
    full = bool(ruleset.behavior_index)
    current = sample.features_engine_version == ENGINE_VERSION and bool(sample.features_file)
    if current and needs_bytes:
        # the unit pack holds what a yara rule sees but the raw file: the ``android`` facts,
        # the manifest and the DEX, inflated (docs/retrohunts.md, "What a chunk reads"); the
        # stored features are read only when other kinds need them or the pack lacks facts
        with local_path(sample.file.name) as path:
            content = sample_units_load(sample, path)
            features = None
            if content is None or content.facts is None or not ruleset.yara_only:
                features = _features_for(sample, full=full)
            if features is not None:
                if content is None:
                    content = read_content(path)
                    sample_units_store(sample, content, features)
                return _yara_match(features, ruleset, content)
            if content is not None and content.facts is not None:
                return _yara_match(None, ruleset, content)
        # no usable stored features after all: analysed again below
    features = _features_for(sample, full=full) if current and not needs_bytes else None
    if features is not None:
        return engine_match(features, ruleset)
    with local_path(sample.file.name) as path:
        features, content = analyze_with_content(path)
        if features.sha256 != sample.sha256:
            raise ScanError("the stored file does not match the sample's SHA-256")
        matches = _yara_match(features, ruleset, content if needs_bytes else None)
        # analysed again (never before, an older engine, or for YARA): keep what it found
        sample_features_store(sample, features)
        sample_units_store(sample, content, features)
    return matches


def _yara_match(
    features: AppFeatures | None, ruleset: Ruleset, content: AppContent | None
) -> list[Match]:
    """Matches with yara timeouts as ScanError; without features, ``content.facts`` serve."""
    try:
        # which samples each rule hits, not every place: see engine.ruleset.match
        if features is None:
            assert content is not None
            return engine_match_yara(content, ruleset, first_hit=True)
        return engine_match(features, ruleset, content, first_hit=True)
    except Exception as exc:
        if type(exc).__name__ == "TimeoutError":  # yara_x.TimeoutError
            raise ScanError("YARA matching timed out on this file") from exc
        raise


def has_current_features(sample: Sample) -> bool:
    return sample.features_engine_version == ENGINE_VERSION and bool(sample.features_file)


def keyed_matches(sample_ids: list[int], ruleset: Ruleset) -> dict[int, list[Match]]:
    """The keyed rules' matches on candidate samples, from their stored summaries."""
    out: dict[int, list[Match]] = {}
    rows = Sample.objects.filter(pk__in=sample_ids).only(
        "id", "features", "features_engine_version"
    )
    for sample in rows:
        features = summary_features(sample)
        if features is not None:
            out[sample.pk] = engine_match(features, ruleset)
    return out
