"""Retro-hunts with real ``celery worker`` processes on queue ``hunts``: two workers share one
hunt chunk by chunk."""

from __future__ import annotations

from pathlib import Path

import pytest

from portal.testing import wait_for
from scans.models import HuntStatus, RetroHunt
from scans.retrohunts import retrohunt_create
from scans.tests.conftest import corpus_files
from scans.tests.factories import stored_sample

pytestmark = [pytest.mark.integration]


def test_two_workers_share_the_chunks_of_one_hunt(
    celery_worker, researcher, corpus: Path, settings, monkeypatch
) -> None:
    # given 20 stored apps, chunks of 2 and a short pause per sample (so both workers get work)
    for path in corpus_files()[:20]:
        stored_sample(path, label="clean", user=researcher)
    settings.RETROHUNT_CHUNK_SIZE = 2
    monkeypatch.setenv("RETROHUNT_TEST_DELAY_SECONDS", "0.3")
    first = celery_worker("hunts")
    second = celery_worker("hunts")

    # when a hunt starts
    hunt = retrohunt_create(
        user=researcher,
        rule={"kind": "yara", "body": 'rule any_dex { strings: $d = "dex\\n" condition: $d }'},
    )

    # then both workers run chunks and the hunt finishes with every sample scanned
    wait_for(
        lambda: RetroHunt.objects.get(pk=hunt.pk).status == HuntStatus.FINISHED,
        timeout=180,
        what=f"the hunt to finish; logs:\n{first.output()[-3000:]}\n{second.output()[-3000:]}",
    )
    hunt.refresh_from_db()
    assert (hunt.scanned, hunt.total, hunt.chunks_done) == (20, 20, 10)
    names = set(hunt.chunks.values_list("worker_name", flat=True))
    assert len(names) == 2, names
    assert all(n.startswith("test-") for n in names), names
    assert hunt.match_count > 10  # most corpus apps carry a DEX magic
