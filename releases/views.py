"""Pages of the releases app: releases (publish, diff, rollout, halt, adoption) and devices."""

from __future__ import annotations

import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from portal.exceptions import ApplicationError
from portal.models import User
from portal.params import parse_int
from releases.halts import auto_halts_by_release, auto_halts_for_signature, release_kill_switch
from releases.models import Release
from releases.selectors import adoption_history, device_counts, release_adoption, release_diff
from releases.selectors_reports import release_detections, signature_detections
from releases.services import release_halt, release_publish, release_rollout
from threats.public import SignaturePanel


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


@require_GET
@permission_required("releases.view_release", raise_exception=True)
def release_list_view(request: HttpRequest) -> HttpResponse:
    releases = Release.objects.select_related("created_by").order_by("-number")
    page = Paginator(releases, 50).get_page(request.GET.get("page"))
    return render(request, "releases/release_list.html", {"page": page})


@require_POST
@permission_required("releases.publish_release", raise_exception=True)
def release_publish_view(request: HttpRequest) -> HttpResponse:
    try:
        release = release_publish(by=_user(request), notes=request.POST.get("notes", "")[:2000])
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("releases:release-list")
    messages.success(request, f"Release {release.number} is being built.")
    return redirect("releases:release-detail", number=release.number)


@require_GET
@permission_required("releases.view_release", raise_exception=True)
def release_detail_view(request: HttpRequest, number: int) -> HttpResponse:
    release = Release.objects.select_related("created_by").filter(number=number).first()
    if release is None:
        raise Http404("No such release")
    context = {
        "release": release,
        "diff": release_diff(release),
        "files": release.files.all(),
        "adoption": release_adoption(number),
        # what phones report: adoption and detections per signature (docs/privacy.md)
        "detections": release_detections(number=number),
        "auto_halts": auto_halts_by_release([number]).get(number, []),
    }
    return render(request, "releases/release_detail.html", context)


@require_POST
@permission_required("releases.rollout_release", raise_exception=True)
def release_rollout_view(request: HttpRequest, number: int) -> HttpResponse:
    try:
        if "halt" in request.POST:
            reason = request.POST.get("reason", "").strip()
            if not reason:
                raise ApplicationError("Say why the release is halted; the reason is audited.")
            release_halt(number=number, by=_user(request), reason=reason[:2000])
            messages.success(request, f"Release {number} is halted.")
        else:
            percent = parse_int(
                request.POST.get("percent", ""), field="percent", lowest=1, highest=100
            )
            release_rollout(number=number, percent=percent, by=_user(request))
            messages.success(request, f"Release {number} now goes to {percent}% of stable devices.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("releases:release-detail", number=number)


@require_POST
@permission_required("releases.publish_release", raise_exception=True)
def release_kill_switch_view(request: HttpRequest, number: int) -> HttpResponse:
    """The automatic halt's proposal: the signature marked noisy, in an urgent release."""
    try:
        signature_id = parse_int(
            request.POST.get("signature_id", ""), field="signature_id", lowest=1, highest=2**63 - 1
        )
        release = release_kill_switch(number=number, signature_id=signature_id, by=_user(request))
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("releases:release-detail", number=number)
    messages.success(
        request,
        f"Signature {signature_id} is noisy; urgent release {release.number} is being built.",
    )
    return redirect("releases:release-detail", number=release.number)


@require_GET
@permission_required("releases.view_device", raise_exception=True)
def device_list_view(request: HttpRequest) -> HttpResponse:
    days, numbers, table = adoption_history()
    rows = [(n, [table[n].get(day, 0) for day in days]) for n in numbers]
    return render(
        request,
        "releases/device_list.html",
        {"counts": device_counts(), "days": days, "adoption_rows": rows},
    )


def _when(value: datetime.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "never"


def signature_detections_panel(*, signature_id: int, user: Any) -> SignaturePanel | None:
    """The signature page's "Detections from phones" section (threats.public registry)."""
    if not user.has_perm("releases.view_device"):
        return None
    found = signature_detections(signature_id=signature_id)
    days = found.window_days
    return SignaturePanel(
        key="phone-detections",
        title="Detections from phones",
        facts=(
            ("Devices", f"{found.devices:,} in the last {days} days"),
            ("Reports", f"{found.reports:,}"),
            ("Since", _when(found.first_seen)),
            ("Last", _when(found.last_seen)),
        ),
        columns=(
            "Package",
            "Signer (certificate SHA-256)",
            f"Devices ({days} days)",
            "Reports",
            "First seen",
            "Last seen",
        ),
        rows=tuple(
            (
                app.package or "(unknown)",
                app.cert_sha256 or "(unknown)",
                f"{app.devices:,}",
                f"{app.reports:,}",
                _when(app.first_seen),
                _when(app.last_seen),
            )
            for app in found.apps
        ),
        empty="No phone has reported this signature.",
    )


def signature_auto_halts_panel(*, signature_id: int, user: Any) -> SignaturePanel | None:
    """The signature page's "Automatic halts" section: releases halted because of it."""
    if not user.has_perm("releases.view_release"):
        return None
    halts = auto_halts_for_signature(signature_id)
    if not halts:
        return None
    return SignaturePanel(
        key="auto-halts",
        title="Automatic halts",
        facts=(("Releases halted", str(len(halts))),),
        columns=("Release", "When", "Why", "Kill switch"),
        rows=tuple(
            (
                f"release {h.release.number}",
                _when(h.created_at),
                h.reason,
                f"release {h.resolved_by_release}" if h.resolved_by_release else "proposed",
            )
            for h in halts
        ),
        empty="",
    )
