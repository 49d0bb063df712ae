"""Read paths of the scans app: lists with filters, a sample with its scans, dashboard figures."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import django_filters
from django.db.models import Count, Func, IntegerField, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import TruncDate
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from portal.params import IdOrNameFilter
from scans import search
from scans.models import (
    CurrentMatch,
    HuntMatch,
    Label,
    RetroHunt,
    Sample,
    ScanJob,
    ScanStatus,
    Verdict,
)
from threats.public import FamilyRef, review_base
from threats.public import families as threats_families

_SHA256 = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)


class _SearchFilter(django_filters.CharFilter):
    field_class = search.SearchFormField


class _SignatureFilter(django_filters.CharFilter):
    field_class = search.SignatureIdFormField


class _TypedFilter(django_filters.CharFilter):
    field_class = search.TypedFormField


def _typed(field: str, help_text: str) -> _TypedFilter:
    return _TypedFilter(method="filter_typed", search_field=field, help_text=help_text)


class SampleFilter(django_filters.FilterSet):
    label = django_filters.ChoiceFilter(choices=Label.choices)
    verdict = django_filters.ChoiceFilter(choices=Verdict.choices)
    package = django_filters.CharFilter(field_name="package", lookup_expr="icontains")
    family = IdOrNameFilter(method="filter_family", help_text="family id or name")
    q = _SearchFilter(method="filter_q", label="Search (hash, name, package, indicator…)")
    cert = _typed("cert", "a signing certificate's SHA-256 or SHA-1 fingerprint")
    domain = _typed("domain", "a domain the app contacts (subdomains included)")
    url = _typed("url", "a URL in the app")
    ip = _typed("ip", "an IP address in the app")
    short_code = _typed("short_code", "an SMS short code in the app")
    signature = _SignatureFilter(method="filter_signature", help_text="samples this signature hit")
    order = django_filters.ChoiceFilter(
        method="filter_order",
        choices=[("version", "newest version first")],
        empty_label=None,
        help_text="version: by the manifest's versionCode, newest first",
    )

    class Meta:
        model = Sample
        fields = [
            "label",
            "verdict",
            "package",
            "family",
            "q",
            "cert",
            "domain",
            "url",
            "ip",
            "short_code",
            "signature",
            "order",
        ]

    def filter_family(self, qs: QuerySet[Sample], name: str, value: int | str) -> QuerySet[Sample]:
        if isinstance(value, int):
            return qs.filter(family_id=value)
        return qs.filter(family__name__iexact=value) if value else qs

    def filter_q(
        self, qs: QuerySet[Sample], name: str, value: search.SampleQuery | None
    ) -> QuerySet[Sample]:
        return search.samples_search(qs, value)

    def filter_typed(self, qs: QuerySet[Sample], name: str, value: str) -> QuerySet[Sample]:
        return qs.filter(search.typed_condition(name, value)) if value else qs

    def filter_signature(self, qs: QuerySet[Sample], name: str, value: Any) -> QuerySet[Sample]:
        return search.samples_hit_by(qs, value) if value is not None else qs

    def filter_order(self, qs: QuerySet[Sample], name: str, value: str) -> QuerySet[Sample]:
        return search.order_by_version(qs) if value == "version" else qs


def sample_list(*, filters: Any = None) -> SampleFilter:
    qs = Sample.objects.select_related("family", "uploaded_by").defer("features", "facts")
    return SampleFilter(filters or {}, queryset=qs.order_by("-last_seen", "-id"))


def sample_get(*, sha256: str) -> Sample | None:
    # anything but 64 hex digits names no sample (and a NUL in it is an error on PostgreSQL)
    if not _SHA256.fullmatch(sha256):
        return None
    return Sample.objects.select_related("family", "uploaded_by").filter(sha256=sha256).first()


def sample_current_matches(*, sample: Sample, limit: int = 50) -> list[CurrentMatch]:
    """The signatures of the sample's verdict release that hit it, strongest first."""
    return list(CurrentMatch.objects.filter(sample=sample).order_by("-weight", "name")[:limit])


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
        "matches", "sample__features", "sample__facts"
    )
    return ScanFilter(filters or {}, queryset=qs.order_by("-id"))


def scan_get(*, scan_id: int) -> ScanJob | None:
    return ScanJob.objects.select_related("sample", "requested_by").filter(pk=scan_id).first()


def families() -> list[FamilyRef]:
    return threats_families()


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
    current = sample_verdict_counts()
    failed = ScanJob.objects.filter(status=ScanStatus.FAILED).count()
    return [
        {
            "title": "Scans per day (last 14 days)",
            "html": format_html('<div class="bars" aria-label="scans per day">{}</div>', bars),
            "footer": f"{total} scan(s) in 14 days",
        },
        {
            "title": "Samples by verdict (current release)",
            "rows": [
                (name.capitalize(), str(n), f"/samples/?verdict={name}")
                for name, n in current.items()
            ]
            + [("Failed scans", str(failed), "/scans/?status=failed")],
        },
    ]


def sample_verdict_counts() -> dict[str, int]:
    """Stored samples by their current verdict (what the current release says)."""
    counts = dict.fromkeys(Verdict.values, 0)
    rows = Sample.objects.exclude(verdict="").values("verdict").annotate(n=Count("id"))
    for row in rows:
        counts[row["verdict"]] = row["n"]
    return counts


# --- retro-hunts ------------------------------------------------------------------------------
def hunt_get(*, hunt_id: int) -> RetroHunt | None:
    return RetroHunt.objects.select_related("created_by").filter(pk=hunt_id).first()


def hunt_list(*, user: Any = None, mine: bool = False) -> QuerySet[RetroHunt]:
    qs = RetroHunt.objects.select_related("created_by").defer("records", "rule_body")
    if mine and user is not None:
        qs = qs.filter(created_by=user)
    return qs.order_by("-id")


