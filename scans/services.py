"""Write paths of the scans app: storing samples, creating and running scan jobs.

- ``sample_upload`` / ``sample_ingest``: stream a file to storage under its SHA-256 while
  hashing it (never whole in memory), deduplicate, and queue a scan.
- ``scan_create``: a queued row, sent to the ``scans`` queue after the transaction commits.
- ``scan_run``: the body of the Celery task. Idempotent: a finished scan is left alone; a
  scan left ``running`` by a dead worker is taken over (see ``_holder_lost``).
- ``scans_recover``: re-queues scans whose worker died. Needed because Celery's filesystem
  broker drops a message once a worker has fetched it, so SIGKILL loses it; on Redis the
  broker redelivers it after the visibility timeout as well (docs/scanning.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import zstandard
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import Count, F, Max
from django.utils import timezone
from rest_framework import status

from engine import ENGINE_VERSION
from engine.analyze import DEFAULT_LIMITS, analyze_with_content
from engine.errors import AnalysisError
from engine.features import AppContent, AppFeatures, Match
from engine.ruleset import android_globals
from engine.ruleset import match as engine_match
from engine.ruleset import verdict as engine_verdict
from engine.units import UnitsError, read_units, write_units
from portal.audit import audit_log
from portal.exceptions import ApplicationError
from portal.models import User
from portal.selectors import live_worker_names
from scans.api import ScanDone, scan_succeeded
from scans.featurekeys import sample_keys_write
from scans.models import (
    FINISHED,
    HuntChunk,
    Label,
    Sample,
    ScanJob,
    ScanStatus,
    SignatureHit,
)
from scans.reports import not_an_app_reason
from scans.rulesets import RulesetProvider, compiled, current_ruleset
from threats.api import family_find

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
# A scan is given up after this many starts: a file that kills its worker every time must
# end as failed, not loop forever.
MAX_ATTEMPTS = 3
# Tables that are large and only needed to match again: kept in the features file only.
_BULKY = ("strings", "types", "methods")


# --- configuration read at call time --------------------------------------------------------
def max_upload_bytes() -> int:
    return int(settings.MAX_UPLOAD_MB) * 1024 * 1024


def _test_delay_seconds() -> float:
    """Test-only: sleep this long in a running scan, so a test can kill the worker mid-scan.

    Unset (0) in production; a test sets SCAN_TEST_DELAY_SECONDS in the worker's environment.
    """
    return max(0.0, float(settings.SCAN_TEST_DELAY_SECONDS))


def lease() -> timedelta:
    """How long a running scan may go without finishing before another worker takes it over.

    The hard time limit kills a task before then, so a scan still ``running`` after the
    lease belongs to a worker that is gone.
    """
    return timedelta(seconds=int(settings.CELERY_TASK_TIME_LIMIT) + 30)


def recover_every_seconds() -> float:
    """How often each scan worker looks for scans whose worker died."""
    return max(1.0, float(settings.SCAN_RECOVER_EVERY_SECONDS))


def requeue_after() -> timedelta:
    """A queued scan or hunt chunk not started after this long is sent to the broker again."""
    return timedelta(seconds=max(1, int(settings.SCAN_REQUEUE_AFTER_SECONDS)))


def worker_id() -> str:
    """``node/host:pid``: the Celery node (whose heartbeat row any machine can read), then
    this process. Outside a worker (tests, management commands) the node part is empty."""
    from portal.celery import NODE_NAME

    return f"{NODE_NAME}/{socket.gethostname()}:{os.getpid()}"


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


def sample_storage_name(sha256: str) -> str:
    return f"samples/{sha256[:2]}/{sha256}"


def _store(file: File[Any], hashes: Hashes) -> str:
    """Put the file in storage under its SHA-256 (kept if an identical one is there)."""
    name = sample_storage_name(hashes.sha256)
    if default_storage.exists(name):
        return name
    file.seek(0)
    saved = default_storage.save(name, file)
    if saved != name:  # a concurrent upload of the same file won the race; keep one copy
        default_storage.delete(saved)
    return name


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
    hashes = _hash_chunks(file.chunks(_CHUNK))
    if hashes.size == 0:
        raise ApplicationError(
            "The file is empty (0 bytes); upload an APK or XAPK.",
            {"fields": {"file": ["empty file"]}},
        )
    existing = Sample.objects.filter(sha256=hashes.sha256).first()
    storage_name = existing.file.name if existing else _store(file, hashes)
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


def scan_enqueue(*, scan_id: int) -> None:
    from scans.tasks import scan_sample

    try:
        scan_sample.apply_async((scan_id,), queue="scans")
    except Exception:  # the row stays queued; a broker outage must not fail the upload
        log.exception("could not send scan %s to the broker", scan_id)
        return
    ScanJob.objects.filter(pk=scan_id).update(sent_at=timezone.now())


def _pid_dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    with contextlib.suppress(OSError):  # a zombie nobody has reaped is dead too
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] == "Z"
    return False


_PROCESS = re.compile(r"(?:(?P<node>[^/]*)/)?(?P<host>.*):(?P<pid>[0-9]{1,9})", re.ASCII)


def _holder_lost(scan: ScanJob | HuntChunk, *, now: Any, me: str | None) -> bool:
    """True when the process that marked ``scan`` running can no longer be running it.

    Works across machines: the job names its Celery node, and a node whose heartbeat row is
    older than WORKER_STALE_AFTER is gone wherever it ran. On the same host a dead pid is a
    quicker answer (a pool process killed while its node lives on). The lease bounds the rest.
    """
    if scan.worker and scan.worker == me:
        return True  # this process was interrupted (e.g. a retried DB error) and is back
    if scan.started_at is None or scan.started_at + lease() < now:
        return True
    holder = _PROCESS.fullmatch(scan.worker)
    if holder is None:
        return False
    node, host, pid = holder["node"], holder["host"], int(holder["pid"])
    if host == socket.gethostname() and _pid_dead(pid):
        return True
    return bool(node) and not live_worker_names([node])


def _scan_claim(scan_id: int) -> ScanJob | None:
    """Mark the scan running for this process, or None if there is nothing to do."""
    now = timezone.now()
    me = worker_id()
    with transaction.atomic():
        scan = ScanJob.objects.filter(pk=scan_id).first()
        if scan is None:
            log.warning("scan %s no longer exists", scan_id)
            return None
        if scan.status in FINISHED:
            log.info("scan %s already %s; nothing to do", scan_id, scan.status)
            return None
        if scan.status == ScanStatus.RUNNING and not _holder_lost(scan, now=now, me=me):
            log.info("scan %s is running on %s; leaving it", scan_id, scan.worker)
            return None
        if scan.attempts >= MAX_ATTEMPTS:
            _scan_finish_failed(
                scan,
                f"the scan was interrupted {scan.attempts} times (its worker was lost or "
                "timed out each time); giving up",
            )
            return None
        claimed = ScanJob.objects.filter(
            pk=scan.pk, status=scan.status, attempts=scan.attempts
        ).update(
            status=ScanStatus.RUNNING,
            started_at=now,
            finished_at=None,
            attempts=F("attempts") + 1,
            worker=me,
            error="",
        )
    if not claimed:
        return None
    scan.refresh_from_db()
    return scan


def _scan_finish_failed(scan: ScanJob, reason: str) -> None:
    scan.status = ScanStatus.FAILED
    scan.error = reason[:2000]
    scan.finished_at = timezone.now()
    scan.engine_version = ENGINE_VERSION
    scan.save(update_fields=["status", "error", "finished_at", "engine_version"])


class ScanError(Exception):
    """A scan cannot proceed for a reason people understand (e.g. the stored file is gone)."""


@contextlib.contextmanager
def _local_path(storage_name: str) -> Iterator[str]:
    """A path on local disk for the stored file (downloaded to a temp file for S3)."""
    try:
        local: str | None = default_storage.path(storage_name)
    except NotImplementedError:
        local = None
    if local is not None:
        if not os.path.isfile(local):
            raise ScanError("the stored file is missing from storage")
        yield local
        return
    if not default_storage.exists(storage_name):
        raise ScanError("the stored file is missing from storage")
    with (
        default_storage.open(storage_name, "rb") as src,
        tempfile.NamedTemporaryFile(
            dir=settings.FILE_UPLOAD_TEMP_DIR, prefix="scan-", suffix=".apk"
        ) as dst,
    ):
        for chunk in src.chunks(_CHUNK):
            dst.write(chunk)
        dst.flush()
        yield dst.name


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
    scan = _scan_claim(scan_id)
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
    with _local_path(sample.file.name) as path:
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
    _sample_store_features(sample, features)
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


# --- features ----------------------------------------------------------------------------------
def features_summary(data: dict[str, Any]) -> dict[str, Any]:
    """``AppFeatures.to_dict()`` without the bulky DEX tables (their sizes instead)."""
    out = {k: v for k, v in data.items() if k not in _BULKY}
    for key in _BULKY:
        out[f"{key}_count"] = len(data.get(key) or ())
    out["parts"] = [features_summary(p) for p in data.get("parts") or ()]
    return out


def features_storage_name(sha256: str) -> str:
    return f"features/{sha256[:2]}/{sha256}.engine{ENGINE_VERSION}.json.zst"


def _sample_store_features(sample: Sample, features: AppFeatures) -> None:
    if sample.features_engine_version == ENGINE_VERSION and sample.features_file:
        return  # the same engine gives the same features
    data = features.to_dict()
    blob = zstandard.ZstdCompressor(level=6).compress(
        json.dumps(data, separators=(",", ":")).encode()
    )
    name = features_storage_name(sample.sha256)
    if default_storage.exists(name):
        default_storage.delete(name)
    default_storage.save(name, ContentFile(blob))
    sample.features = features_summary(data)
    sample.features_file = name
    sample.features_engine_version = ENGINE_VERSION
    sample.package = (features.manifest.package or "")[:255]
    sample.app_label = (features.manifest.app_label or "")[:255]
    sample.save(
        update_fields=[
            "features",
            "features_file",
            "features_engine_version",
            "package",
            "app_label",
        ]
    )
    # the facts the gate looks up instead of reading the app (scans.featurekeys)
    sample_keys_write(sample=sample, features=features)
    sample.keys_engine_version = ENGINE_VERSION


def sample_features_load(sample: Sample) -> AppFeatures | None:
    """The full features (DEX tables included) from storage; None if not analysed yet."""
    if not sample.features_file or sample.features_engine_version != ENGINE_VERSION:
        return None
    with default_storage.open(sample.features_file, "rb") as fh:
        raw: IO[bytes] = fh
        data = json.loads(zstandard.ZstdDecompressor().stream_reader(raw).read())
    return AppFeatures.from_dict(data)


# --- scan units ---------------------------------------------------------------------------------
# The manifest and DEX bytes inflated once and kept beside the app (engine/units.py), so that
# retro-hunts scan them without parsing and inflating the ZIP again. Keyed by the stored file
# and the engine version: derived data, rewritten whenever it is missing or damaged.
def _units_key(file_name: str) -> bytes:
    return hashlib.sha256(file_name.encode()).digest()


def units_storage_name(file_name: str) -> str:
    key = _units_key(file_name).hex()
    return f"units/{key[:2]}/{key}.engine{ENGINE_VERSION}.units"


def sample_units_store(sample: Sample, content: AppContent, features: AppFeatures) -> None:
    """Write the sample's unit pack (with the yara facts from ``features``) unless it is
    there already (another worker may have written it)."""
    name = units_storage_name(sample.file.name)
    if default_storage.exists(name):
        return
    content = dataclasses.replace(content, facts=android_globals(features))
    with tempfile.TemporaryFile(dir=settings.FILE_UPLOAD_TEMP_DIR, prefix="units-") as fh:
        write_units(fh, _units_key(sample.file.name), content)
        fh.seek(0)
        saved = default_storage.save(name, File(fh))
    if saved != name:  # written meanwhile by another worker: keep one
        default_storage.delete(saved)


def sample_units_load(sample: Sample, path: str) -> AppContent | None:
    """The sample's manifest and DEX from its unit pack (``path`` is the app on local disk);
    None when there is no usable pack (a damaged one is deleted, to be written again)."""
    name = units_storage_name(sample.file.name)
    if not default_storage.exists(name):  # S3 raises its own error for a missing key on read
        return None
    try:
        with default_storage.open(name, "rb") as fh:
            return read_units(fh, _units_key(sample.file.name), path, DEFAULT_LIMITS)
    except FileNotFoundError:
        return None
    except UnitsError as exc:
        log.warning("sample %s: unit pack %s unusable (%s); reading the app", sample.pk, name, exc)
        default_storage.delete(name)
        return None


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
    from threats.api import HitStats, signature_stats_record

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
    created, or the message was lost); returns their ids.

    Runs when a scan worker starts and then on a timer in every scan worker.
    """
    now = timezone.now()
    requeued: list[int] = []
    for scan in ScanJob.objects.filter(status=ScanStatus.RUNNING).only(
        "id", "status", "worker", "started_at", "attempts"
    ):
        if not _holder_lost(scan, now=now, me=None):
            continue
        with transaction.atomic():
            moved = ScanJob.objects.filter(
                pk=scan.pk, status=ScanStatus.RUNNING, attempts=scan.attempts, worker=scan.worker
            ).update(status=ScanStatus.QUEUED, worker="")
            if moved:
                log.warning("scan %s: worker %s is gone; re-queued", scan.pk, scan.worker)
                requeued.append(scan.pk)
                pk = scan.pk
                transaction.on_commit(lambda pk=pk: scan_enqueue(scan_id=pk))  # type: ignore[misc]
    stale = now - requeue_after()
    never_started = list(
        ScanJob.objects.filter(status=ScanStatus.QUEUED, queued_at__lt=stale)
        .exclude(sent_at__gte=stale)
        .values_list("id", flat=True)[:1000]
    )
    for pk in never_started:
        log.warning("scan %s queued since before %s and never started; sent again", pk, stale)
        scan_enqueue(scan_id=pk)
    return requeued + never_started
