"""Releases for Prometheus, read from the database at scrape time (registered with
portal.metrics in ReleasesConfig.ready; names in docs/observability.md). Two queries."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from portal.metrics import age_seconds
from releases.models import Release, ReleaseState


def release_metrics() -> Iterator[Metric]:
    now = timezone.now()
    counts = dict.fromkeys([str(s) for s in ReleaseState.values], 0)
    oldest_building = 0.0
    rows = (
        Release.objects.order_by()
        .values("state")
        .annotate(n=Count("id"), created=Min("created_at"))
    )
    for row in rows:  # one row per state
        counts[row["state"]] = row["n"]
        if row["state"] == ReleaseState.BUILDING:
            oldest_building = age_seconds(row["created"], now)
    by_state = GaugeMetricFamily(
        "portal_releases", "Releases in the database by state.", labels=["state"]
    )
    for state, n in counts.items():
        by_state.add_metric([state], n)
    yield by_state
    yield GaugeMetricFamily(
        "portal_release_oldest_building_age_seconds",
        "Seconds since the oldest release still building was created (0 if none).",
        value=oldest_building,
    )

    last = (
        Release.objects.filter(state=ReleaseState.PUBLISHED)
        .order_by("-number")
        .values("number", "build_seconds", "published_at")
        .first()
    )
    if last is None:
        return  # nothing published yet: no series rather than a made-up 0
    yield GaugeMetricFamily(
        "portal_release_last_published_number",
        "Number of the newest published release (halted or not).",
        value=last["number"],
    )
    if last["build_seconds"] is not None:
        yield GaugeMetricFamily(
            "portal_release_last_published_build_seconds",
            "Seconds the newest published release took to build.",
            value=last["build_seconds"],
        )
    if last["published_at"] is not None:
        yield GaugeMetricFamily(
            "portal_release_last_published_timestamp_seconds",
            "When the newest published release was published (Unix time).",
            value=last["published_at"].timestamp(),
        )
