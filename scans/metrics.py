"""Scan jobs and retro-hunt chunks for Prometheus, read from the database at scrape time
(registered with portal.metrics in ScansConfig.ready; names in docs/observability.md).

Two aggregate queries per table, whatever its size: counts by status (with the oldest queued
and oldest running row), and the jobs that finished in the last ``RECENT`` as a gauge
histogram of their durations by outcome.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Model, Q, Sum
from django.utils import timezone
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric

from portal.metrics import age_seconds
from scans.models import FINISHED, ChunkStatus, HuntChunk, ScanJob, ScanStatus

# The window of the duration histograms and the "finished" counts.
RECENT = timedelta(minutes=15)
MINUTES = int(RECENT.total_seconds() // 60)
# Seconds; a scan's hard time limit is CELERY_TIME_LIMIT (360 s by default).
DURATION_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


def _by_status(
    model: type[Model], statuses: list[str], now: datetime
) -> tuple[dict[str, int], float, float]:
    """Rows per status (every status present, 0 if none) and the ages in seconds of the
    oldest queued and the longest-running row."""
    counts = dict.fromkeys(statuses, 0)
    oldest_queued = oldest_running = 0.0
    rows = (
        model._default_manager.order_by()
        .values("status")
        .annotate(n=Count("id"), queued=Min("queued_at"), started=Min("started_at"))
    )
    for row in rows:  # one row per status: a handful
        counts[row["status"]] = row["n"]
        if row["status"] == "queued":
            oldest_queued = age_seconds(row["queued"], now)
        elif row["status"] == "running":
            oldest_running = age_seconds(row["started"], now)
    return counts, oldest_queued, oldest_running


@dataclass(frozen=True)
class Recent:
    finished: int  # rows that finished within RECENT
    buckets: list[tuple[str, float]]  # cumulative ``le`` counts of those that had started
    seconds: float  # the sum of their durations


def _recent_durations(model: type[Model], outcomes: list[str], now: datetime) -> dict[str, Recent]:
    """Per outcome, the rows that finished within RECENT: one grouped query with one
    conditional count per bucket."""
    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    buckets = {
        f"le_{i}": Count("id", filter=Q(duration__lte=timedelta(seconds=bound)))
        for i, bound in enumerate(DURATION_BUCKETS)
    }
    rows = (
        model._default_manager.order_by()
        .filter(status__in=outcomes, finished_at__gte=now - RECENT)
        .annotate(duration=duration)
        .values("status")
        # a row that never started (cancelled while queued) counts as finished, not timed
        .annotate(n=Count("id"), timed=Count("started_at"), total=Sum("duration"), **buckets)
    )
    empty = [(str(b), 0.0) for b in DURATION_BUCKETS] + [("+Inf", 0.0)]
    out = {outcome: Recent(finished=0, buckets=empty, seconds=0.0) for outcome in outcomes}
    for row in rows:
        cumulative = [(str(b), float(row[f"le_{i}"])) for i, b in enumerate(DURATION_BUCKETS)]
        cumulative.append(("+Inf", float(row["timed"])))
        total = row["total"]
        out[row["status"]] = Recent(
            finished=row["n"],
            buckets=cumulative,
            seconds=total.total_seconds() if total is not None else 0.0,
        )
    return out


def _families(
    *, model: type[Model], prefix: str, noun: str, statuses: list[str], outcomes: list[str]
) -> Iterator[Metric]:
    now = timezone.now()
    counts, oldest_queued, oldest_running = _by_status(model, statuses, now)
    by_status = GaugeMetricFamily(
        f"portal_{prefix}s", f"{noun.capitalize()}s in the database by status.", labels=["status"]
    )
    for status, n in counts.items():
        by_status.add_metric([status], n)
    yield by_status
    yield GaugeMetricFamily(
        f"portal_{prefix}_oldest_queued_age_seconds",
        f"Age of the oldest {noun} still queued (0 if none): a stalled queue grows this.",
        value=oldest_queued,
    )
    yield GaugeMetricFamily(
        f"portal_{prefix}_oldest_running_age_seconds",
        f"Seconds since the longest-running {noun} started (0 if none): a stuck one grows this.",
        value=oldest_running,
    )
    recent = _recent_durations(model, outcomes, now)
    finished = GaugeMetricFamily(
        f"portal_{prefix}s_finished_recent",
        f"{noun.capitalize()}s that finished in the last {MINUTES} minutes, by outcome.",
        labels=["outcome"],
    )
    durations = GaugeHistogramMetricFamily(
        f"portal_{prefix}_recent_duration_seconds",
        f"Start-to-finish seconds of the {noun}s that finished in the last "
        f"{MINUTES} minutes, by outcome.",
        labels=["outcome"],
    )
    for outcome, figures in recent.items():
        finished.add_metric([outcome], figures.finished)
        durations.add_metric([outcome], figures.buckets, figures.seconds)
    yield finished
    yield durations


def scan_metrics() -> Iterator[Metric]:
    yield from _families(
        model=ScanJob,
        prefix="scan_job",
        noun="scan job",
        statuses=[str(s) for s in ScanStatus.values],
        outcomes=[str(s) for s in FINISHED],
    )


def hunt_chunk_metrics() -> Iterator[Metric]:
    yield from _families(
        model=HuntChunk,
        prefix="hunt_chunk",
        noun="retro-hunt chunk",
        statuses=[str(s) for s in ChunkStatus.values],
        outcomes=[str(s) for s in (ChunkStatus.DONE, ChunkStatus.FAILED, ChunkStatus.CANCELLED)],
    )
