"""Read paths of the scans app: lists with filters, a sample with its scans, dashboard figures."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import django_filters
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from scans.models import Label, Sample, ScanJob, ScanStatus, Verdict
from threats.models import Family


class SampleFilter(django_filters.FilterSet):
    label = django_filters.ChoiceFilter(choices=Label.choices)
    verdict = django_filters.ChoiceFilter(choices=Verdict.choices)
    package = django_filters.CharFilter(field_name="package", lookup_expr="icontains")
    family = django_filters.CharFilter(method="filter_family")
    q = django_filters.CharFilter(method="filter_q", label="Search (hash or package)")

    class Meta:
        model = Sample
        fields = ["label", "verdict", "package", "family", "q"]

    def filter_family(self, qs: QuerySet[Sample], name: str, value: str) -> QuerySet[Sample]:
        value = value.strip()
        if value.isdigit():
            return qs.filter(family_id=int(value))
        return qs.filter(family__name__iexact=value) if value else qs

    def filter_q(self, qs: QuerySet[Sample], name: str, value: str) -> QuerySet[Sample]:
        value = value.strip().lower()
        if not value:
            return qs
        if all(c in "0123456789abcdef" for c in value) and len(value) in (32, 40, 64):
            return qs.filter(Q(sha256=value) | Q(sha1=value) | Q(md5=value))
        return qs.filter(
            Q(package__icontains=value)
            | Q(sha256__startswith=value)
            | Q(app_label__icontains=value)
        )


def sample_list(*, filters: Any = None) -> SampleFilter:
    qs = Sample.objects.select_related("family", "uploaded_by").defer("features")
    return SampleFilter(filters or {}, queryset=qs.order_by("-last_seen", "-id"))


def sample_get(*, sha256: str) -> Sample | None:
    return Sample.objects.select_related("family", "uploaded_by").filter(sha256=sha256).first()


def sample_scans(*, sample: Sample, limit: int = 50) -> list[ScanJob]:
    return list(sample.scans.select_related("requested_by").order_by("-id")[:limit])


class ScanFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ScanStatus.choices)
    verdict = django_filters.ChoiceFilter(choices=Verdict.choices)

    class Meta:
        model = ScanJob
        fields = ["status", "verdict"]


def scan_list(*, filters: Any = None) -> ScanFilter:
    qs = ScanJob.objects.select_related("sample", "requested_by").defer(
        "matches", "sample__features"
    )
    return ScanFilter(filters or {}, queryset=qs.order_by("-id"))


def scan_get(*, scan_id: int) -> ScanJob | None:
    return ScanJob.objects.select_related("sample", "requested_by").filter(pk=scan_id).first()


def families() -> list[Family]:
    return list(Family.objects.order_by("name").only("id", "name"))


def scans_per_day(*, days: int = 14) -> list[tuple[str, int]]:
    today = timezone.localdate()
    start = today - timedelta(days=days - 1)
    rows = (
        ScanJob.objects.filter(queued_at__date__gte=start)
        .annotate(day=TruncDate("queued_at"))
        .values("day")
        .annotate(n=Count("id"))
    )
    counts = {row["day"]: row["n"] for row in rows}
    return [
        ((start + timedelta(days=i)).isoformat(), counts.get(start + timedelta(days=i), 0))
        for i in range(days)
    ]


def verdict_counts() -> dict[str, int]:
    rows = (
        ScanJob.objects.filter(status=ScanStatus.SUCCEEDED)
        .values("verdict")
        .annotate(n=Count("id"))
    )
    counts = dict.fromkeys(Verdict.values, 0)
    for row in rows:
        counts[row["verdict"]] = row["n"]
    counts["failed"] = ScanJob.objects.filter(status=ScanStatus.FAILED).count()
    return counts


def dashboard_panels(request: HttpRequest) -> list[dict[str, Any]]:
    if not request.user.has_perm("scans.view_scanjob"):
        return []
    per_day = scans_per_day()
    peak = max((n for _, n in per_day), default=0) or 1
    bars = format_html_join(
        "",
        '<div class="bar" title="{}: {} scan(s)"><span style="height:{}%"></span>'
        "<small>{}</small></div>",
        ((day, n, round(100 * n / peak), day[8:]) for day, n in per_day),
    )
    total = sum(n for _, n in per_day)
    verdicts = verdict_counts()
    return [
        {
            "title": "Scans per day (last 14 days)",
            "html": format_html('<div class="bars" aria-label="scans per day">{}</div>', bars),
            "footer": f"{total} scan(s) in 14 days",
        },
        {
            "title": "Verdicts",
            "rows": [(name.capitalize(), str(n)) for name, n in verdicts.items()],
        },
    ]
