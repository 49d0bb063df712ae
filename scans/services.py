"""Write paths of the scans app: storing samples, creating and running scan jobs.

- ``sample_upload`` / ``sample_ingest``: stream a file to storage under its SHA-256 while
  hashing it (never whole in memory), deduplicate, and queue a scan.
- ``scan_create``: a queued row, sent to the ``scans`` queue after the transaction commits.
- ``scan_run``: the body of the Celery task. Idempotent: a finished scan is left alone; a
  scan left ``running`` by a dead worker is taken over (``scans.leases``, ``SCAN_LEASE``).
- ``scans_recover``: re-queues scans whose worker died. Needed because Celery's filesystem
  broker drops a message once a worker has fetched it, so SIGKILL loses it; on Redis the
  broker redelivers it after the visibility timeout as well (docs/scanning.md).

Where files and their derived data are kept is ``scans.storage``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import Count, Max
from django.utils import timezone
from rest_framework import status

from engine import ENGINE_VERSION
from engine.analyze import analyze_with_content
from engine.errors import AnalysisError
from engine.features import Match
from engine.ruleset import match as engine_match
from engine.ruleset import verdict as engine_verdict
from portal.audit import audit_log
from portal.exceptions import ApplicationError
from portal.models import User
from scans.leases import LeaseSpec, claim, recover
from scans.models import FINISHED, Label, Sample, ScanJob, ScanStatus, SignatureHit
from scans.public import ScanDone, scan_succeeded
from scans.reports import not_an_app_reason
from scans.rulesets import RulesetProvider, compiled, current_ruleset
from scans.storage import (
    CHUNK,
    ScanError,
    local_path,
    sample_features_store,
    sample_file_store,
    sample_units_store,
)
from threats.public import family_find

log = logging.getLogger(__name__)


# --- configuration read at call time --------------------------------------------------------
def max_upload_bytes() -> int:
    return int(settings.MAX_UPLOAD_MB) * 1024 * 1024


def _test_delay_seconds() -> float:
    """Test-only: sleep this long in a running scan, so a test can kill the worker mid-scan.

    Unset (0) in production; a test sets SCAN_TEST_DELAY_SECONDS in the worker's environment.
    """
    return max(0.0, float(settings.SCAN_TEST_DELAY_SECONDS))


def recover_every_seconds() -> float:
    """How often each scan worker looks for scans whose worker died."""
    return max(1.0, float(settings.SCAN_RECOVER_EVERY_SECONDS))


# --- storing files ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Hashes:
    sha256: str
    sha1: str
    md5: str
    size: int


def too_big_error(size: int | None = None) -> ApplicationError:
    limit = int(settings.MAX_UPLOAD_MB)
    what = f"The file is {size / 1024 / 1024:.1f} MB; " if size is not None else ""
    return ApplicationError(
        f"{what}files over {limit} MB are refused (MAX_UPLOAD_MB).",
        {"max_upload_mb": limit},
        status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    )


def _hash_chunks(chunks: Iterable[bytes]) -> Hashes:
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(usedforsecurity=False)
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    limit = max_upload_bytes()
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_big_error()
        sha256.update(chunk)
        sha1.update(chunk)
        md5.update(chunk)
    return Hashes(sha256.hexdigest(), sha1.hexdigest(), md5.hexdigest(), size)


def _family(value: str | int | None) -> int | None:
    """The id of the family named (by id or name), or None when none is given."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    family = family_find(text)
    if family is None:
        raise ApplicationError(
            f"No family {text!r}: give a family id or an existing family name.",
            {"fields": {"family": ["unknown family"]}},
        )
    return family.id


