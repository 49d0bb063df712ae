"""The releases panels on the dashboard: the latest release and devices, what happened to
releases this week (published, halted by a person or automatically), and what phones detected
this week, by family. Every figure links to the page or list it counts."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import cast
from urllib.parse import urlencode

from django.db.models import Count
from django.http import HttpRequest
from django.urls import reverse

from portal.dashboard import Bar, Panel, row_chart, week_start, week_start_at
from releases.models import AutoHalt, DetectionReport, Device, Release
from threats.public import signature_refs

RECENT_SHOWN = 6
FAMILIES_SHOWN = 8


def _release_url(number: int, anchor: str = "") -> str:
    return reverse("releases:release-detail", args=[number]) + anchor


def _audit_url(request: HttpRequest, action: str) -> str | None:
    if not request.user.has_perm("portal.view_auditentry"):
        return None
    query = {"action": action, "date_from": week_start().isoformat()}
    return f"{reverse('audit')}?{urlencode(query)}"


def releases_panel(request: HttpRequest) -> list[Panel]:
    if not request.user.has_perm("releases.view_release"):
        return []
    latest = Release.objects.order_by("-number").first()
    devices = Device.objects.filter(revoked_at__isnull=True).count()
    if latest is None:
        rows: list[tuple[str, object, str | None]] = [("Latest release", "none yet", None)]
    else:
        url = _release_url(latest.number)
        rows = [
            ("Latest release", f"{latest.number} ({latest.get_state_display().lower()})", url),
            ("Rollout", "halted" if latest.halted else f"{latest.rollout_percent}%", url),
            ("Signatures", f"{latest.signature_count:,}", url),
        ]
    rows.append(("Devices", f"{devices:,}", reverse("releases:device-list")))
    return [
        {"title": "Releases", "rows": rows, "footer": ""},
        _this_week(request),
        _detections_by_family(),
    ]


def _this_week(request: HttpRequest) -> Panel:
    """Releases published and halted this week, and the automatic halts, newest first."""
    since = week_start_at()
    published = list(
        Release.objects.filter(created_at__gte=since)
        .select_related("created_by")
        .order_by("-created_at")
    )
    halted = list(Release.objects.filter(halted_at__gte=since).order_by("-halted_at"))
    auto = list(
        AutoHalt.objects.filter(created_at__gte=since)
        .select_related("release")
        .order_by("-created_at")
    )
    # a release the portal halted is listed once, as an automatic halt
    by_person = [r for r in halted if r.pk not in {h.release_id for h in auto}]
    events = [
        {
            "when": r.created_at,
            "text": f"Release {r.number} published by "
            f"{r.created_by.get_username() if r.created_by else 'the portal'}"
            f" ({r.signature_count:,} signatures)",
            "url": _release_url(r.number),
        }
        for r in published
    ]
    events += [
        {"when": r.halted_at, "text": f"Release {r.number} halted", "url": _release_url(r.number)}
        for r in by_person
    ]
    events += [
        {
            "when": h.created_at,
            "text": f"Release {h.release.number} halted automatically: "
            f"signature {h.signature_id}" + (f" on {h.package}" if h.package else ""),
            "url": _release_url(h.release.number, f"#auto-halt-{h.signature_id}"),
        }
        for h in auto
    ]
    events.sort(key=lambda e: cast(datetime, e["when"]), reverse=True)
    return {
        "title": "Releases this week",
        "rows": [
            ("Published", len(published), reverse("releases:release-list")),
            ("Halted by a person", len(by_person), _audit_url(request, "release.halt")),
            ("Halted automatically", len(auto), _audit_url(request, "release.auto_halt")),
        ],
        "events": events[:RECENT_SHOWN],
    }


def _detections_by_family() -> Panel:
    """What phones reported this week, per family of the detecting signature (one grouped
    query over the week's reports, one look-up of the signatures)."""
    per_signature = (
        DetectionReport.objects.filter(day__gte=week_start())
        .values("signature_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts = {row["signature_id"]: row["n"] for row in per_signature}
    refs = signature_refs(counts)
    families: Counter[str] = Counter()
    for signature_id, n in counts.items():
        ref = refs.get(signature_id)
        families[ref.family if ref and ref.family else "(unknown signature)"] += n
    list_url = reverse("threats:signature-list")
    bars = [
        Bar(
            label=name,
            value=n,
            url=None if name.startswith("(") else f"{list_url}?{urlencode({'family': name})}",
            title=f"{name}: {n:,} detection(s) reported by phones this week",
        )
        for name, n in families.most_common(FAMILIES_SHOWN)
    ]
    return {
        "title": "Top families this week (phone detections)",
        "html": row_chart(
            bars,
            label="detections per family this week",
            empty="No phone has reported a detection this week.",
        ),
        "footer": f"{sum(families.values()):,} detection(s) in {len(families)} family(ies)"
        if families
        else "",
    }
