"""Read paths of detection reports: what people see of them, per signature and per release.

Two sources, never counted twice: the anonymous daily roll-ups (days already rolled up) and
the raw reports of days not rolled up yet (today, and any day the beat task has not reached).
Distinct devices can only be counted from raw reports, so "devices" means devices in the raw
window (the last ``DEVICE_REPORT_RETENTION_DAYS`` days); reports, first and last seen cover
everything ever received.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Min, Q, QuerySet, Sum
from django.utils import timezone

from releases.models import DetectionReport, DetectionRollup, DetectionRollupDay, Device
from threats.public import signature_refs

APPS_SHOWN = 50
SIGNATURES_SHOWN = 200


@dataclass(frozen=True, slots=True)
class AppDetections:
    package: str
    cert_sha256: str  # the signer's certificate; "" when the phone could not read it
    devices: int  # distinct devices in the raw window
    reports: int  # all reports ever received
    first_seen: datetime.datetime
    last_seen: datetime.datetime


@dataclass(frozen=True, slots=True)
class SignatureDetections:
    signature_id: int
    window_days: int
    devices: int
    reports: int
    first_seen: datetime.datetime | None
    last_seen: datetime.datetime | None
    apps: tuple[AppDetections, ...]  # most devices first, at most APPS_SHOWN


@dataclass(frozen=True, slots=True)
class SignatureCount:
    signature_id: int
    revision: int
    name: str  # "" for a signature this portal does not know (deleted)
    url: str
    devices: int
    reports: int
    first_seen: datetime.datetime
    last_seen: datetime.datetime


@dataclass(frozen=True, slots=True)
class ReportAdoption:
    window_days: int
    devices_reporting: int  # active devices that reported in the window
    on_this_release: int
    on_this_or_newer: int


@dataclass(frozen=True, slots=True)
class ReleaseDetections:
    release: int
    adoption: ReportAdoption
    signatures: tuple[SignatureCount, ...]  # most devices first, at most SIGNATURES_SHOWN
    signature_count: int  # signatures with any report of this release


def _window_days() -> int:
    return max(1, int(settings.DEVICE_REPORT_RETENTION_DAYS))


def _unrolled(raw: QuerySet[DetectionReport]) -> QuerySet[DetectionReport]:
    """Raw reports of days that are not in the roll-ups yet."""
    oldest = raw.aggregate(day=Min("day"))["day"]
    if oldest is None:
        return raw
    rolled = DetectionRollupDay.objects.filter(day__gte=oldest).values_list("day", flat=True)
    return raw.exclude(day__in=list(rolled))


@dataclass
class _Tally:
    devices: int = 0
    reports: int = 0
    first: datetime.datetime | None = None
    last: datetime.datetime | None = None

    def add(self, reports: int, first: datetime.datetime, last: datetime.datetime) -> None:
        self.reports += reports
        self.first = first if self.first is None else min(self.first, first)
        self.last = last if self.last is None else max(self.last, last)


def _tallies(
    raw: QuerySet[DetectionReport], rollups: QuerySet[DetectionRollup], keys: tuple[str, ...]
) -> dict[tuple[Any, ...], _Tally]:
    """{key: devices (raw window), reports, first and last seen (all time)} grouped by
    ``keys``, in three grouped queries."""
    out: dict[tuple[Any, ...], _Tally] = {}

    def tally(row: dict[str, Any]) -> _Tally:
        return out.setdefault(tuple(row[k] for k in keys), _Tally())

    rolled = rollups.values(*keys).annotate(
        n=Sum("reports"), first=Min("first_seen"), last=Max("last_seen")
    )
    for row in rolled.order_by():
        tally(row).add(row["n"], row["first"], row["last"])
    fresh = (
        _unrolled(raw)
        .values(*keys)
        .annotate(n=Count("id"), first=Min("detected_at"), last=Max("detected_at"))
    )
    for row in fresh.order_by():
        tally(row).add(row["n"], row["first"], row["last"])
    for row in raw.values(*keys).annotate(n=Count("device_id", distinct=True)).order_by():
        tally(row).devices = row["n"]
    return out


def _most_devices(item: tuple[tuple[Any, ...], _Tally]) -> tuple[int, int]:
    return (-item[1].devices, -item[1].reports)


def signature_detections(*, signature_id: int) -> SignatureDetections:
    """How many devices detect a signature (any revision), on which apps, and since when."""
    raw = DetectionReport.objects.filter(signature_id=signature_id)
    rollups = DetectionRollup.objects.filter(signature_id=signature_id)
    apps = _tallies(raw, rollups, ("package", "cert_sha256"))
    devices = raw.aggregate(n=Count("device_id", distinct=True))["n"]
    firsts = [t.first for t in apps.values() if t.first is not None]
    lasts = [t.last for t in apps.values() if t.last is not None]
    ranked = sorted(apps.items(), key=_most_devices)[:APPS_SHOWN]
    return SignatureDetections(
        signature_id=signature_id,
        window_days=_window_days(),
        devices=devices,
        reports=sum(t.reports for t in apps.values()),
        first_seen=min(firsts, default=None),
        last_seen=max(lasts, default=None),
        apps=tuple(
            AppDetections(
                package=package,
                cert_sha256=cert,
                devices=t.devices,
                reports=t.reports,
                first_seen=t.first or timezone.now(),
                last_seen=t.last or timezone.now(),
            )
            for (package, cert), t in ranked
        ),
    )


def report_adoption(number: int) -> ReportAdoption:
    """Devices whose last report (within the window) says they have this release installed."""
    days = _window_days()
    since = timezone.now() - datetime.timedelta(days=days)
    counts = Device.objects.filter(revoked_at__isnull=True, last_seen_at__gte=since).aggregate(
        reporting=Count("id"),
        on_this=Count("id", filter=Q(installed_release=number)),
        on_newer=Count("id", filter=Q(installed_release__gte=number)),
    )
    return ReportAdoption(
        window_days=days,
        devices_reporting=counts["reporting"],
        on_this_release=counts["on_this"],
        on_this_or_newer=counts["on_newer"],
    )


def release_detections(*, number: int) -> ReleaseDetections:
    """Adoption from reports, and detections per signature revision shipped in release
    ``number`` (as the phones report them)."""
    raw = DetectionReport.objects.filter(release=number)
    rollups = DetectionRollup.objects.filter(release=number)
    tallies = _tallies(raw, rollups, ("signature_id", "revision"))
    ranked = sorted(tallies.items(), key=_most_devices)[:SIGNATURES_SHOWN]
    refs = signature_refs(key[0] for key, _ in ranked)
    signatures = []
    for (sig_id, revision), t in ranked:
        ref = refs.get(sig_id)
        signatures.append(
            SignatureCount(
                signature_id=sig_id,
                revision=revision,
                name=ref.name if ref is not None else "",
                url=ref.url if ref is not None else "",
                devices=t.devices,
                reports=t.reports,
                first_seen=t.first or timezone.now(),
                last_seen=t.last or timezone.now(),
            )
        )
    return ReleaseDetections(
        release=number,
        adoption=report_adoption(number),
        signatures=tuple(signatures),
        signature_count=len(tallies),
    )
