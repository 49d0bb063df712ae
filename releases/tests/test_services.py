from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from portal.exceptions import ApplicationError, ConflictError, ForbiddenError, RateLimitedError
from portal.models import AuditEntry
from releases import services
from releases.models import Release, ReleaseFile, ReleaseState
from releases.public import current_ruleset, release_records
from releases.services import release_build, release_halt, release_publish, release_rollout
from releases.tuf_repo import UpdateRepository
from threats.models import Status
from threats.public import records_for_pins


def publish(by, **kwargs) -> Release:
    release = release_publish(by=by, enqueue=False, **kwargs)
    return release_build(number=release.number)


@pytest.mark.django_db
def test_publish_builds_full_bundle_and_delta_and_numbers_go_up(
    update_repo: UpdateRepository, signatures, reviewer
) -> None:
    # given two deployed signatures and one noisy
    a = signatures.deploy()
    signatures.deploy()
    signatures.deploy(status=Status.NOISY)
    # when a reviewer publishes twice, the second time with one more signature and a revision
    first = publish(reviewer)
    signatures.deploy()
    signatures.revise(a)
    second = publish(reviewer)
    # then numbers go up and both are published with their files listed in TUF
    assert (first.number, second.number) == (1, 2)
    assert first.state == second.state == ReleaseState.PUBLISHED
    assert (second.signature_count, second.noisy_count) == (4, 1)
    assert (second.added_count, second.changed_count, second.removed_count) == (1, 1, 0)
    targets = update_repo.target_files()
    assert {"full-1.bin", "full-2.bin", "delta-1-2.bin"} <= set(targets)
    assert targets["delta-1-2.bin"].custom["state_sha256"] == second.state_sha256
    assert ReleaseFile.objects.filter(release=second).count() == 2
    # and the records of the release are what scans use
    records = release_records(2)
    assert [r.id for r in records] == sorted(r.id for r in records)
    assert sum(r.noisy for r in records) == 1
    assert current_ruleset().key == "release-2"
    assert AuditEntry.objects.filter(action="release.publish").count() == 2


@pytest.mark.django_db
def test_only_reviewers_publish(update_repo, researcher, auditor) -> None:
    for user in (researcher, auditor):
        with pytest.raises(ForbiddenError):
            release_publish(by=user, enqueue=False)
    assert not Release.objects.exists()


@pytest.mark.django_db
def test_publish_without_a_repository_is_refused_before_taking_a_number(
    settings, tmp_path: Path, reviewer
) -> None:
    settings.RELEASE_REPO_DIR = tmp_path / "none"
    settings.TUF_KEYS_DIR = tmp_path / "no-keys"
    with pytest.raises(ApplicationError, match="tuf_keys init"):
        release_publish(by=reviewer, enqueue=False)
    assert not Release.objects.exists()


