"""The embedded broker (portal/broker.py): whole messages only, each delivered once, and a
damaged message never takes a worker down (celery/kombu#1551)."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from kombu import Connection

from portal.testing import wait_for
from scans.models import ScanJob, ScanStatus
from scans.tests.conftest import SMALL_APK
from scans.tests.factories import stored_sample

N_PRODUCERS, PER_PRODUCER = 3, 300


def _options(root: Path) -> dict[str, Any]:
    for name in ("queue", "processed", "control"):
        (root / name).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(root / "queue"),
        "data_folder_out": str(root / "queue"),
        "processed_folder": str(root / "processed"),
        "control_folder": str(root / "control"),
        "polling_interval": 0.01,
    }


def _produce(root: str, producer: int) -> None:
    import portal.celery  # noqa: F401 - registers the transport in this process

    with Connection("filesystem://", transport_options=_options(Path(root))) as conn:
        queue = conn.SimpleQueue("burst")
        for i in range(PER_PRODUCER):
            # large bodies make a half-written file likely with kombu's own transport
            queue.put({"producer": producer, "i": i, "pad": "x" * 20_000})
        queue.close()


def _consume(root: str, seen: Any, stop_after: int) -> None:
    import portal.celery  # noqa: F401

    with Connection("filesystem://", transport_options=_options(Path(root))) as conn:
        queue = conn.SimpleQueue("burst")
        while True:
            try:
                message = queue.get(timeout=3)
            except queue.Empty:
                return
            seen.append((message.payload["producer"], message.payload["i"]))
            message.ack()
            if len(seen) >= stop_after:
                return


def test_a_burst_from_several_producers_is_delivered_whole_and_once(tmp_path: Path) -> None:
    # given producers and consumers in separate processes sharing one broker folder
    ctx = multiprocessing.get_context("fork")
    total = N_PRODUCERS * PER_PRODUCER
    with ctx.Manager() as manager:
        seen = manager.list()
        consumers = [
            ctx.Process(target=_consume, args=(str(tmp_path), seen, total)) for _ in range(2)
        ]
        producers = [
            ctx.Process(target=_produce, args=(str(tmp_path), p)) for p in range(N_PRODUCERS)
        ]
        # when they all run at once
        for proc in consumers + producers:
            proc.start()
        for proc in producers + consumers:
            proc.join(timeout=120)
        # then every message arrived exactly once and no consumer died on a partial file
        assert [proc.exitcode for proc in consumers + producers] == [0] * 5
        delivered = list(seen)
    assert len(delivered) == total
    assert len(set(delivered)) == total
    assert not (tmp_path / "damaged").exists()


def test_a_damaged_message_is_set_aside_and_the_next_one_delivered(tmp_path: Path) -> None:
    import portal.celery  # noqa: F401

    options = _options(tmp_path)
    with Connection("filesystem://", transport_options=options) as conn:
        queue = conn.SimpleQueue("q")
        # given a truncated message file ahead of a good one
        (tmp_path / "queue" / "000000000000001_bad.q.msg").write_bytes(b'{"body": "trunc')
        queue.put({"ok": True})
        # when a consumer reads the queue, then it skips the damaged file and gets the good one
        message = queue.get(timeout=5)
        assert message.payload == {"ok": True}
        message.ack()
        queue.close()
    assert (tmp_path / "damaged" / "000000000000001_bad.q.msg").read_bytes() == b'{"body": "trunc'
    assert os.listdir(tmp_path / "queue") == []


@pytest.mark.integration
@pytest.mark.embedded_broker
def test_a_worker_survives_a_half_written_message_and_keeps_scanning(
    celery_worker, researcher, corpus: Path
) -> None:
    # given a scans worker and a half-written message file in its queue
    worker = celery_worker("scans")
    queue_dir = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])  # type: ignore[arg-type]
    (queue_dir / "000000000000001_partial.scans.msg").write_bytes(b'{"body": "eyJ')
    # when a scan is queued behind it
    _, scan = stored_sample(corpus / "apks" / SMALL_APK, user=researcher)
    # then the worker is still alive and finishes the scan
    wait_for(
        lambda: ScanJob.objects.get(pk=scan.pk).status == ScanStatus.SUCCEEDED,
        timeout=120,
        what=f"the scan to succeed; worker log:\n{worker.output()}",
    )
    assert worker.proc is not None
    assert worker.proc.poll() is None
    assert "does not decode" in worker.output()
