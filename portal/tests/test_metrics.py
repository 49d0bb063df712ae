"""GET /metrics: who may scrape it, HTTP figures by view, and the fleet figures read from the
database and the broker (docs/observability.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from portal import metrics
from portal.celery import app
from portal.models import User, WorkerHeartbeat
from releases.models import Release, ReleaseState
from scans.models import ChunkStatus, HuntChunk, RetroHunt, Sample, ScanJob, ScanStatus

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: Client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
def metrics_client(db: None) -> Client:
    return Client()  # REMOTE_ADDR 127.0.0.1, like Prometheus on the same machine


# --- HTTP requests ---------------------------------------------------------------------------
def test_requests_are_counted_by_view_name_not_by_path(
    metrics_client: Client, client: Client, researcher: User
) -> None:
    # given a scrape before anything happened
    labels = {"view": "threats:signature-detail", "method": "GET"}
    before = scrape(metrics_client)
    count_before = value(before, "portal_http_requests_total", **labels, status="404") or 0
    timed_before = value(before, "portal_http_request_duration_seconds_count", **labels) or 0

    # when a researcher opens a signature page that does not exist
    client.force_login(researcher)
    assert client.get("/signatures/987654/").status_code == 404

    # then the next scrape counts one 404 for that view, and timed it
    after = scrape(metrics_client)
    assert value(after, "portal_http_requests_total", **labels, status="404") == count_before + 1
    assert value(after, "portal_http_request_duration_seconds_count", **labels) == timed_before + 1
    # and no series carries the id from the path
    assert not any("987654" in str(key) for key in after)


def test_a_login_redirect_is_counted_under_the_page_it_protects(
    metrics_client: Client, client: Client
) -> None:
    labels = {"view": "audit", "method": "GET", "status": "302"}
    before = value(scrape(metrics_client), "portal_http_requests_total", **labels) or 0
    # when an anonymous visitor opens the audit log (redirected to log in before any view)
    assert client.get("/audit/").status_code == 302
    # then the redirect is counted under the audit page's name
    assert value(scrape(metrics_client), "portal_http_requests_total", **labels) == before + 1


@pytest.mark.integration
def test_one_scrape_sums_the_counters_of_every_web_process(metrics_client: Client) -> None:
    # given another process (as a second gunicorn worker would) that answered 3 requests
    view = f"test-{uuid.uuid4().hex[:8]}"
    code = (
        "import django; django.setup()\n"
        "from portal.metrics import http_requests\n"
        f"http_requests.labels({view!r}, 'GET', '200').inc(3)\n"
    )
    env = {**os.environ, "PORTAL_VAR_DIR": str(settings.VAR_DIR)}
    env.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    # and this process answered one more for the same view
    metrics.http_requests.labels(view, "GET", "200").inc()

    # then one scrape reports both together
    samples = scrape(metrics_client)
    assert value(samples, "portal_http_requests_total", view=view, method="GET", status="200") == 4


# --- access --------------------------------------------------------------------------------
def test_metrics_need_no_login_from_an_allowed_address(metrics_client: Client) -> None:
    response = metrics_client.get("/metrics")
    assert response.status_code == 200
    assert b"portal_broker_up" in response.content


def test_a_disallowed_address_gets_403_json(metrics_client: Client) -> None:
    response = metrics_client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"message", "extra"}
    assert body["extra"] == {}
    assert "portal_" not in response.content.decode()


def test_the_bearer_token_lets_a_scraper_in_and_a_wrong_one_does_not(
    metrics_client: Client, settings
) -> None:
    settings.METRICS_TOKEN = "a-long-random-metrics-token"
    far = "203.0.113.9"
    ok = metrics_client.get(
        "/metrics", REMOTE_ADDR=far, HTTP_AUTHORIZATION="Bearer a-long-random-metrics-token"
    )
    assert ok.status_code == 200
    assert b"portal_workers_live" in ok.content
    for wrong in (
        "Bearer a-long-random-metrics-tokeN",
        "Bearer ",
        "Token a-long-random-metrics-token",
    ):
        response = metrics_client.get("/metrics", REMOTE_ADDR=far, HTTP_AUTHORIZATION=wrong)
        assert response.status_code == 403, wrong


def test_without_a_token_set_no_bearer_header_gets_in(metrics_client: Client, settings) -> None:
    settings.METRICS_TOKEN = ""
    response = metrics_client.get(
        "/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer "
    )
    assert response.status_code == 403


def test_allowed_addresses_may_be_networks(metrics_client: Client, settings) -> None:
    # given Prometheus on a monitoring subnet, and loopback no longer trusted
    settings.METRICS_ALLOWED_IPS = ["10.20.0.0/16", "not-an-address"]
    assert metrics_client.get("/metrics", REMOTE_ADDR="10.20.3.4").status_code == 200
    assert metrics_client.get("/metrics", REMOTE_ADDR="::ffff:10.20.3.4").status_code == 200
    assert metrics_client.get("/metrics", REMOTE_ADDR="10.21.0.1").status_code == 403
    assert metrics_client.get("/metrics").status_code == 403  # 127.0.0.1


# --- the broker -----------------------------------------------------------------------------
@pytest.fixture
def empty_broker() -> Iterator[None]:
    app.control.purge()
    yield
    app.control.purge()


def test_queue_depth_counts_the_messages_waiting_in_each_queue(
    metrics_client: Client, empty_broker: None
) -> None:
    # given messages sent through the real broker and no worker to take them
    sent = {"scans": 3, "hunts": 2, "default": 1}
    for queue, n in sent.items():
        for _ in range(n):
            app.send_task("portal.prune_heartbeats", queue=queue)

    # then the scrape reports each queue's depth
    samples = scrape(metrics_client)
    assert value(samples, "portal_broker_up") == 1
    for queue in settings.CELERY_TASK_QUEUES_NAMES:
        assert value(samples, "portal_celery_queue_length", queue=queue) == sent.get(queue, 0)


def test_a_broker_that_does_not_answer_is_reported_not_fatal(
    metrics_client: Client, settings
) -> None:
    # given a broker URL nothing listens on (port 9 on loopback)
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"
    samples = scrape(metrics_client)
    assert value(samples, "portal_broker_up") == 0
    assert not any(name == "portal_celery_queue_length" for name, _ in samples)
    # and the database figures are still there
    assert value(samples, "portal_metrics_source_up", source="scans") == 1


def test_a_failing_source_costs_only_its_own_figures(
    metrics_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> Iterator[Metric]:
        raise RuntimeError("database gone")

    monkeypatch.setattr(metrics, "PROVIDERS", [*metrics.PROVIDERS, ("broken", broken)])
    samples = scrape(metrics_client)
    assert value(samples, "portal_metrics_source_up", source="broken") == 0
    assert value(samples, "portal_metrics_source_up", source="workers") == 1


# --- workers -------------------------------------------------------------------------------
def test_worker_gauges_follow_the_heartbeat_rows(metrics_client: Client) -> None:
    now = timezone.now()
    WorkerHeartbeat.objects.create(hostname="scan1@a", queues=["scans", "hunts"], last_seen=now)
    WorkerHeartbeat.objects.create(hostname="scan2@b", queues=["scans"], last_seen=now)
    WorkerHeartbeat.objects.create(
        hostname="pub@c", queues=["publish"], last_seen=now - timedelta(minutes=5)
    )

    samples = scrape(metrics_client)

    live = {
        q: value(samples, "portal_workers_live", queue=q)
        for q in ("scans", "hunts", "publish", "default")
    }
    assert live == {"scans": 2, "hunts": 1, "publish": 0, "default": 0}
    stale_age = value(samples, "portal_worker_heartbeat_age_seconds", hostname="pub@c") or 0
    assert 299 <= stale_age < 400
    fresh_age = value(samples, "portal_worker_heartbeat_age_seconds", hostname="scan1@a")
    assert fresh_age is not None
    assert fresh_age < 60


# --- scans, hunt chunks, releases ------------------------------------------------------------
@pytest.fixture
def sample(db: None) -> Sample:
    return Sample.objects.create(
        sha256="ab" * 32,
        md5="0" * 32,
        sha1="0" * 40,
        size=1,
        file="samples/ab/x",
        last_seen=timezone.now(),
    )


def make_scan(
    sample: Sample, status: str, *, ago: float = 0, took: float | None = None, queued_ago: float = 0
) -> ScanJob:
    """A scan in ``status``; a finished one ended ``ago`` seconds ago after running ``took``."""
    now = timezone.now()
    scan = ScanJob.objects.create(sample=sample, status=status)
    fields: dict[str, object] = {
        "queued_at": now - timedelta(seconds=queued_ago or ago + (took or 0))
    }
    if status == ScanStatus.RUNNING:
        fields["started_at"] = now - timedelta(seconds=ago)
    elif took is not None:
        fields["finished_at"] = now - timedelta(seconds=ago)
        fields["started_at"] = now - timedelta(seconds=ago + took)
    ScanJob.objects.filter(pk=scan.pk).update(**fields)
    return scan


def test_scan_figures_follow_the_scan_jobs(metrics_client: Client, sample: Sample) -> None:
    # given two queued scans (the oldest for ten minutes), one running for 30 s, three that
    # succeeded just now in 1, 4 and 40 s, one that failed in 2 s, and one from yesterday
    make_scan(sample, ScanStatus.QUEUED, queued_ago=600)
    make_scan(sample, ScanStatus.QUEUED, queued_ago=5)
    make_scan(sample, ScanStatus.RUNNING, ago=30)
    for took in (1, 4, 40):
        make_scan(sample, ScanStatus.SUCCEEDED, ago=10, took=took)
    make_scan(sample, ScanStatus.FAILED, ago=10, took=2)
    make_scan(sample, ScanStatus.SUCCEEDED, ago=86400, took=3)

    samples = scrape(metrics_client)

    # then the counts by status are the rows
    by_status = {s: value(samples, "portal_scan_jobs", status=s) for s in ScanStatus.values}
    assert by_status == {"queued": 2, "running": 1, "succeeded": 4, "failed": 1}
    # the oldest queued and the longest-running show how long they have waited
    assert 599 <= (value(samples, "portal_scan_job_oldest_queued_age_seconds") or 0) < 700
    assert 29 <= (value(samples, "portal_scan_job_oldest_running_age_seconds") or 0) < 100
    # the last 15 minutes: what finished, by outcome, and how long it took
    assert value(samples, "portal_scan_jobs_finished_recent", outcome="succeeded") == 3
    assert value(samples, "portal_scan_jobs_finished_recent", outcome="failed") == 1
    duration = "portal_scan_job_recent_duration_seconds_bucket"
    assert value(samples, duration, outcome="succeeded", le="2.5") == 1
    assert value(samples, duration, outcome="succeeded", le="5.0") == 2
    assert value(samples, duration, outcome="succeeded", le="+Inf") == 3
    assert value(samples, duration, outcome="failed", le="2.5") == 1
    total = value(samples, "portal_scan_job_recent_duration_seconds_gsum", outcome="succeeded")
    assert total == pytest.approx(45, abs=0.01)


def test_hunt_chunk_figures_follow_the_chunks(metrics_client: Client, db: None) -> None:
    hunt = RetroHunt.objects.create()
    now = timezone.now()

    def chunk(index: int, status: str, **times: timedelta) -> None:
        HuntChunk.objects.create(
            hunt=hunt,
            index=index,
            first_id=1,
            last_id=2,
            sample_count=2,
            status=status,
            **{name: now - ago for name, ago in times.items()},
        )

    # given a queued chunk, a running one, two done in 20 and 200 s, and one cancelled
    # before it started
    chunk(0, ChunkStatus.QUEUED)
    chunk(1, ChunkStatus.RUNNING, started_at=timedelta(seconds=90))
    chunk(2, ChunkStatus.DONE, started_at=timedelta(seconds=30), finished_at=timedelta(seconds=10))
    chunk(3, ChunkStatus.DONE, started_at=timedelta(seconds=210), finished_at=timedelta(seconds=10))
    chunk(4, ChunkStatus.CANCELLED, finished_at=timedelta(seconds=5))

    samples = scrape(metrics_client)

    by_status = {s: value(samples, "portal_hunt_chunks", status=s) for s in ChunkStatus.values}
    assert by_status == {"queued": 1, "running": 1, "done": 2, "cancelled": 1, "failed": 0}
    assert 89 <= (value(samples, "portal_hunt_chunk_oldest_running_age_seconds") or 0) < 200
    assert value(samples, "portal_hunt_chunks_finished_recent", outcome="done") == 2
    assert value(samples, "portal_hunt_chunks_finished_recent", outcome="cancelled") == 1
    duration = "portal_hunt_chunk_recent_duration_seconds_bucket"
    assert value(samples, duration, outcome="done", le="30.0") == 1
    assert value(samples, duration, outcome="done", le="300.0") == 2
    # the cancelled chunk never ran, so it has no duration
    assert value(samples, duration, outcome="cancelled", le="+Inf") == 0


def test_release_figures_show_the_last_published_build(
    metrics_client: Client, reviewer: User
) -> None:
    def release(number: int, state: str, build_seconds: float | None = None) -> None:
        Release.objects.create(
            number=number,
            state=state,
            created_by=reviewer,
            pins=b"",
            build_seconds=build_seconds,
            published_at=timezone.now() if state == ReleaseState.PUBLISHED else None,
        )

    # before any release is published there is no "last published" series
    assert value(scrape(metrics_client), "portal_release_last_published_number") is None

    release(1, ReleaseState.PUBLISHED, 3.5)
    release(2, ReleaseState.PUBLISHED, 7.25)
    release(3, ReleaseState.FAILED)
    release(4, ReleaseState.BUILDING)

    samples = scrape(metrics_client)
    assert value(samples, "portal_release_last_published_number") == 2
    assert value(samples, "portal_release_last_published_build_seconds") == 7.25
    assert (value(samples, "portal_release_last_published_timestamp_seconds") or 0) > 0
    by_state = {s: value(samples, "portal_releases", state=s) for s in ReleaseState.values}
    assert by_state == {"building": 1, "published": 2, "failed": 1}


def test_fleet_figures_take_a_handful_of_queries(
    metrics_client: Client, sample: Sample, django_assert_max_num_queries
) -> None:
    # given many rows, a scrape still runs a fixed number of aggregate queries: heartbeats 1,
    # scans 2, hunt chunks 2, releases 2
    for _ in range(20):
        make_scan(sample, ScanStatus.SUCCEEDED, ago=5, took=1)
    with django_assert_max_num_queries(7):
        scrape(metrics_client)