@pytest.mark.django_db
def test_a_failed_build_leaves_devices_on_the_previous_release(
    update_repo: UpdateRepository, signatures, reviewer, monkeypatch
) -> None:
    # given release 1 published
    signatures.deploy()
    publish(reviewer)
    timestamp = (update_repo.metadata_dir / "timestamp.json").read_bytes()
    # when the build of release 2 raises midway (after the full bundle, while making deltas)
    signatures.deploy()

    def boom(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(services, "build_delta", boom)
    second = publish(reviewer)
    # then release 2 is failed, timestamp.json is byte for byte what it was
    assert second.state == ReleaseState.FAILED
    assert "disk full" in second.error
    assert (update_repo.metadata_dir / "timestamp.json").read_bytes() == timestamp
    assert "full-2.bin" not in update_repo.target_files()
    assert current_ruleset().release == 1
    # and the next publish works and takes number 3
    monkeypatch.undo()
    assert publish(reviewer).number == 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_publishes_coalesce_into_one_build(update_repo, signatures, reviewer) -> None:
    # given a deployed signature
    signatures.deploy()
    numbers: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            numbers.append(release_publish(by=reviewer, enqueue=False).number)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    # when four publishes race
    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then one release is queued, and the other three are told it is still building
    assert numbers == [1]
    assert [type(e) for e in errors] == [ConflictError] * 3
    assert all(e.extra["building"] == 1 for e in errors)  # type: ignore[attr-defined]
    assert "Release 1 is still being built" in str(errors[0])
    # and once it is built, the next publish goes through
    release_build(number=1)
    assert release_publish(by=reviewer, enqueue=False).number == 2


@pytest.mark.django_db
def test_publishing_is_throttled_per_reviewer(
    update_repo, signatures, reviewer, make_user, settings
):
    # given a limit of 2 publishes a minute
    settings.RELEASE_PUBLISH_RATE = "2/min"
    signatures.deploy()
    for _ in range(2):
        publish(reviewer)
    # when the same reviewer publishes a third time, then it is refused with a wait
    with pytest.raises(RateLimitedError) as refused:
        publish(reviewer)
    assert 1 <= refused.value.retry_after <= 60
    # and another reviewer is not locked out by it
    other = make_user("reviewer", username="victor")
    assert publish(other).state == ReleaseState.PUBLISHED


@pytest.mark.django_db
def test_a_build_whose_message_was_lost_is_sent_again(
    update_repo, signatures, reviewer, settings, monkeypatch
) -> None:
    # given a release published long ago whose build never ran
    signatures.deploy()
    release = release_publish(by=reviewer, enqueue=False)
    Release.objects.filter(pk=release.pk).update(
        created_at=timezone.now()
        - timedelta(seconds=settings.RELEASE_BUILD_RESEND_AFTER_SECONDS + 5)
    )
    sent: list[tuple[int, ...]] = []
    monkeypatch.setattr(
        "releases.tasks.build_release.apply_async", lambda args: sent.append(tuple(args))
    )
    # when the recovery pass runs, then its build is sent again (and a fresh one is not)
    assert services.builds_resend() == [release.number]
    assert sent == [(release.number,)]


@pytest.mark.django_db
def test_rollout_and_halt_are_audited_and_checked(update_repo, signatures, reviewer, researcher):
    signatures.deploy()
    release = publish(reviewer)
    with pytest.raises(ApplicationError):
        release_rollout(number=release.number, percent=0, by=reviewer)
    with pytest.raises(ForbiddenError):
        release_rollout(number=release.number, percent=50, by=researcher)
    assert release_rollout(number=1, percent=25, by=reviewer).rollout_percent == 25
    assert release_halt(number=1, by=reviewer, reason="false positives").halted
    entry = AuditEntry.objects.get(action="release.rollout")
    assert entry.changes == {"rollout_percent": {"before": 100, "after": 25}}
    assert AuditEntry.objects.filter(action="release.halt").exists()
    assert current_ruleset().release is None  # a halted release is no scan's ruleset


@pytest.mark.django_db
def test_deltas_only_from_retained_releases(update_repo, signatures, reviewer, settings):
    settings.RELEASE_DELTA_RETENTION = 2
    for _ in range(4):
        signatures.deploy()
        publish(reviewer)
    listed = set(update_repo.target_files())
    assert {"delta-3-4.bin", "delta-2-4.bin", "full-4.bin", "full-3.bin"} <= listed
    assert "delta-1-4.bin" not in listed
    assert "full-2.bin" not in listed  # de-listed once out of the window
    assert not ReleaseFile.objects.get(target="full-2.bin").listed


@pytest.mark.django_db
def test_only_the_newest_releases_keep_their_deltas_listed(
    update_repo, signatures, reviewer, settings
):
    settings.RELEASE_DELTA_LISTED_RELEASES = 2
    for _ in range(5):
        signatures.deploy()
        publish(reviewer)
    listed = set(update_repo.target_files())
    # every phone downloads targets.json after each change: old deltas leave it...
    assert {t for t in listed if t.startswith("delta-")} == {
        "delta-4-5.bin",
        "delta-3-5.bin",
        "delta-2-5.bin",
        "delta-1-5.bin",
        "delta-3-4.bin",
        "delta-2-4.bin",
        "delta-1-4.bin",
    }
    # ...while full bundles stay for the retention window
    assert {f"full-{n}.bin" for n in range(1, 6)} <= listed


@pytest.mark.django_db
def test_a_release_ships_the_reviewed_severity_not_a_pending_downgrade(
    update_repo: UpdateRepository, researcher, reviewer
) -> None:
    from portal.testing import gate
    from releases.selectors import release_diff
    from threats import services as threats_services
    from threats.models import Family

    # given a deployed malicious signature
    family = Family.objects.create(name="Joker", category="sms-fraud", severity="malicious")
    sig = threats_services.signature_create(
        actor=researcher, kind="hash", body="d" * 64, family=family
    )
    threats_services.signature_submit(signature=sig, actor=researcher)
    gate(sig)
    threats_services.signature_approve(signature=sig, actor=reviewer)
    # when its author downgrades it to riskware and a release is published before review
    threats_services.signature_update(signature=sig, actor=researcher, severity="riskware")
    threats_services.signature_submit(signature=sig, actor=researcher)
    gate(sig)
    first = publish(reviewer)
    # then that release ships the reviewed revision, malicious
    [record] = release_records(first.number)
    assert (record.revision, record.severity) == (1, "malicious")
    # when another reviewer approves the downgrade and the next release is published
    threats_services.signature_approve(signature=sig, actor=reviewer)
    second = publish(reviewer)
    # then the new release ships it, its diff names the change, and the first release
    # rebuilt from its pins is still exactly what was reviewed then
    [record] = release_records(second.number)
    assert (record.revision, record.severity) == (2, "riskware")
    [change] = release_diff(second)["changed"]
    assert (change["before"]["severity"], change["after"]["severity"]) == ("malicious", "riskware")
    rebuilt = records_for_pins(services._pins_of(first))
    assert [(r.revision, r.severity) for r in rebuilt] == [(1, "malicious")]


@pytest.mark.django_db
def test_ruleset_from_pins_equals_the_shipped_bundle_record_for_record(
    update_repo: UpdateRepository, signatures, reviewer, settings, tmp_path
) -> None:
    # given signatures at revisions 1 to 4 (so revision numbers and row ids differ), a noisy
    # one, and a release of them
    sigs = [signatures.deploy() for _ in range(6)]
    for i, sig in enumerate(sigs):
        for _ in range(i % 4):
            signatures.revise(sig)
    signatures.set_status(sigs[2], Status.NOISY)
    release = publish(reviewer)
    # and one signature revised again after the release was published (its pin is no
    # longer the deployed revision)
    signatures.revise(sigs[5])
    # when a worker on another machine, without the TUF folder, builds the ruleset from the
    # bundle in shared storage, and another one from the pins alone
    settings.RELEASE_REPO_DIR = tmp_path / "not-on-this-machine"
    from releases import public as releases_api

    releases_api._cache.clear()
    from_bundle = releases_api._records_from_bundle(release.number, release.state_sha256)
    from_pins = releases_api._records_from_pins(release.number)
    # then both are exactly what the release ships, record for record
    assert from_bundle is not None
    assert list(from_pins) == list(from_bundle)
    assert sorted((r.id, r.revision) for r in from_bundle) == sorted(
        (s.pk, 1 + i % 4) for i, s in enumerate(sigs)
    )
    assert [r.id for r in from_bundle if r.noisy] == [sigs[2].pk]
    assert release_records(release.number) == from_bundle


@pytest.mark.django_db
def test_a_damaged_bundle_in_storage_falls_back_to_the_pins(
    update_repo: UpdateRepository, signatures, reviewer
) -> None:
    # given a release whose bundle in shared storage was overwritten with other bytes
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from releases import public as releases_api

    sig = signatures.deploy()
    signatures.revise(sig)
    release = publish(reviewer)
    full = ReleaseFile.objects.get(release=release, kind="full")
    name = f"releases/full/{full.sha256}.bundle"
    default_storage.delete(name)
    default_storage.save(name, ContentFile(b"not a bundle"))
    releases_api._cache.clear()
    # when a worker reads the release, then it refuses the bytes and uses the pins instead
    assert releases_api._records_from_bundle(release.number, release.state_sha256) is None
    [record] = release_records(release.number)
    assert (record.id, record.revision) == (sig.pk, 2)
