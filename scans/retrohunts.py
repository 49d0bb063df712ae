"""Write paths of retro-hunts: run signature revisions (or an unsaved rule) over every sample.

- ``retrohunt_create``: snapshot the rules, fix the samples covered (``id <= max_sample_id``),
  split them into chunks of RETROHUNT_CHUNK_SIZE (up to FACTS_CHUNK_FACTOR times more for a
  hunt of facts-only rules over samples with current features) and send each chunk to queue
  ``hunts`` after the transaction commits, so several workers share one hunt.
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

Other concerns of a hunt have their own modules: its rules and how they are compiled,
``scans.hunt_plan``; matching one stored sample or a chunk's samples, ``scans.hunt_match``;
claim and recovery of chunks, ``scans.leases``; the stored files, ``scans.storage``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import Count, F, QuerySet
from django.utils import timezone

from engine import ENGINE_VERSION
from engine.errors import AnalysisError
from engine.facts_segment import block_of
from engine.features import Match, RuleRecord
from engine.ruleset import Ruleset
from portal.audit import audit_log
from portal.exceptions import ApplicationError, ConflictError, ForbiddenError
from portal.models import User
from scans.featurekeys import sample_keys
from scans.hunt_match import (
    chunk_facts_matches,
    facts_batch_enabled,
    has_current_features,
    keyed_matches,
    sample_match,
)
from scans.hunt_plan import (
    MAX_HUNT_SIGNATURES,
    HuntPlan,
    compiled_records,
    hunt_plan,
    record_dict,
    revision_records,
    unsaved_record,
)
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
from scans.storage import ScanError

log = logging.getLogger(__name__)

# how often (in samples) a running chunk checks whether its hunt was cancelled
_CANCEL_CHECK_EVERY = 10


def chunk_size() -> int:
    return max(1, int(settings.RETROHUNT_CHUNK_SIZE))


# A facts-only hunt (Koodous rules that read no bytes) costs tens of microseconds a sample whose
# features are stored (the facts batch), against one analysed again: its chunks hold up to this
# many times RETROHUNT_CHUNK_SIZE samples, so that claiming and committing a chunk and the
# broker's round trip cost less than its samples; a sample without current features weighs as
# many, so a chunk still analyses at most RETROHUNT_CHUNK_SIZE apps within the task's limits.
FACTS_CHUNK_FACTOR = 10


def _hunt_samples(*, facts_only: bool) -> tuple[list[int], set[int] | None]:
    """Every stored sample's id (ascending), and for a facts-only hunt over the facts batch
    the ids without current features (None otherwise): one pass over the table."""
    rows = Sample.objects.order_by("id")
    if not facts_only or not facts_batch_enabled():
        return list(rows.values_list("id", flat=True)), None
    ids: list[int] = []
    stale: set[int] = set()
    for pk, engine, name in rows.values_list("id", "features_engine_version", "features_file"):
        ids.append(pk)
        if engine != ENGINE_VERSION or not name:
            stale.add(pk)
    return ids, stale


def _chunk_groups(ids: list[int], stale: set[int] | None) -> list[list[int]]:
    """The hunt's sample ids (ascending) split into its chunks; ``stale``: for a facts-only
    hunt over the facts batch, the ids without current features."""
    size = chunk_size()
    if stale is None or not ids:
        return [ids[i : i + size] for i in range(0, len(ids), size)]
    limit = size * FACTS_CHUNK_FACTOR
    groups: list[list[int]] = []
    group: list[int] = []
    weight = 0
    analysed = 0
    for n, pk in enumerate(ids):
        group.append(pk)
        if pk in stale:
            weight += FACTS_CHUNK_FACTOR
            analysed += 1
        else:
            weight += 1
        # a chunk ends with a block of ids (engine.facts_segment) so that each block's facts
        # segment is read by one chunk (a block holds at most SEGMENT_IDS samples), unless it
        # has as many samples to analyse again as a chunk may
        if analysed >= size or (
            weight >= limit and (n + 1 == len(ids) or block_of(ids[n + 1]) != block_of(pk))
        ):
            groups.append(group)
            group, weight, analysed = [], 0, 0
    if group:
        groups.append(group)
    return groups


def recover_every_seconds() -> float:
    return max(1.0, float(settings.RETROHUNT_RECOVER_EVERY_SECONDS))


def _test_delay_seconds() -> float:
    """Test-only: sleep per sample so a test can watch progress move (0 in production)."""
    return max(0.0, float(settings.RETROHUNT_TEST_DELAY_SECONDS))


# --- creating ------------------------------------------------------------------------------------
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
        pairs: list[tuple[RuleRecord, int | None]] = [(unsaved_record(rule), None)]
    else:
        pairs = list(
            revision_records(signature_ids=signature_ids, revision_ids=revision_ids, limit=limit)
        )
    ruleset = compiled_records(r for r, _ in pairs)
    if ruleset.errors and len(ruleset.errors) == len(pairs):
        raise ApplicationError(
            f"Nothing to hunt: {ruleset.errors[0].message}",
            {"errors": [{"name": e.name, "message": e.message} for e in ruleset.errors]},
        )
    hunt = _hunt_save(
        user=user, pairs=pairs, rule=rule, enqueue=enqueue, facts_only=ruleset.yara_facts_only
    )
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
    facts_only: bool = False,
) -> RetroHunt:
    ids, stale = _hunt_samples(facts_only=facts_only)
    max_id = ids[-1] if ids else 0
    hunt = RetroHunt(
        created_by=user,
        rule_kind=str(rule["kind"]) if rule else "",
        rule_body=pairs[0][0].body if rule else None,
        records=[record_dict(r, rid) for r, rid in pairs],
        max_sample_id=max_id,
        clean_count=Sample.objects.filter(id__lte=max_id, label=Label.CLEAN).count(),
        total=len(ids),
    )
    groups = _chunk_groups(ids, stale)
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
        # rules on facts alone (Koodous): the whole chunk in one batch, before the loop, from
        # the samples' stored facts; a sample it answers needs no model object
        batched = (
            chunk_facts_matches((chunk.first_id, chunk.last_id), plan.scanned)
            if plan.scanned is not None
            else {}
        )
        rows = _chunk_sample_rows(chunk)
        skip = batched.keys() if plan.keyed is None else frozenset[int]()
        pending = [pk for pk, _, _ in rows if pk not in skip]
        samples = _chunk_samples(chunk, plan, None if len(pending) == len(rows) else pending)
        found: list[HuntMatch] = []
        errors = 0
        size = 0
        keyed, keyed_ok = _chunk_keyed_matches(chunk, plan, list(samples.values()))
        worked = 0  # samples matched one by one (keyed-only samples cost next to nothing)
        for pk, sample_size, label in rows:
            sample = samples.get(pk)
            if sample is None and pk not in batched:
                continue  # deleted since the hunt started
            if plan.keyed is not None and pk not in keyed_ok:
                ruleset: Ruleset | None = plan.full()  # no current features: analysed again
            else:
                ruleset = plan.scanned
            if ruleset is plan.scanned and pk in batched:
                ruleset, matches = None, keyed.get(pk, []) + batched[pk]
            else:
                matches = keyed.get(pk, [])
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
            size += sample_size
            if ruleset is not None:
                assert sample is not None  # loaded: not answered by the batch
                try:
                    matches = matches + sample_match(sample, ruleset)
                except (AnalysisError, ScanError) as exc:
                    errors += 1
                    log.info("hunt %s: sample %s skipped: %s", hunt.pk, pk, exc)
                    continue
            found += _hunt_matches(hunt, (pk, label), matches, by_key)
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


def _chunk_sample_rows(chunk: HuntChunk) -> list[tuple[int, int, str]]:
    """Every sample of the chunk as (id, size, label), in id order."""
    rows = Sample.objects.filter(id__gte=chunk.first_id, id__lte=chunk.last_id).order_by("id")
    return list(rows.values_list("id", "size", "label"))


def _chunk_samples(chunk: HuntChunk, plan: HuntPlan, ids: list[int] | None) -> dict[int, Sample]:
    """The chunk's samples ``ids`` (those the facts batch did not answer; None: all), with
    the fields its hunt reads, by id."""
    if ids is not None and not ids:
        return {}
    fields = ["id", "sha256", "file", "size", "label", "features_file"]
    fields += ["features_engine_version", "keys_engine_version", "package", "app_label"]
    if plan.scanned is not None and (not plan.scanned.yara_only or plan.scanned.yara_facts_only):
        # yara alone reads the facts from the unit pack, unless no rule reads bytes: then
        # the summary is all it reads
        fields.append("features")
    rows = Sample.objects.only(*fields).order_by("id")
    if ids is None:
        return {s.pk: s for s in rows.filter(id__gte=chunk.first_id, id__lte=chunk.last_id)}
    out: dict[int, Sample] = {}
    for start in range(0, len(ids), 500):
        out.update((s.pk, s) for s in rows.filter(pk__in=ids[start : start + 500]))
    return out


def _chunk_keyed_matches(
    chunk: HuntChunk, plan: HuntPlan, samples: list[Sample]
) -> tuple[dict[int, list[Match]], set[int]]:
    """Keyed rules: matched on the samples that hold one of the hunt's keys, from their stored
    summaries; no app is read (scans.featurekeys). Returns (matches by sample id, the ids whose
    keys are current)."""
    if plan.keyed is None:
        return {}, set()
    current = [s for s in samples if has_current_features(s)]
    keys = sample_keys(first_id=chunk.first_id, last_id=chunk.last_id, samples=current)
    candidates = [sid for sid, ks in keys.items() if not plan.keys.isdisjoint(ks)]
    return keyed_matches(candidates, plan.keyed), set(keys)


def _hunt_matches(
    hunt: RetroHunt,
    sample: tuple[int, str],
    matches: list[Match],
    by_key: dict[tuple[int, int], int | None],
) -> list[HuntMatch]:
    """The rows of ``matches`` on ``sample`` (its id and label)."""
    if not matches:
        return []
    sample_id, label = sample
    return [
        HuntMatch(
            hunt=hunt,
            sample_id=sample_id,
            signature_id=m.signature_id,
            revision_id=by_key.get((m.signature_id, m.revision)),
            revision_number=m.revision,
            name=m.name[:255],
            kind=m.kind,
            label=label,
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
    from threats.public import GateResult, revisions_record_gate

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
