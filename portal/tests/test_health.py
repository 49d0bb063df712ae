from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from portal.models import WorkerHeartbeat
from portal.selectors import BEAT_PREFIX


@pytest.fixture
def live_worker_row(db: None) -> WorkerHeartbeat:
    """A live worker on every queue, and a live beat."""
    WorkerHeartbeat.objects.create(
        hostname=f"{BEAT_PREFIX}test", queues=[], last_seen=timezone.now()
    )
    return WorkerHeartbeat.objects.create(
        hostname="w1@test",
        queues=["default", "scans", "hunts", "publish"],
        last_seen=timezone.now(),
    )


def test_healthz_ok_needs_no_login(client: Client, live_worker_row: WorkerHeartbeat) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "broker": "ok",
        "worker": "ok",
        "beat": "ok",
    }


def test_healthz_503_when_the_broker_is_unreachable(
    client: Client, live_worker_row: WorkerHeartbeat, settings
) -> None:
    # given a broker URL nothing listens on (port 9 on loopback: discard, closed here)
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"
    response = client.get("/healthz")
    # then health names the broker as down, and nothing else
    assert response.status_code == 503
    body = response.json()
    assert body["broker"] == "down"
    assert body["database"] == "ok"
    assert body["message"] == "Down: broker."
    assert "127.0.0.1" not in response.content.decode()


def test_healthz_503_when_no_worker_has_beaten_recently(client: Client, db: None) -> None:
    WorkerHeartbeat.objects.create(
        hostname="old@test", queues=[], last_seen=timezone.now() - timedelta(minutes=5)
    )
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["worker"] == "down"


def test_healthz_names_the_queues_no_live_worker_consumes(client: Client, db: None) -> None:
    # given scan and hunt workers on two machines, and beat, but nobody on publish or default
    now = timezone.now()
    WorkerHeartbeat.objects.create(hostname="scans@a", queues=["scans"], last_seen=now)
    WorkerHeartbeat.objects.create(hostname="hunts@b", queues=["hunts"], last_seen=now)
    WorkerHeartbeat.objects.create(hostname=f"{BEAT_PREFIX}a", queues=[], last_seen=now)
    # when health is asked, then it is down and says which queues nobody consumes
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert (body["worker"], body["beat"]) == ("down", "ok")
    assert body["queues_without_worker"] == ["default", "publish"]
    assert "No live worker consumes: default, publish." in body["message"]


def test_healthz_503_when_beat_has_stopped(client: Client, live_worker_row) -> None:
    WorkerHeartbeat.objects.filter(hostname__startswith=BEAT_PREFIX).update(
        last_seen=timezone.now() - timedelta(minutes=5)
    )
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["message"] == "Down: beat."
