"""In Chromium, with real workers: the sample page's verdict changes after a release ships a
signature that hits it (no rescan: the publish worker builds the release, a default worker
brings verdicts to it), and a researcher changes the sample's label with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from portal.models import AuditEntry
from portal.testing import gate, wait_for
from releases.services import release_publish
from scans.models import Sample, ScanJob
from scans.services import scan_run
from scans.tests.factories import stored_sample
from threats import services
from threats.tests.factories import make_family

pytestmark = [pytest.mark.browser, pytest.mark.integration]

BANK = "InsecureBankv2.apk"
CLEAN = "a2dp.Vol_137.apk"


@pytest.fixture
def update_repo(settings, tmp_path: Path, monkeypatch):
    from releases.repository import init_dev_repository

    settings.RELEASE_REPO_DIR = tmp_path / "updates"
    settings.TUF_KEYS_DIR = tmp_path / "tuf-keys"
    monkeypatch.setenv("RELEASE_REPO_DIR", str(settings.RELEASE_REPO_DIR))
    monkeypatch.setenv("TUF_KEYS_DIR", str(settings.TUF_KEYS_DIR))
    for name in ("TUF_ROOT_KEY", "TUF_TARGETS_KEY", "TUF_SNAPSHOT_KEY", "TUF_TIMESTAMP_KEY"):
        monkeypatch.delenv(name, raising=False)
    return init_dev_repository()


def test_the_verdict_on_the_sample_page_follows_a_release(
    page, login, celery_worker, researcher, reviewer, corpus: Path, update_repo
) -> None:
    # given InsecureBankv2 scanned clean before any release, and a clean app
    stored_sample(corpus / "apks" / CLEAN, label="clean", user=researcher)
    bank, scan = stored_sample(corpus / "apks" / BANK, user=researcher)
    scan_run(scan_id=scan.pk)
    login(researcher)
    page.goto(f"/samples/{bank.sha256}/")
    assert page.inner_text("#sample-verdict").startswith("clean")
    assert "before any release" in page.inner_text("#sample-verdict")

    # when a signature that hits it is gated, approved and published, with real workers
    sig = services.signature_create(
        actor=researcher,
        kind="hash",
        body={"algorithm": "sha256", "target": "apk", "value": bank.sha256},
        family=make_family(name="Bankbot"),
    )
    services.signature_submit(signature=sig, actor=researcher)
    gate(sig)
    services.signature_approve(signature=sig, actor=reviewer)
    worker = celery_worker("publish,default")
    release = release_publish(by=reviewer)

    # then the page says malicious as of that release, and no new scan ran
    wait_for(
        lambda: Sample.objects.get(pk=bank.pk).verdict_release == release.number,
        timeout=120,
        what=f"verdicts to reach release {release.number}; worker log:\n{worker.output()}",
    )
    page.goto(f"/samples/{bank.sha256}/")
    verdict = page.inner_text("#sample-verdict")
    assert verdict.startswith("malicious")
    assert f"as of release {release.number}" in verdict
    assert sig.name in verdict or "Andr." in verdict
    assert ScanJob.objects.filter(sample=bank).count() == 1
    # the label is another thing: still unknown
    assert page.inner_text("#sample-label") == "Unknown"


def test_a_researcher_changes_a_label_on_the_sample_page(
    page, login, researcher, corpus: Path
) -> None:
    bank, _ = stored_sample(corpus / "apks" / BANK, user=researcher)
    login(researcher)
    page.goto(f"/samples/{bank.sha256}/")
    assert page.inner_text("#sample-label") == "Unknown"
    page.click("details.relabel summary")
    page.select_option("#relabel-form select[name=label]", "malicious")
    page.fill("#relabel-form input[name=reason]", "steals SMS codes in the wild")
    page.click("#relabel-form button[type=submit]")
    page.wait_for_url(f"**/samples/{bank.sha256}/")
    assert page.inner_text("#sample-label") == "Known malicious"
    assert "now labelled known malicious" in page.inner_text("ul.messages")
    entry = AuditEntry.objects.get(action="sample.label")
    assert entry.reason == "steals SMS codes in the wild"
