"""A real ``celery worker`` process on this run's database and broker (SQLite+filesystem by
default; PostgreSQL+Redis in the second CI pass)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from portal.models import WorkerHeartbeat
from portal.tasks import prune_heartbeats
from portal.testing import wait_for

pytestmark = pytest.mark.integration


def test_a_real_worker_beats_and_runs_tasks(celery_worker, client: Client) -> None:
    # given a worker row that has not been seen for two days, and no live worker
    WorkerHeartbeat.objects.create(
        hostname="gone@old", queues=[], last_seen=timezone.now() - timedelta(days=2)
    )
    assert client.get("/healthz").json()["worker"] == "down"

    # when a real worker process starts
    worker = celery_worker()
    wait_for(
        lambda: WorkerHeartbeat.objects.filter(hostname__startswith="test-").exists(),
        what=f"the worker's heartbeat\n{worker.output()}",
    )
    # then health reports it (and beat, which this test does not start, as down)
    body = client.get("/healthz").json()
    assert (body["database"], body["broker"], body["worker"]) == ("ok", "ok", "ok")
    assert body["message"] == "Down: beat."

    # and a task sent through the broker runs in it
    prune_heartbeats.delay()
    wait_for(
        lambda: not WorkerHeartbeat.objects.filter(hostname="gone@old").exists(),
        what=f"the prune task to run\n{worker.output()}",
    )
    assert WorkerHeartbeat.objects.filter(hostname__startswith="test-").exists()
