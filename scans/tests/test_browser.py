"""In Chromium: upload a corpus APK on the upload page, watch its scan finish, open matches.

The worker scans with the newest published release, built here through the releases app's
services from a deployed hash signature for this very APK.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from releases.services import release_build, release_publish
from releases.tests.conftest import SignatureMaker, update_repo  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_upload_a_corpus_apk_watch_its_scan_finish_and_open_its_matches(
    page,
    login,
    celery_worker,
    researcher,
    reviewer,
    small_apk: Path,
    update_repo,  # noqa: F811
) -> None:
    # given a published release with a hash signature for the APK, and a scan worker
    signatures = SignatureMaker(researcher, reviewer)
    sig = signatures.deploy(hashlib.sha256(small_apk.read_bytes()).hexdigest())
    release_build(number=release_publish(by=reviewer, enqueue=False).number)
    worker = celery_worker("scans")
    # when a researcher drops the file on the upload page
    login(researcher)
    page.goto("/samples/upload/")
    page.set_input_files("#upload-files", str(small_apk))
    link = page.locator("#uploads a.scan-link")
    link.wait_for(timeout=30_000)
    assert "stored" in link.inner_text()
    link.click()
    # then the scan page updates by itself until the scan is finished
    try:
        page.wait_for_selector("#scan-status[data-status=succeeded]", timeout=90_000)
    except Exception:
        pytest.fail(f"the scan did not finish; worker log:\n{worker.output()}")
    assert page.inner_text("#scan-verdict") == "malicious"
    match = page.locator("details.match").first
    assert sig.name in match.inner_text()
    assert hashlib.sha256(small_apk.read_bytes()).hexdigest() in match.inner_text()
