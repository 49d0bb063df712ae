"""Current verdicts: a sample's verdict follows the current release without rescanning it.

The issue's own case: InsecureBankv2 was scanned (clean), then a signature that hits it was
gated, approved and shipped. The sample must now say malicious "as of" that release, from
the gate hunt's hit; a sample stored after the gate hunt is matched again from its stored
features; removing the signature or halting the release brings the verdict back.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from portal.testing import gate
from releases.services import release_build, release_halt, release_publish
from scans import verdicts as verdicts_module
from scans.models import CurrentMatch, Sample
from scans.services import scan_run
from scans.tests.factories import stored_sample
from scans.verdicts import verdicts_as_of, verdicts_sync
from threats import services
from threats.tests.factories import make_family

pytestmark = pytest.mark.django_db

BANK = "InsecureBankv2.apk"
DIVA = "com.politedroid_4.apk"
CLEAN = "a2dp.Vol_137.apk"


@pytest.fixture
def update_repo(settings, tmp_path: Path, monkeypatch):
    from releases.repository import init_dev_repository

    settings.RELEASE_REPO_DIR = tmp_path / "updates"
    settings.TUF_KEYS_DIR = tmp_path / "tuf-keys"
    for name in ("TUF_ROOT_KEY", "TUF_TARGETS_KEY", "TUF_SNAPSHOT_KEY", "TUF_TIMESTAMP_KEY"):
        monkeypatch.delenv(name, raising=False)
    return init_dev_repository()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _scanned(path: Path, user, label: str | None = None) -> Sample:
    sample, scan = stored_sample(path, user=user, label=label)
    scan_run(scan_id=scan.pk)
    sample.refresh_from_db()
    return sample


def _shipped_hash(author, reviewer, sha256: str, *, severity: str = "malicious"):
    sig = services.signature_create(
        actor=author,
        kind="hash",
        body={"algorithm": "sha256", "target": "apk", "value": sha256},
        family=make_family(name="Bankbot"),
        severity=severity,
    )
    services.signature_submit(signature=sig, actor=author)
    hunt = gate(sig)
    services.signature_approve(signature=sig, actor=reviewer)
    return sig, hunt


def _publish(reviewer) -> int:
    release = release_publish(by=reviewer, enqueue=False)
    return release_build(number=release.number).number


def test_a_shipped_signature_turns_a_clean_scan_malicious_as_of_its_release(
    researcher, reviewer, corpus: Path, update_repo, django_capture_on_commit_callbacks
) -> None:
    clean = _scanned(corpus / "apks" / CLEAN, researcher, label="clean")
    bank = _scanned(corpus / "apks" / BANK, researcher)
    assert bank.verdict == "clean"
    assert bank.verdict_release == 0  # no release existed when it was scanned

    sig, hunt = _shipped_hash(researcher, reviewer, bank.sha256)
    assert hunt.match_count == 1
    number = _publish(reviewer)
    result = verdicts_sync()

    bank.refresh_from_db()
    assert (bank.verdict, bank.verdict_release) == ("malicious", number)
    assert bank.verdict_score == 100
    assert list(
        CurrentMatch.objects.filter(sample=bank).values_list("signature_id", flat=True)
    ) == [sig.pk]
    clean.refresh_from_db()
    assert (clean.verdict, clean.verdict_release) == ("clean", number)
    assert result.samples_changed == 1
    assert result.samples_matched == 0  # the gate hunt covered both: nothing matched again
    assert verdicts_as_of() == number
    # a second pass has nothing to do
    assert verdicts_sync().samples_changed == 0

    # the signature leaves the next release: the sample is clean again, as of that release
    services.signature_disable(signature=sig, actor=reviewer, reason="false positive")
    later = _publish(reviewer)
    verdicts_sync()
    bank.refresh_from_db()
    assert (bank.verdict, bank.verdict_release) == ("clean", later)
    assert not CurrentMatch.objects.filter(sample=bank).exists()


def test_samples_stored_after_the_gate_hunt_are_matched_again_from_stored_features(
    researcher, reviewer, corpus: Path, update_repo
) -> None:
    _scanned(corpus / "apks" / CLEAN, researcher, label="clean")
    # the signature is gated before the app is stored: its hunt cannot have covered it
    sha = _sha256(corpus / "apks" / DIVA)
    _, hunt = _shipped_hash(researcher, reviewer, sha, severity="suspicious")
    assert hunt.match_count == 0
    diva = _scanned(corpus / "apks" / DIVA, researcher)  # scanned before any release: clean
    assert diva.verdict == "clean"

    number = _publish(reviewer)
    result = verdicts_sync()
    diva.refresh_from_db()
    assert (diva.verdict, diva.verdict_release) == ("suspicious", number)
    assert diva.verdict_score == 60
    assert result.samples_matched >= 1


def test_halting_the_release_brings_verdicts_back_to_the_one_before(
    researcher, reviewer, corpus: Path, update_repo
) -> None:
    _scanned(corpus / "apks" / CLEAN, researcher, label="clean")
    first = _publish(reviewer)  # no signatures yet
    bank = _scanned(corpus / "apks" / BANK, researcher)
    assert (bank.verdict, bank.verdict_release) == ("clean", first)

    _shipped_hash(researcher, reviewer, bank.sha256)
    second = _publish(reviewer)
    verdicts_sync()
    bank.refresh_from_db()
    assert (bank.verdict, bank.verdict_release) == ("malicious", second)

    release_halt(number=second, by=reviewer, reason="bad release")
    verdicts_sync()
    bank.refresh_from_db()
    assert (bank.verdict, bank.verdict_release) == ("clean", first)


def test_a_scan_under_the_current_release_sets_the_verdict_directly(
    researcher, reviewer, corpus: Path, update_repo
) -> None:
    _scanned(corpus / "apks" / CLEAN, researcher, label="clean")
    bank_path = corpus / "apks" / BANK
    _shipped_hash(researcher, reviewer, _sha256(bank_path))
    number = _publish(reviewer)
    bank = _scanned(bank_path, researcher)
    assert (bank.verdict, bank.verdict_release) == ("malicious", number)
    assert verdicts_sync().samples_changed == 0


def test_a_scan_under_the_old_release_during_a_pass_is_not_skipped(
    researcher, reviewer, corpus: Path, update_repo, monkeypatch
) -> None:
    """A scan that started under release 1 and commits while a pass to release 2 is
    matching leaves its sample at release 1 for the next pass, never at 2 without 2's hits."""
    from releases.public import RulesetSnapshot, release_records

    _scanned(corpus / "apks" / CLEAN, researcher, label="clean")
    bank = _scanned(corpus / "apks" / BANK, researcher)
    _shipped_hash(researcher, reviewer, hashlib.sha256(b"another app").hexdigest())
    assert _publish(reviewer) == 1
    verdicts_sync()
    _shipped_hash(researcher, reviewer, bank.sha256)
    assert _publish(reviewer) == 2
    _, rescan = stored_sample(corpus / "apks" / BANK, user=researcher)
    scan_run(scan_id=rescan.pk)  # under release 2: malicious
    _, late = stored_sample(corpus / "apks" / BANK, user=researcher)
    old = RulesetSnapshot(release=1, key="release-1", records=release_records(1))
    real = verdicts_module._match_again

    def a_late_scan_commits_meanwhile(*args, **kwargs):
        scan_run(scan_id=late.pk, ruleset_provider=lambda: old)
        return real(*args, **kwargs)

    monkeypatch.setattr(verdicts_module, "_match_again", a_late_scan_commits_meanwhile)
    verdicts_sync()
    bank.refresh_from_db()
    assert (bank.verdict, bank.verdict_release) == ("clean", 1)  # left for the next pass
    monkeypatch.setattr(verdicts_module, "_match_again", real)
    verdicts_sync()
    bank.refresh_from_db()
    assert (bank.verdict, bank.verdict_release) == ("malicious", 2)