def _label(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    if value not in Label.values:
        raise ApplicationError(
            f"label must be one of {', '.join(Label.values)}.",
            {"fields": {"label": [f"{value!r} is not a label"]}},
        )
    return str(value)


def sample_upload(
    *,
    file: File[Any],
    name: str = "",
    label: str | None = None,
    family: str | int | None = None,
    user: User | None,
) -> tuple[Sample, ScanJob, bool]:
    """Store ``file`` (deduplicated by SHA-256) and queue a scan of it.

    Returns (sample, scan, created). Refuses empty files and files over MAX_UPLOAD_MB (413).
    """
    label_value = _label(label)
    family_id = _family(family)
    size = getattr(file, "size", None)
    if size is not None and size > max_upload_bytes():
        raise too_big_error(size)
    hashes = _hash_chunks(file.chunks(CHUNK))
    if hashes.size == 0:
        raise ApplicationError(
            "The file is empty (0 bytes); upload an APK or XAPK.",
            {"fields": {"file": ["empty file"]}},
        )
    existing = Sample.objects.filter(sha256=hashes.sha256).first()
    storage_name = existing.file.name if existing else sample_file_store(file, hashes.sha256)
    display_name = Path(name or getattr(file, "name", "") or "").name[:255]
    return _sample_record(
        hashes=hashes,
        storage_name=storage_name,
        original_name=display_name,
        label=label_value,
        family_id=family_id,
        user=user,
    )


@transaction.atomic
def _sample_record(
    *,
    hashes: Hashes,
    storage_name: str,
    original_name: str,
    label: str | None,
    family_id: int | None,
    user: User | None,
) -> tuple[Sample, ScanJob, bool]:
    now = timezone.now()
    sample = Sample.objects.filter(sha256=hashes.sha256).first()
    created = sample is None
    if sample is None:
        sample = Sample(
            sha256=hashes.sha256,
            sha1=hashes.sha1,
            md5=hashes.md5,
            size=hashes.size,
            file=storage_name,
            original_name=original_name,
            label=label or Label.UNKNOWN,
            family_id=family_id,
            last_seen=now,
            uploaded_by=user,
        )
        sample.full_clean()
        try:
            with transaction.atomic():
                sample.save()
        except IntegrityError:  # the same file arrived at the same moment
            sample = Sample.objects.get(sha256=hashes.sha256)
            created = False
    if created:
        audit_log(actor=user, action="sample.upload", obj=sample, after={"label": sample.label})
    else:
        before = {"label": sample.label, "family": sample.family_id}
        if label is not None:
            sample.label = label
        if family_id is not None:
            sample.family_id = family_id
        sample.last_seen = now
        sample.save(update_fields=["label", "family", "last_seen"])
        after = {"label": sample.label, "family": sample.family_id}
        if after != before:
            audit_log(actor=user, action="sample.relabel", obj=sample, before=before, after=after)
            # its hits now count under another label
            hit_ids = list(
                SignatureHit.objects.filter(sample=sample).values_list("signature_id", flat=True)
            )
            if hit_ids:
                transaction.on_commit(lambda: signature_stats_refresh(signature_ids=hit_ids))
    scan = scan_create(sample=sample, user=user)
    return sample, scan, created


def sample_ingest(
    *, path: Path, label: str | None = None, user: User | None = None
) -> tuple[Sample, ScanJob, bool]:
    """Store a local file as a sample and queue its scan (the ``ingest_samples`` command)."""
    with path.open("rb") as fh:
        return sample_upload(file=File(fh, name=path.name), name=path.name, label=label, user=user)


# --- scan jobs ---------------------------------------------------------------------------------
def scan_create(*, sample: Sample, user: User | None) -> ScanJob:
    """A queued scan of ``sample``, sent to the ``scans`` queue once the transaction commits."""
    scan = ScanJob(sample=sample, requested_by=user, status=ScanStatus.QUEUED)
    scan.full_clean()
    scan.save()
    transaction.on_commit(lambda: scan_enqueue(scan_id=scan.pk))
    return scan


def scans_enqueue(*, scan_ids: Iterable[int]) -> None:
    for scan_id in scan_ids:
        scan_enqueue(scan_id=scan_id)


def scan_enqueue(*, scan_id: int) -> None:
    from scans.tasks import scan_sample

    try:
        scan_sample.apply_async((scan_id,), queue="scans")
    except Exception:  # the row stays queued; a broker outage must not fail the upload
        log.exception("could not send scan %s to the broker", scan_id)
        return
    ScanJob.objects.filter(pk=scan_id).update(sent_at=timezone.now())


def _scan_finish_failed(scan: ScanJob, reason: str) -> None:
    scan.status = ScanStatus.FAILED
    scan.error = reason[:2000]
    scan.finished_at = timezone.now()
    scan.engine_version = ENGINE_VERSION
    scan.save(update_fields=["status", "error", "finished_at", "engine_version"])


def _scan_give_up(scan: ScanJob, now: datetime) -> None:
    _scan_finish_failed(
        scan,
        f"the scan was interrupted {scan.attempts} times (its worker was lost or "
        "timed out each time); giving up",
    )


# A scan as a leased job (scans.leases): claimed by scan_run, recovered by scans_recover.
SCAN_LEASE = LeaseSpec(
    name="scan",
    model=ScanJob,
    running=ScanStatus.RUNNING,
    queued=ScanStatus.QUEUED,
    done=frozenset(FINISHED),
    # looked up when called: tests and benchmarks replace scan_enqueue
    send=lambda ids: scans_enqueue(scan_ids=ids),
    give_up=_scan_give_up,
    log=log,
)


def sample_verdict_from_scan(**kwargs: Any) -> None:
    from scans.verdicts import sample_verdict_from_scan as set_verdict

    set_verdict(**kwargs)


def match_dict(m: Match) -> dict[str, Any]:
    return {
        "signature_id": m.signature_id,
        "revision": m.revision,
        "name": m.name,
        "kind": m.kind,
        "severity": m.severity,
        "scoring": m.scoring,
        "evidence": list(m.evidence),
    }


def scan_run(*, scan_id: int, ruleset_provider: RulesetProvider | None = None) -> ScanJob | None:
    """Run one scan to the end: succeeded with a verdict, or failed with a reason.

    Never leaves the row ``running`` unless the process itself dies (then the recovery
    takes over); DB connection errors propagate so the task can retry them.
    """
    scan = claim(SCAN_LEASE, scan_id)
    if scan is None:
        return None
    try:
        _scan_execute(scan, ruleset_provider or current_ruleset)
    except AnalysisError as exc:
        _scan_finish_failed(scan, exc.message)
    except ScanError as exc:
        _scan_finish_failed(scan, str(exc))
    except SoftTimeLimitExceeded:
        _scan_finish_failed(
            scan,
            f"the scan took longer than {settings.CELERY_TASK_SOFT_TIME_LIMIT} s and was stopped",
        )
    except (OperationalError, InterfaceError):
        raise  # transient: the task retries and takes the row over (same worker id)
    except Exception as exc:
        log.exception("scan %s: unexpected error", scan.pk)
        _scan_finish_failed(scan, f"internal error while scanning: {type(exc).__name__}")
    return scan


def _scan_execute(scan: ScanJob, provider: RulesetProvider) -> None:
    delay = _test_delay_seconds()
    if delay:
        time.sleep(delay)
    sample = scan.sample
    with local_path(sample.file.name) as path:
        # the file before the rules: what is no app fails saying what it is (scans/reports.py)
        t0 = time.perf_counter()
        try:
            features, content = analyze_with_content(path)
        except AnalysisError as exc:
            with open(path, "rb") as fh:
                reason = not_an_app_reason(fh, os.path.getsize(path), exc.message)
            raise ScanError(reason) from exc
        analysed = time.perf_counter() - t0
        source = provider()
        ruleset = compiled(source)
        t1 = time.perf_counter()
        try:
            matches = engine_match(features, ruleset, content)
        except Exception as exc:
            if type(exc).__name__ == "TimeoutError":  # yara_x.TimeoutError
                raise ScanError("YARA matching timed out on this file") from exc
            raise
        verdict, score = engine_verdict(matches, ruleset)
        t2 = time.perf_counter()
    if features.sha256 != sample.sha256:
        raise ScanError("the stored file does not match the sample's SHA-256 (storage damaged)")
    sample_features_store(sample, features)
    sample_units_store(sample, content, features)
    scan.status = ScanStatus.SUCCEEDED
    scan.finished_at = timezone.now()
    scan.analyse_ms = round(analysed * 1000)
    scan.match_ms = round((t2 - t1) * 1000)
    scan.engine_version = ENGINE_VERSION
    scan.ruleset_release = source.release
    scan.ruleset_key = source.key[:128]
    scan.ruleset_revisions = (
        [] if source.release is not None else [[r.id, r.revision] for r in source.records]
    )
    scan.verdict = verdict
    scan.score = score
    scan.matches = sorted(
        (match_dict(m) for m in matches), key=lambda m: (not m["scoring"], m["name"])
    )
    with transaction.atomic():
        scan.save()
        sample_verdict_from_scan(
            sample_id=sample.pk,
            release=source.release,
            records=source.records,
            matches=matches,
            verdict=verdict,
            score=score,
        )
        hits_record((m.signature_id, sample.pk) for m in matches if m.signature_id)
    if matches:
        signature_stats_refresh(signature_ids={m.signature_id for m in matches})
    # other apps' watchers (livehunt) after the verdict is committed; they enqueue, not match
    done = ScanDone(scan_id=scan.pk, sample_id=sample.pk, sha256=sample.sha256)
    transaction.on_commit(lambda: scan_succeeded(done))


# --- hit statistics ------------------------------------------------------------------------------
def hits_record(pairs: Iterable[tuple[int, int]]) -> None:
    """Note that signature X hit sample Y now (statistics count these)."""
    now = timezone.now()
    rows = [
        SignatureHit(signature_id=sig, sample_id=sample, last_hit_at=now)
        for sig, sample in set(pairs)
    ]
    if rows:
        SignatureHit.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["signature_id", "sample"],
            update_fields=["last_hit_at"],
            batch_size=500,
        )


