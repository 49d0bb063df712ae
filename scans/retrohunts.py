"""Write paths of retro-hunts: run signature revisions (or an unsaved rule) over every sample.

- ``retrohunt_create``: snapshot the rules, fix the samples covered (``id <= max_sample_id``),
  split them into chunks of RETROHUNT_CHUNK_SIZE and send each chunk to queue ``hunts`` after
  the transaction commits, so several workers share one hunt.
- ``retrohunt_chunk_run``: the body of the chunk task. Idempotent: a chunk is claimed with a
  compare-and-swap; a finished chunk is left alone; a chunk whose worker died is taken over
  (``scans.leases``, the scans' rules: ``CHUNK_LEASE``); the chunk's matches are replaced,
  never added twice, and the hunt's counters move with ``F()`` in the same transaction as the
  chunk's ``done`` mark. A cancelled hunt's remaining chunks do nothing.
- ``retrohunt_cancel``; ``retrohunt_run_sync`` (the demo and tests: every chunk in this
  process); ``hunts_recover`` (chunks whose worker died, or that never reached the broker).
- When the last chunk is done the hunt is ``finished``: the gate is recorded on each hunted
  revision through ``threats.services.revisions_record_gate`` and the signatures' hit
  statistics are refreshed.

Kinds that need no bytes (hash, package_cert, behavior, indicator) run on stored features:
the summary in ``Sample.features`` when the hunt has no behaviour rule, else the full features
from storage (loaded once per sample). A sample never analysed, or analysed by an older
ENGINE_VERSION, is analysed again first and its stored features refreshed. YARA rules read
the stored file (downloaded to a temp file when storage is not local): with current stored
features only its manifest and DEX bytes (``engine.analyze.read_content``, several times
cheaper than analysis), else it is analysed in full and its features stored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Count, F, QuerySet
from django.utils import timezone

from engine import ENGINE_VERSION
from engine.analyze import analyze_with_content, read_content
from engine.errors import AnalysisError
from engine.facts_batch import FactsBatch, summary_facts
from engine.features import AppContent, AppFeatures, Match, RuleRecord
from engine.kinds import REGISTRY, UnknownKind, get_kind
from engine.ruleset import FactsScanner, Ruleset, android_globals, compile_ruleset
from engine.ruleset import match as engine_match
from engine.ruleset import match_yara as engine_match_yara
from portal.audit import audit_log
from portal.exceptions import ApplicationError, ConflictError, ForbiddenError
from portal.models import User
from scans.featurekeys import key_of, rule_key, sample_keys, summary_features
from scans.leases import LeaseSpec, claim, recover
from scans.models import (
    ChunkStatus,
    HuntChunk,
    HuntMatch,
    HuntStatus,
    Label,
    RetroHunt,
    Sample,
)
from scans.services import hits_record, signature_stats_refresh
from scans.storage import (
    ScanError,
    local_path,
    sample_features_load,
    sample_features_store,
    sample_units_load,
    sample_units_store,
)

log = logging.getLogger(__name__)

MAX_HUNT_SIGNATURES = 10_000
UNSAVED_NAME = "unsaved {kind} rule"
# how often (in samples) a running chunk checks whether its hunt was cancelled
_CANCEL_CHECK_EVERY = 10


def chunk_size() -> int:
    return max(1, int(settings.RETROHUNT_CHUNK_SIZE))


def recover_every_seconds() -> float:
    return max(1.0, float(settings.RETROHUNT_RECOVER_EVERY_SECONDS))


def _test_delay_seconds() -> float:
    """Test-only: sleep per sample so a test can watch progress move (0 in production)."""
    return max(0.0, float(settings.RETROHUNT_TEST_DELAY_SECONDS))


# --- creating ------------------------------------------------------------------------------------
def _record_dict(record: RuleRecord, revision_id: int | None) -> dict[str, Any]:
    return {
        "revision_id": revision_id,
        "id": record.id,
        "revision": record.revision,
        "name": record.name,
        "kind": record.kind,
        "body": record.body,
        "severity": record.severity,
        "noisy": record.noisy,
        "min_engine": record.min_engine,
    }


def hunt_records(hunt: RetroHunt) -> list[RuleRecord]:
    return [RuleRecord(**{k: v for k, v in r.items() if k != "revision_id"}) for r in hunt.records]


def _unsaved_record(rule: dict[str, Any]) -> RuleRecord:
    kind = str(rule.get("kind") or "")
    if "body" not in rule:
        raise ApplicationError("An unsaved rule needs a body.", {"fields": {"rule": ["body"]}})
    try:
        kind_obj = get_kind(kind)
    except UnknownKind:
        raise ApplicationError(
            f"Unknown signature kind {kind!r}.", {"kinds": list(REGISTRY)}
        ) from None
    result = kind_obj.validate(rule["body"])
    if result.errors:
        raise ApplicationError(
            f"The {kind} rule is not valid: {result.errors[0]}",
            {
                "errors": [
                    {"message": i.message, "line": i.line, "column": i.column}
                    for i in result.errors
                ]
            },
        )
    return RuleRecord(
        id=0,
        revision=0,
        name=UNSAVED_NAME.format(kind=kind),
        kind=kind,
        body=result.body,
        severity="malicious",
        min_engine=kind_obj.min_engine,
    )


def _revision_records(
    *,
    signature_ids: Sequence[int] | None,
    revision_ids: Sequence[int] | None,
    limit: int | None = MAX_HUNT_SIGNATURES,
) -> list[tuple[RuleRecord, int]]:
    from threats.api import current_revision_ids, invalid_signature_ids, records_by_revision

    rev_ids: list[int] = [int(i) for i in revision_ids or ()]
    if signature_ids:
        wanted = list(dict.fromkeys(int(i) for i in signature_ids))
        bad = invalid_signature_ids(wanted)
        if bad:
            raise ApplicationError(
                "Invalid signatures do not compile on this engine and cannot be hunted: "
                + ", ".join(f"#{i}" for i in bad),
                {"invalid": bad},
            )
        current = current_revision_ids(wanted)
        missing = [i for i in wanted if i not in current]
        if missing:
            raise ApplicationError(
                "No such signature: " + ", ".join(f"#{i}" for i in missing), {"missing": missing}
            )
        rev_ids += [current[i] for i in wanted]
    rev_ids = list(dict.fromkeys(rev_ids))
    if limit is not None and len(rev_ids) > limit:
        raise ApplicationError(f"At most {limit} signatures per retro-hunt.")
    records = records_by_revision(rev_ids)
    missing_revs = [i for i in rev_ids if i not in records]
    if missing_revs:
        raise ApplicationError(
            "No such signature revision: " + ", ".join(map(str, missing_revs)),
            {"missing_revisions": missing_revs},
        )
    return [(records[i], i) for i in rev_ids]


def retrohunt_create(
    *,
    user: User | None,
    signature_ids: Sequence[int] | None = None,
    revision_ids: Sequence[int] | None = None,
    rule: dict[str, Any] | None = None,
    enqueue: bool = True,
    limit: int | None = MAX_HUNT_SIGNATURES,
) -> RetroHunt:
    """A queued hunt of signatures' current revisions (or given revisions), or of one unsaved
    rule, over every sample stored now; its chunks go to queue ``hunts`` after commit.

    ``limit``: the most signatures one hunt takes (a person's hunt); the gate hunt of a
    submitted feed passes None (``gate_hunt_create``)."""
    if user is not None and not user.has_perm("scans.add_retrohunt"):
        raise ForbiddenError("Your role does not allow starting retro-hunts.")
    saved = bool(signature_ids) or bool(revision_ids)
    if saved == bool(rule):
        raise ApplicationError(
            'Give either "signatures" (a list of signature ids) or "rule" ({"kind", "body"}).',
            {"fields": {"signatures": ["one of signatures or rule"]}},
        )
    if rule:
        pairs: list[tuple[RuleRecord, int | None]] = [(_unsaved_record(rule), None)]
    else:
        pairs = list(
            _revision_records(signature_ids=signature_ids, revision_ids=revision_ids, limit=limit)
        )
    ruleset = compile_ruleset(r for r, _ in pairs)
    if ruleset.errors and len(ruleset.errors) == len(pairs):
        raise ApplicationError(
            f"Nothing to hunt: {ruleset.errors[0].message}",
            {"errors": [{"name": e.name, "message": e.message} for e in ruleset.errors]},
        )
    hunt = _hunt_save(user=user, pairs=pairs, rule=rule, enqueue=enqueue)
    if ruleset.errors:
        RetroHunt.objects.filter(pk=hunt.pk).update(
            error="; ".join(f"{e.name}: {e.message}" for e in ruleset.errors)[:2000]
        )
        hunt.refresh_from_db()
    return hunt


@transaction.atomic
def _hunt_save(
    *,
    user: User | None,
    pairs: list[tuple[RuleRecord, int | None]],
    rule: dict[str, Any] | None,
    enqueue: bool,
) -> RetroHunt:
    ids = list(Sample.objects.order_by("id").values_list("id", flat=True))
    max_id = ids[-1] if ids else 0
    hunt = RetroHunt(
        created_by=user,
        revision_ids=[rid for _, rid in pairs if rid is not None],
        rule_kind=str(rule["kind"]) if rule else "",
        rule_body=pairs[0][0].body if rule else None,
        records=[_record_dict(r, rid) for r, rid in pairs],
        max_sample_id=max_id,
        clean_count=Sample.objects.filter(id__lte=max_id, label=Label.CLEAN).count(),
        total=len(ids),
    )
    size = chunk_size()
    groups = [ids[i : i + size] for i in range(0, len(ids), size)]
    hunt.chunks_total = len(groups)
    hunt.full_clean()
    hunt.save()
    HuntChunk.objects.bulk_create(
        HuntChunk(hunt=hunt, index=n, first_id=group[0], last_id=group[-1], sample_count=len(group))
        for n, group in enumerate(groups)
    )
    audit_log(
        actor=user,
        action="retrohunt.create",
        obj=hunt,
        after={
            "rules": [r.name for r, _ in pairs][:50],
            "samples": len(ids),
            "chunks": len(groups),
        },
    )
    if not groups:  # nothing stored yet: the hunt is trivially complete
        hunt.status = HuntStatus.FINISHED
        hunt.started_at = hunt.finished_at = timezone.now()
        hunt.save(update_fields=["status", "started_at", "finished_at"])
        _hunt_finished(hunt)
    elif enqueue:
        chunk_ids = list(hunt.chunks.values_list("id", flat=True))
        transaction.on_commit(lambda: chunks_enqueue(chunk_ids=chunk_ids))
    return hunt


def gate_hunt_create(*, user: User | None, revision_ids: Sequence[int]) -> RetroHunt:
    """The gate hunt of revisions submitted together: ONE hunt over all of them, however many
    (threats' submit hook; each revision's result is recorded when it finishes)."""
    return retrohunt_create(user=user, revision_ids=revision_ids, limit=None)


def chunks_enqueue(*, chunk_ids: Iterable[int]) -> None:
    """Send chunk tasks to queue ``hunts``; a broker outage leaves them queued for recovery."""
    from scans.tasks import hunt_chunk

    sent: list[int] = []
    for chunk_id in chunk_ids:
        try:
            hunt_chunk.apply_async((chunk_id,), queue="hunts")
        except Exception:
            log.exception("could not send hunt chunk %s to the broker", chunk_id)
            break  # the broker is down: the recovery pass sends the rest later
        sent.append(chunk_id)
    if sent:
        HuntChunk.objects.filter(pk__in=sent).update(sent_at=timezone.now())


# --- cancelling ----------------------------------------------------------------------------------
@transaction.atomic
def retrohunt_cancel(*, hunt: RetroHunt, user: User) -> RetroHunt:
    """Stop a queued or running hunt; chunks not yet started will do nothing."""
    if not user.has_perm("scans.change_retrohunt"):
        raise ForbiddenError("Your role does not allow cancelling retro-hunts.")
    if user.pk != hunt.created_by_id and not user.has_perm("threats.review_signature"):
        raise ForbiddenError("Only whoever started a retro-hunt (or a reviewer) cancels it.")
    moved = RetroHunt.objects.filter(
        pk=hunt.pk, status__in=(HuntStatus.QUEUED, HuntStatus.RUNNING)
    ).update(status=HuntStatus.CANCELLED, finished_at=timezone.now())
    hunt.refresh_from_db()
    if not moved:
        raise ConflictError(f"This retro-hunt is already {hunt.get_status_display().lower()}.")
    HuntChunk.objects.filter(hunt=hunt, status=ChunkStatus.QUEUED).update(
        status=ChunkStatus.CANCELLED
    )
    audit_log(actor=user, action="retrohunt.cancel", obj=hunt)
    return hunt


# --- running a chunk -----------------------------------------------------------------------------
_cache_lock = threading.Lock()
# keyed by (id, created_at): ids alone can repeat after a rolled-back transaction (tests)
_ruleset_cache: OrderedDict[tuple[int, str], HuntPlan] = OrderedDict()
_RULESET_CACHE_SIZE = 2


@dataclass
class HuntPlan:
    """How a hunt's rules run: ``keyed`` (hash, indicator, package_cert) through the stored
    feature keys (``scans.featurekeys``) on candidate samples only; ``scanned`` (YARA,
    behaviour, CIDR) sample by sample as before; every rule on a sample that must be
    analysed again (``full``)."""

    records: list[RuleRecord]
    keyed: Ruleset | None
    keys: frozenset[int]
    scanned: Ruleset | None
    # (signature id, revision number) -> revision id, for the hunt's matches
    revision_ids: dict[tuple[int, int], int | None]
    _full: Ruleset | None = None

    def full(self) -> Ruleset:
        if self._full is None:
            self._full = compile_ruleset(self.records)
        return self._full


def hunt_plan_of(
    records: list[RuleRecord], revision_ids: dict[tuple[int, int], int | None] | None = None
) -> HuntPlan:
    keyed: list[RuleRecord] = []
    keys: set[int] = set()
    scanned: list[RuleRecord] = []
    for record in records:
        fact = rule_key(record)
        if fact is None:
            scanned.append(record)
        else:
            keyed.append(record)
            keys.add(key_of(fact))
    return HuntPlan(
        records=records,
        keyed=compile_ruleset(keyed) if keyed else None,
        keys=frozenset(keys),
        scanned=compile_ruleset(scanned) if scanned else None,
        revision_ids=revision_ids or {},
    )


def hunt_plan(hunt: RetroHunt) -> HuntPlan:
    """The hunt's compiled rules, compiled once per worker process (by hunt id)."""
    key = (hunt.pk, hunt.created_at.isoformat())
    with _cache_lock:
        plan = _ruleset_cache.get(key)
        if plan is not None:
            _ruleset_cache.move_to_end(key)
            return plan
    plan = hunt_plan_of(hunt_records(hunt), _revision_ids(hunt))
    with _cache_lock:
        _ruleset_cache[key] = plan
        while len(_ruleset_cache) > _RULESET_CACHE_SIZE:
            _ruleset_cache.popitem(last=False)
    return plan


def ruleset_cache_clear() -> None:
    with _cache_lock:
        _ruleset_cache.clear()


def _chunk_rows() -> QuerySet[HuntChunk]:
    # the hunt's records (megabytes for a feed's gate) are read only when this process has
    # not compiled them yet (``hunt_plan``)
    return HuntChunk.objects.select_related("hunt").defer("hunt__records")


def _chunk_moot(chunk: HuntChunk) -> bool:
    """A chunk of a hunt that is over does nothing, and says so."""
    if not chunk.hunt.is_done:
        return False
    HuntChunk.objects.filter(pk=chunk.pk, status=chunk.status).update(status=ChunkStatus.CANCELLED)
    return True


def _chunk_give_up(chunk: HuntChunk, now: datetime) -> None:
    reason = (
        f"chunk {chunk.index} was interrupted {chunk.attempts} times (its worker was "
        "lost or timed out each time)"
    )
    HuntChunk.objects.filter(pk=chunk.pk).update(status=ChunkStatus.FAILED, error=reason)
    RetroHunt.objects.filter(
        pk=chunk.hunt_id, status__in=(HuntStatus.QUEUED, HuntStatus.RUNNING)
    ).update(status=HuntStatus.FAILED, error=reason, finished_at=now)


def _chunk_claimed(chunk: HuntChunk, now: datetime) -> None:
    RetroHunt.objects.filter(pk=chunk.hunt_id, status=HuntStatus.QUEUED).update(
        status=HuntStatus.RUNNING, started_at=now
    )


def _chunks_of_done_hunts_cancel() -> None:
    HuntChunk.objects.filter(
        status=ChunkStatus.QUEUED,
        hunt__status__in=(HuntStatus.CANCELLED, HuntStatus.FAILED, HuntStatus.FINISHED),
    ).update(status=ChunkStatus.CANCELLED)


# A hunt chunk as a leased job (scans.leases): claimed by retrohunt_chunk_run, recovered by
# hunts_recover, with the scans' rules for a lost worker.
CHUNK_LEASE = LeaseSpec(
    name="hunt chunk",
    model=HuntChunk,
    running=ChunkStatus.RUNNING,
    queued=ChunkStatus.QUEUED,
    done=frozenset((ChunkStatus.DONE, ChunkStatus.CANCELLED, ChunkStatus.FAILED)),
    # looked up when called: tests and benchmarks replace chunks_enqueue
    send=lambda ids: chunks_enqueue(chunk_ids=ids),
    give_up=_chunk_give_up,
    log=log,
    rows=_chunk_rows,
    moot=_chunk_moot,
    claimed=_chunk_claimed,
    tidy=_chunks_of_done_hunts_cancel,
)


def _hunt_status(hunt_id: int) -> str:
    return RetroHunt.objects.filter(pk=hunt_id).values_list("status", flat=True).first() or ""


def _features_for(sample: Sample, *, full: bool) -> AppFeatures | None:
    """Stored features of the current engine (the summary suffices without behaviour rules)."""
    if sample.features_engine_version != ENGINE_VERSION or not sample.features_file:
        return None
    if full:
        return sample_features_load(sample)
    return AppFeatures.from_dict(sample.features) if sample.features else None


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


# Koodous facts rules answered for a whole chunk at once (engine.facts_batch), per ruleset as
# above; the records it cannot answer keep FactsScanner, compiled apart as ``rest``
_facts_batches: OrderedDict[int, tuple[Ruleset, FactsBatch, Ruleset | None]] = OrderedDict()


def _facts_batch(ruleset: Ruleset) -> tuple[FactsBatch, Ruleset | None]:
    found = _facts_batches.get(id(ruleset))
    if found is not None and found[0] is ruleset:
        return found[1], found[2]
    batch = FactsBatch(ruleset.records, ruleset.yara_namespaces.values())
    rest = compile_ruleset([ruleset.records[i] for i in batch.rest]) if batch.rest else None
    _facts_batches[id(ruleset)] = (ruleset, batch, rest)
    while len(_facts_batches) > 8:
        _facts_batches.popitem(last=False)
    return batch, rest


def facts_batch_enabled() -> bool:
    """False only to measure the sample-by-sample path (bench/bench_koodous_facts.py)."""
    return bool(getattr(settings, "RETROHUNT_FACTS_BATCH", True))


def _chunk_facts_matches(samples: list[Sample], ruleset: Ruleset) -> dict[int, list[Match]]:
    """``sample_match`` of a facts-only ruleset for the chunk's samples that have a current
    stored summary, all in one batch (the others are left out: ``sample_match`` takes them
    one by one, analysing them again if need be). Same matches, same evidence."""
    if not ruleset.yara_facts_only or not facts_batch_enabled():
        return {}
    batch, rest = _facts_batch(ruleset)
    current: list[Sample] = []
    facts: list[dict[str, Any]] = []
    for sample in samples:
        if not _has_current_features(sample) or not sample.features:
            continue
        try:
            facts.append(summary_facts(sample.features))
        except (KeyError, TypeError, ValueError):
            continue  # a summary this engine cannot read: sample_match decides
        current.append(sample)
    found = batch.match(facts) if batch.rules else [[] for _ in current]
    out: dict[int, list[Match]] = {}
    for sample, matches in zip(current, found, strict=True):
        if rest is not None:
            try:
                summary = AppFeatures.from_dict(sample.features or {})
                matches = matches + _facts_scanner(rest).match(android_globals(summary))
            except Exception as exc:
                if type(exc).__name__ != "TimeoutError":  # yara_x.TimeoutError
                    raise
                continue  # sample_match reports it as this sample's error
        out[sample.pk] = matches
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


def retrohunt_chunk_run(*, chunk_id: int, worker_name: str = "") -> HuntChunk | None:
    """Run one chunk to the end (see the module docstring); None if there was nothing to do."""
    chunk = claim(CHUNK_LEASE, chunk_id, worker_name=worker_name[:255])
    if chunk is None:
        return None
    hunt = chunk.hunt
    me = chunk.worker
    try:
        plan = hunt_plan(hunt)
        by_key = plan.revision_ids
        delay = _test_delay_seconds()
        fields = ["id", "sha256", "file", "size", "label", "features_file"]
        fields += ["features_engine_version", "keys_engine_version", "package", "app_label"]
        if plan.scanned is not None and (
            not plan.scanned.yara_only or plan.scanned.yara_facts_only
        ):
            # yara alone reads the facts from the unit pack, unless no rule reads bytes: then
            # the summary is all it reads
            fields.append("features")
        samples = list(
            Sample.objects.filter(id__gte=chunk.first_id, id__lte=chunk.last_id)
            .only(*fields)
            .order_by("id")
        )
        found: list[HuntMatch] = []
        errors = 0
        size = 0
        # keyed rules: matched on the samples that hold one of the hunt's keys, from their
        # stored summaries; no app is read (scans.featurekeys)
        keyed: dict[int, list[Match]] = {}
        keyed_ok: set[int] = set()
        if plan.keyed is not None:
            current = [s for s in samples if _has_current_features(s)]
            keys = sample_keys(first_id=chunk.first_id, last_id=chunk.last_id, samples=current)
            keyed_ok = set(keys)
            candidates = [sid for sid, ks in keys.items() if not plan.keys.isdisjoint(ks)]
            keyed = _keyed_matches(candidates, plan.keyed)
        # rules on facts alone (Koodous): the whole chunk in one batch, before the loop
        batched = _chunk_facts_matches(samples, plan.scanned) if plan.scanned is not None else {}
        worked = 0  # samples matched one by one (keyed-only samples cost next to nothing)
        for sample in samples:
            if plan.keyed is not None and sample.pk not in keyed_ok:
                ruleset: Ruleset | None = plan.full()  # no current features: analysed again
            else:
                ruleset = plan.scanned
            if ruleset is plan.scanned and sample.pk in batched:
                ruleset, matches = None, keyed.get(sample.pk, []) + batched[sample.pk]
            else:
                matches = keyed.get(sample.pk, [])
            if ruleset is not None or delay:
                worked += 1
            if (
                (ruleset is not None or delay)
                and worked > 1
                and worked % _CANCEL_CHECK_EVERY == 1
                and _hunt_status(hunt.pk)
                in (
                    HuntStatus.CANCELLED,
                    HuntStatus.FAILED,
                )
            ):
                HuntChunk.objects.filter(pk=chunk.pk, worker=me).update(
                    status=ChunkStatus.CANCELLED, finished_at=timezone.now()
                )
                return chunk
            if delay:
                time.sleep(delay)
            size += sample.size
            if ruleset is not None:
                try:
                    matches = matches + sample_match(sample, ruleset)
                except (AnalysisError, ScanError) as exc:
                    errors += 1
                    log.info("hunt %s: sample %s skipped: %s", hunt.pk, sample.pk, exc)
                    continue
            found += _hunt_matches(hunt, sample, matches, by_key)
    except SoftTimeLimitExceeded:
        _chunk_fail(chunk, f"chunk {chunk.index} took longer than the time limit")
        return chunk
    except (OperationalError, InterfaceError):
        raise  # transient: the task retries and takes the chunk over (same worker id)
    except Exception as exc:
        log.exception("hunt %s chunk %s: unexpected error", hunt.pk, chunk.index)
        _chunk_fail(chunk, f"internal error in chunk {chunk.index}: {type(exc).__name__}")
        return chunk
    _chunk_commit(chunk, found, errors=errors, size=size)
    return chunk


def _has_current_features(sample: Sample) -> bool:
    return sample.features_engine_version == ENGINE_VERSION and bool(sample.features_file)


def _keyed_matches(sample_ids: list[int], ruleset: Ruleset) -> dict[int, list[Match]]:
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


def _revision_ids(hunt: RetroHunt) -> dict[tuple[int, int], int | None]:
    """(signature id, revision number) → revision id, for the hunt's records."""
    return {(r["id"], r["revision"]): r.get("revision_id") for r in hunt.records}


def _hunt_matches(
    hunt: RetroHunt,
    sample: Sample,
    matches: list[Match],
    by_key: dict[tuple[int, int], int | None],
) -> list[HuntMatch]:
    if not matches:
        return []
    return [
        HuntMatch(
            hunt=hunt,
            sample=sample,
            signature_id=m.signature_id,
            revision_id=by_key.get((m.signature_id, m.revision)),
            revision_number=m.revision,
            name=m.name[:255],
            kind=m.kind,
            label=sample.label,
            evidence=list(m.evidence),
        )
        for m in matches
    ]


def _chunk_fail(chunk: HuntChunk, reason: str) -> None:
    now = timezone.now()
    with transaction.atomic():
        HuntChunk.objects.filter(pk=chunk.pk).update(
            status=ChunkStatus.FAILED, error=reason, finished_at=now
        )
        RetroHunt.objects.filter(
            pk=chunk.hunt_id, status__in=(HuntStatus.QUEUED, HuntStatus.RUNNING)
        ).update(status=HuntStatus.FAILED, error=reason, finished_at=now)


def _chunk_commit(chunk: HuntChunk, found: list[HuntMatch], *, errors: int, size: int) -> None:
    now = timezone.now()
    with transaction.atomic():
        done = HuntChunk.objects.filter(
            pk=chunk.pk, status=ChunkStatus.RUNNING, worker=chunk.worker, attempts=chunk.attempts
        ).update(status=ChunkStatus.DONE, finished_at=now, scanned=chunk.sample_count)
        if not done:
            return  # taken over meanwhile: the other run records its own results
        HuntMatch.objects.filter(
            hunt_id=chunk.hunt_id, sample_id__gte=chunk.first_id, sample_id__lte=chunk.last_id
        ).delete()
        HuntMatch.objects.bulk_create(found, batch_size=500)
        RetroHunt.objects.filter(pk=chunk.hunt_id).update(
            scanned=F("scanned") + chunk.sample_count,
            errors=F("errors") + errors,
            bytes_scanned=F("bytes_scanned") + size,
            match_count=F("match_count") + len(found),
            chunks_done=F("chunks_done") + 1,
        )
        hits_record((m.signature_id, m.sample_id) for m in found if m.signature_id)
        finished = RetroHunt.objects.filter(
            pk=chunk.hunt_id, status=HuntStatus.RUNNING, chunks_done__gte=F("chunks_total")
        ).update(status=HuntStatus.FINISHED, finished_at=now)
    if finished:
        _hunt_finished(RetroHunt.objects.get(pk=chunk.hunt_id))


def _hunt_finished(hunt: RetroHunt) -> None:
    """Record the gate on each hunted revision and refresh the hunted signatures' stats."""
    from threats.api import GateResult, revisions_record_gate

    rev_ids = [r["revision_id"] for r in hunt.records if r.get("revision_id")]
    if not rev_ids:
        return
    clean = dict(
        HuntMatch.objects.filter(hunt=hunt, revision_id__isnull=False, sample__label=Label.CLEAN)
        .values_list("revision_id")
        .annotate(n=Count("sample_id", distinct=True))
        .values_list("revision_id", "n")
    )
    results = [
        GateResult(
            revision_id=r["revision_id"], body=r["body"], clean_hits=clean.get(r["revision_id"], 0)
        )
        for r in hunt.records
        if r.get("revision_id")
    ]
    revisions_record_gate(hunt_id=hunt.pk, results=results)
    signature_stats_refresh(signature_ids={r["id"] for r in hunt.records if r["id"]})


# --- running a whole hunt here (demo, tests, gating feeds) --------------------------------------
def retrohunt_run_sync(
    *,
    user: User | None,
    signature_ids: Sequence[int] | None = None,
    revision_ids: Sequence[int] | None = None,
    rule: dict[str, Any] | None = None,
    limit: int | None = MAX_HUNT_SIGNATURES,
) -> RetroHunt:
    """Create a hunt and run every chunk in this process (no broker, no worker)."""
    hunt = retrohunt_create(
        user=user,
        signature_ids=signature_ids,
        revision_ids=revision_ids,
        rule=rule,
        enqueue=False,
        limit=limit,
    )
    for chunk_id in hunt.chunks.order_by("index").values_list("id", flat=True):
        retrohunt_chunk_run(chunk_id=chunk_id, worker_name="sync")
    hunt.refresh_from_db()
    return hunt


# --- recovery ------------------------------------------------------------------------------------
def hunts_recover() -> list[int]:
    """Re-send chunks whose worker is gone, and chunks queued long ago but never started
    (their first send may have failed); returns the chunk ids sent again
    (``scans.leases.recover``). Queued chunks of a hunt that is over are cancelled first."""
    return recover(CHUNK_LEASE)


def eta_seconds(hunt: RetroHunt, *, now: Any = None) -> int | None:
    """Seconds left at the rate so far; None before the first chunk is done or when done."""
    if hunt.is_done or not hunt.started_at or not hunt.scanned or hunt.total <= hunt.scanned:
        return 0 if hunt.status == HuntStatus.FINISHED else None
    elapsed = ((now or timezone.now()) - hunt.started_at) / timedelta(seconds=1)
    rate = hunt.scanned / max(elapsed, 1e-3)
    return round((hunt.total - hunt.scanned) / rate)