@dataclass(frozen=True)
class HuntRules:
    """The first rules a hunt ran (name, signature id or None), and how many it ran."""

    first: tuple[tuple[str, int | None], ...]
    total: int

    @property
    def more(self) -> int:
        return max(self.total - len(self.first), 0)


HUNT_RULES_SHOWN = 3


class _JSONArrayLength(Func):
    """The length of a JSON array column, counted by the database (SQLite, PostgreSQL)."""

    function = "JSON_ARRAY_LENGTH"
    output_field = IntegerField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection, function="JSONB_ARRAY_LENGTH", **extra)


def hunt_rule_names(hunts: Iterable[RetroHunt]) -> dict[int, HuntRules]:
    """{hunt id: HuntRules} for a page of hunts, reading only the first few records of each
    from the database (a feed's hunt holds 100,000 records; the list never loads them)."""
    hunts = list(hunts)
    fields: dict[str, Any] = {}
    for i in range(HUNT_RULES_SHOWN):
        fields[f"name{i}"] = KT(f"records__{i}__name")
        fields[f"id{i}"] = KT(f"records__{i}__id")
    rows = (
        RetroHunt.objects.filter(pk__in=[h.pk for h in hunts])
        .annotate(**fields, n_records=_JSONArrayLength("records"))
        .values_list("pk", "n_records", *fields)
    )
    firsts: dict[int, tuple[tuple[str, int | None], ...]] = {}
    totals: dict[int, int] = {}
    for pk, n_records, *cells in rows:
        pairs = zip(cells[::2], cells[1::2], strict=True)  # (name, signature id) per record
        firsts[pk] = tuple((name, int(sid) if sid else None) for name, sid in pairs if name)
        totals[pk] = int(n_records or 0)  # one record per revision hunted, or the unsaved rule
    return {h.pk: HuntRules(first=firsts.get(h.pk, ()), total=totals.get(h.pk, 0)) for h in hunts}


@dataclass(frozen=True)
class HuntMatchRow:
    sha256: str
    package: str
    name: str
    label: str  # at match time
    signature_id: int | None
    signature_name: str
    signature_url: str | None
    evidence: list[str]


def hunt_matches(*, hunt: RetroHunt, limit: int = 5000) -> list[HuntMatchRow]:
    """The hunt's matches, one row per (sample, rule), clean first (what a reviewer fears)."""
    from threats.public import signature_url

    rows = (
        HuntMatch.objects.filter(hunt=hunt)
        .select_related("sample")
        .only(
            "label",
            "signature_id",
            "name",
            "evidence",
            "sample__sha256",
            "sample__package",
            "sample__original_name",
        )
        .order_by("sample__package", "sample_id", "signature_id")[:limit]
    )
    return [
        HuntMatchRow(
            sha256=m.sample.sha256,
            package=m.sample.package,
            name=m.sample.original_name,
            label=m.label,
            signature_id=m.signature_id or None,
            signature_name=m.name,
            signature_url=signature_url(m.signature_id) if m.signature_id else None,
            evidence=list(m.evidence or [])[:3],
        )
        for m in rows
    ]


LABEL_ORDER = (Label.CLEAN, Label.MALICIOUS, Label.UNKNOWN)


def hunt_matches_by_label(*, hunt: RetroHunt) -> list[tuple[str, list[HuntMatchRow]]]:
    rows = hunt_matches(hunt=hunt)
    return [(label, [r for r in rows if r.label == label]) for label in LABEL_ORDER]


def _hunt_hits(hunt_id: int | None, revision_id: int, up_to: int) -> dict[str, set[str]]:
    """{current label: sample sha256s} the revision hit in that hunt (samples id <= up_to)."""
    out: dict[str, set[str]] = {label: set() for label in Label.values}
    if hunt_id is None:
        return out
    for sha, label in HuntMatch.objects.filter(
        hunt_id=hunt_id, revision_id=revision_id, sample_id__lte=up_to
    ).values_list("sample__sha256", "sample__label"):
        out[label].add(sha)
    return out


def revision_review_diff(revision: Any) -> dict[str, Any]:
    """What changes if this revision replaces the one shipping (or the previous one): new
    clean hits, new malicious hits, lost malicious hits, from the two revisions' gate hunts.

    Compared over the samples both hunts covered (ids up to the smaller ``max_sample_id``),
    so a sample stored after the older hunt is not called "new"; labels are current ones.
    """
    base = review_base(revision)
    against = base.against if base is not None else "nothing (first revision)"
    hunt_ids = [h for h in (revision.gate_hunt_id, base.gate_hunt_id if base else None) if h]
    maxima = dict(RetroHunt.objects.filter(pk__in=hunt_ids).values_list("id", "max_sample_id"))
    up_to = min(maxima.values()) if maxima else 0
    if base is None or base.gate_hunt_id is None:
        up_to = maxima.get(revision.gate_hunt_id or 0, 0)
    now = _hunt_hits(revision.gate_hunt_id, revision.pk, up_to)
    before = _hunt_hits(base.gate_hunt_id if base else None, base.pk if base else 0, up_to)
    return {
        "against": against,
        "base_revision": base.number if base else None,
        "base_gated": bool(base and base.gate_hunt_id),
        "hunt": revision.gate_hunt_id,
        "base_hunt": base.gate_hunt_id if base else None,
        "compared_up_to_sample_id": up_to,
        "new_clean_hits": sorted(now[Label.CLEAN] - before[Label.CLEAN]),
        "new_malicious_hits": sorted(now[Label.MALICIOUS] - before[Label.MALICIOUS]),
        "lost_malicious_hits": sorted(before[Label.MALICIOUS] - now[Label.MALICIOUS]),
    }
