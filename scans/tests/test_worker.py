"""With a real ``celery worker`` process: scans finish, and a SIGKILLed worker loses nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from portal.testing import wait_for
from scans.models import ScanJob, ScanStatus
from scans.tests.factories import stored_sample

pytestmark = [pytest.mark.integration]


def _status(scan_id: int) -> str:
    return ScanJob.objects.values_list("status", flat=True).get(pk=scan_id)


def test_an_uploaded_apk_is_scanned_by_the_worker(
    celery_worker, api, researcher, small_apk: Path
) -> None:
    worker = celery_worker("scans")
    response = api(researcher).post(
        "/api/v1/samples/",
        {"file": SimpleUploadedFile(small_apk.name, small_apk.read_bytes())},
        format="multipart",
    )
    assert response.status_code == 201
    scan_id = response.json()["scan"]["id"]
    wait_for(
        lambda: _status(scan_id) == ScanStatus.SUCCEEDED,
        timeout=120,
        what=f"the scan to succeed; worker log:\n{worker.output()}",
    )
    scan = ScanJob.objects.get(pk=scan_id)
    assert scan.verdict == "clean"
    assert scan.sample.package == "android.appsecurity.cts.tinyapp"


def test_a_worker_killed_mid_scan_loses_nothing(
    celery_worker, researcher, small_apk: Path, monkeypatch
) -> None:
    # given scans that take a few seconds (test-only delay) and a worker running one
    monkeypatch.setenv("SCAN_TEST_DELAY_SECONDS", "5")
    monkeypatch.setenv("SCAN_RECOVER_EVERY_SECONDS", "2")
    _, scan = stored_sample(small_apk, user=researcher)
    first = celery_worker("scans")
    wait_for(
        lambda: _status(scan.pk) == ScanStatus.RUNNING,
        timeout=120,
        what=f"the scan to start; worker log:\n{first.output()}",
    )
    # when the worker is killed with SIGKILL in the middle of the scan
    first.kill()
    assert _status(scan.pk) == ScanStatus.RUNNING
    # then a worker started afterwards finishes it
    second = celery_worker("scans")
    wait_for(
        lambda: _status(scan.pk) == ScanStatus.SUCCEEDED,
        timeout=120,
        what=f"the scan to finish on the second worker; its log:\n{second.output()}",
    )
    scan.refresh_from_db()
    assert scan.attempts == 2
    assert scan.verdict == "clean"
    assert "re-queued" in second.output() or "gone" in second.output()
