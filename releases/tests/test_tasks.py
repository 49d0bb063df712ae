from __future__ import annotations

import pytest

from portal.testing import wait_for
from releases.models import AdoptionSnapshot, Release, ReleaseState
from releases.services import release_publish
from releases.tasks import snapshot_adoption


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_publish_is_built_by_a_real_worker_on_queue_publish(
    update_repo, signatures, reviewer, celery_worker
) -> None:
    # given a worker that only takes the publish queue
    worker = celery_worker("publish")
    signatures.deploy()
    # when a reviewer publishes (the build is queued after commit)
    release = release_publish(by=reviewer)
    assert release.state == ReleaseState.BUILDING
    # then the worker builds it and the feed lists it
    built = wait_for(
        lambda: Release.objects.filter(number=release.number, state=ReleaseState.PUBLISHED).first(),
        timeout=90,
        what=f"release built; worker log:\n{worker.output()[-3000:]}",
    )
    assert built.state_sha256
    assert "full-1.bin" in update_repo.target_files()


@pytest.mark.django_db
def test_adoption_snapshot_counts_devices_per_installed_release(make_device) -> None:
    for installed in (0, 1, 1, 2):
        device, _ = make_device()
        device.installed_release = installed
        device.save(update_fields=["installed_release"])
    assert snapshot_adoption() == 3
    assert snapshot_adoption() == 3  # the same day again replaces, not adds
    rows = {r.release_number: r.devices for r in AdoptionSnapshot.objects.all()}
    assert rows == {0: 1, 1: 2, 2: 1}
