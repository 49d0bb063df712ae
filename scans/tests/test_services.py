"""scan_run over real files, dedup, idempotency, recovery, and matches of real rules."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from engine import ENGINE_VERSION
from portal.exceptions import ApplicationError
from portal.models import WorkerHeartbeat
from scans import rulesets, services
from scans.leases import MAX_ATTEMPTS
from scans.models import Sample, ScanJob, ScanStatus
from scans.rulesets import EMPTY
from scans.services import sample_upload, scan_run, scans_recover
from scans.storage import sample_features_load
from scans.tests.conftest import corpus_files, manifest_rows, record
from scans.tests.factories import stored_sample

pytestmark = pytest.mark.django_db


def _empty() -> rulesets.RulesetSource:
    return EMPTY


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_every_corpus_file_ends_succeeded_or_failed_with_a_reason(path: Path) -> None:
    # given a file from the corpus (malformed zips, evasion tricks, an XAPK, an empty zip...)
    _, scan = stored_sample(path)
    # when a worker runs its scan
    scan_run(scan_id=scan.pk, ruleset_provider=_empty)
    # then it finished one way or the other, with a reason a person reads if it failed
    scan.refresh_from_db()
    assert scan.status in (ScanStatus.SUCCEEDED, ScanStatus.FAILED)
    assert scan.finished_at is not None
    if scan.status == ScanStatus.FAILED:
        assert scan.error
        assert "internal error" not in scan.error
    else:
        assert scan.verdict == "clean"
        assert scan.engine_version == ENGINE_VERSION
        assert scan.analyse_ms is not None
        assert scan.sample.features is not None


def test_features_are_summarised_in_the_row_and_kept_whole_in_storage(small_apk: Path) -> None:
    sample, scan = stored_sample(small_apk)
    scan_run(scan_id=scan.pk, ruleset_provider=_empty)
    sample.refresh_from_db()
    facts = manifest_rows()[small_apk.name]
    assert sample.package == facts["package"]
    summary = sample.features
    assert summary is not None
    assert "strings" not in summary
    assert summary["strings_count"] > 0
    full = sample_features_load(sample)
    assert full is not None
    assert full.sha256 == sample.sha256
    assert len(full.strings) == summary["strings_count"]


def test_the_same_file_twice_is_one_sample_with_two_scans(small_apk: Path, researcher) -> None:
    first, scan1, created1 = sample_upload(
        file=ContentFile(small_apk.read_bytes(), name="a.apk"), user=researcher
    )
    second, scan2, created2 = sample_upload(
        file=ContentFile(small_apk.read_bytes(), name="b.apk"), label="malicious", user=researcher
    )
    assert (created1, created2) == (True, False)
    assert first.pk == second.pk
    assert scan1.pk != scan2.pk
    assert Sample.objects.get(pk=first.pk).label == "malicious"
    assert first.original_name == "a.apk"


def test_a_zero_byte_file_is_refused(researcher) -> None:
    with pytest.raises(ApplicationError, match="empty"):
        sample_upload(file=ContentFile(b"", name="empty.apk"), user=researcher)
    assert not Sample.objects.exists()


def test_a_file_that_is_not_a_zip_fails_with_a_reason(researcher) -> None:
    _, scan, _ = sample_upload(
        file=ContentFile(b"this is plain text, not an APK\n" * 10, name="notes.apk"),
        user=researcher,
    )
    scan_run(scan_id=scan.pk, ruleset_provider=_empty)
    scan.refresh_from_db()
    assert scan.status == ScanStatus.FAILED
    assert scan.error
    assert "internal error" not in scan.error


def test_a_finished_scan_is_left_alone(small_apk: Path) -> None:
    _, scan = stored_sample(small_apk)
    scan_run(scan_id=scan.pk, ruleset_provider=_empty)
    scan.refresh_from_db()
    finished_at = scan.finished_at
    # when the task is delivered again
    assert scan_run(scan_id=scan.pk, ruleset_provider=_empty) is None
    scan.refresh_from_db()
    assert scan.finished_at == finished_at
    assert scan.attempts == 1


def test_a_scan_left_running_by_a_dead_worker_is_run_again(small_apk: Path) -> None:
    _, scan = stored_sample(small_apk)
    # a pid that cannot exist on this host
    ScanJob.objects.filter(pk=scan.pk).update(
        status=ScanStatus.RUNNING,
        worker=f"{socket.gethostname()}:{2**22 + 1}",
        started_at=timezone.now(),
        attempts=1,
    )
    scan_run(scan_id=scan.pk, ruleset_provider=_empty)
    scan.refresh_from_db()
    assert scan.status == ScanStatus.SUCCEEDED
    assert scan.attempts == 2


def test_a_scan_running_in_a_live_worker_is_not_taken_over(small_apk: Path) -> None:
    _, scan = stored_sample(small_apk)
    ScanJob.objects.filter(pk=scan.pk).update(
        status=ScanStatus.RUNNING,
        worker=f"{socket.gethostname()}:{os.getppid()}",
        started_at=timezone.now(),
        attempts=1,
    )
    assert scan_run(scan_id=scan.pk, ruleset_provider=_empty) is None
    scan.refresh_from_db()
    assert scan.status == ScanStatus.RUNNING


@pytest.mark.parametrize(
    ("heartbeat_age", "taken_over"), [(timedelta(seconds=2), False), (timedelta(hours=1), True)]
)
def test_a_scan_held_by_a_worker_on_another_machine_is_taken_over_once_its_heartbeat_stops(
    small_apk: Path, heartbeat_age: timedelta, taken_over: bool
) -> None:
    # given a scan running on another machine's worker node, whose last heartbeat is this old
    _, scan = stored_sample(small_apk)
    WorkerHeartbeat.objects.create(
        hostname="scanner@machine-b", queues=["scans"], last_seen=timezone.now() - heartbeat_age
    )
    ScanJob.objects.filter(pk=scan.pk).update(
        status=ScanStatus.RUNNING,
        worker="scanner@machine-b/machine-b:77",
        started_at=timezone.now(),
        attempts=1,
    )
    # when the scan is delivered to a worker here
    scan_run(scan_id=scan.pk, ruleset_provider=_empty)
    # then it is run here only if the other node is gone
    scan.refresh_from_db()
    assert scan.status == (ScanStatus.SUCCEEDED if taken_over else ScanStatus.RUNNING)
    assert scan.attempts == (2 if taken_over else 1)


def test_a_scan_that_keeps_losing_its_worker_ends_failed(small_apk: Path) -> None:
    _, scan = stored_sample(small_apk)
    ScanJob.objects.filter(pk=scan.pk).update(status=ScanStatus.QUEUED, attempts=MAX_ATTEMPTS)
    scan_run(scan_id=scan.pk, ruleset_provider=_empty)
    scan.refresh_from_db()
    assert scan.status == ScanStatus.FAILED
    assert "interrupted" in scan.error


def test_an_unexpected_error_fails_the_scan_with_its_type(small_apk: Path, monkeypatch) -> None:
    def boom(path: str) -> None:
        raise KeyError("parser bug")

    monkeypatch.setattr(services, "analyze_with_content", boom)
    _, scan = stored_sample(small_apk)
    scan_run(scan_id=scan.pk, ruleset_provider=_empty)
    scan.refresh_from_db()
    assert scan.status == ScanStatus.FAILED
    assert scan.error == "internal error while scanning: KeyError"


def test_a_missing_stored_file_fails_with_a_reason(small_apk: Path) -> None:
    sample, scan = stored_sample(small_apk)
    Sample.objects.filter(pk=sample.pk).update(file="samples/00/missing")
    scan_run(scan_id=scan.pk, ruleset_provider=_empty)
    scan.refresh_from_db()
    assert scan.status == ScanStatus.FAILED
    assert scan.error == "the stored file is missing from storage"


def test_recovery_requeues_scans_whose_worker_died(
    small_apk: Path, django_capture_on_commit_callbacks
) -> None:
    _, scan = stored_sample(small_apk)
    ScanJob.objects.filter(pk=scan.pk).update(
        status=ScanStatus.RUNNING,
        worker=f"{socket.gethostname()}:{2**22 + 1}",
        started_at=timezone.now(),
        attempts=1,
    )
    with django_capture_on_commit_callbacks() as callbacks:
        requeued = scans_recover()
    assert requeued == [scan.pk]
    assert len(callbacks) == 1
    scan.refresh_from_db()
    assert scan.status == ScanStatus.QUEUED


def test_hash_and_package_cert_rules_give_a_malicious_verdict_with_evidence(
    small_apk: Path, ruleset_of
) -> None:
    # given a hash signature for this APK and a package_cert rule that does not allow its signer
    sample, scan = stored_sample(small_apk)
    package = manifest_rows()[small_apk.name]["package"]
    provider = ruleset_of(
        record(1, "hash", {"algorithm": "sha256", "value": sample.sha256, "target": "apk"}),
        record(2, "package_cert", {"package": package, "allowed_certs": ["ab" * 32]}),
        release=12,
    )
    # when it is scanned
    scan_run(scan_id=scan.pk, ruleset_provider=provider)
    # then both match, with evidence, and the verdict is malicious
    scan.refresh_from_db()
    assert scan.status == ScanStatus.SUCCEEDED
    assert scan.verdict == "malicious"
    assert scan.score == 100
    assert scan.ruleset_release == 12
    by_id = {m["signature_id"]: m for m in scan.matches}
    assert set(by_id) == {1, 2}
    assert by_id[1]["kind"] == "hash"
    assert any(sample.sha256 in e for e in by_id[1]["evidence"])
    assert by_id[2]["evidence"]
    assert Sample.objects.get(pk=sample.pk).verdict == "malicious"


def test_a_noisy_signature_is_reported_but_does_not_score(small_apk: Path, ruleset_of) -> None:
    sample, scan = stored_sample(small_apk)
    provider = ruleset_of(
        record(3, "hash", {"value": sample.sha256}, noisy=True),
    )
    scan_run(scan_id=scan.pk, ruleset_provider=provider)
    scan.refresh_from_db()
    assert scan.verdict == "clean"
    assert scan.score == 0
    assert [m["scoring"] for m in scan.matches] == [False]


def test_a_ruleset_is_compiled_once_per_key(small_apk: Path, ruleset_of, monkeypatch) -> None:
    calls: list[int] = []
    real = rulesets.compile_ruleset

    def counting(records):
        calls.append(1)
        return real(records)

    monkeypatch.setattr(rulesets, "compile_ruleset", counting)
    provider = ruleset_of(record(4, "hash", {"value": "cd" * 32}))
    for _ in range(3):
        _, scan = stored_sample(small_apk)
        scan_run(scan_id=scan.pk, ruleset_provider=provider)
    assert len(calls) == 1