def signature_stats_refresh(*, signature_ids: Iterable[int]) -> None:
    """Recount hits by the samples' current labels and store them on the signatures."""
    from threats.public import HitStats, signature_stats_record

    ids = sorted(set(signature_ids))
    if not ids:
        return
    counts: dict[int, dict[str, int]] = {i: {} for i in ids}
    last: dict[int, Any] = dict.fromkeys(ids)
    for start in range(0, len(ids), 900):
        part = ids[start : start + 900]
        rows = (
            SignatureHit.objects.filter(signature_id__in=part)
            .values("signature_id", "sample__label")
            .annotate(n=Count("id"), last=Max("last_hit_at"))
            .order_by()
        )
        for row in rows:
            sid = row["signature_id"]
            counts[sid][row["sample__label"]] = row["n"]
            if last[sid] is None or row["last"] > last[sid]:
                last[sid] = row["last"]
    signature_stats_record(
        stats={
            sid: HitStats(
                malicious=c.get(Label.MALICIOUS, 0),
                clean=c.get(Label.CLEAN, 0),
                unknown=c.get(Label.UNKNOWN, 0),
                last_hit_at=last[sid],
            )
            for sid, c in counts.items()
        }
    )


# --- recovery ----------------------------------------------------------------------------------
def scans_recover() -> list[int]:
    """Re-queue running scans whose worker is gone, and send again scans queued for longer
    than SCAN_REQUEUE_AFTER_SECONDS without being started (the broker was down when they were
    created, or the message was lost); returns their ids (``scans.leases.recover``).

    Runs when a scan worker starts and then on a timer in every scan worker.
    """
    return recover(SCAN_LEASE)
