"""Pages of the scans app: samples, a sample, upload, scans, a scan (live while it runs),
retro-hunts (a progress bar that moves while the hunt runs, matches grouped by label)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from portal.exceptions import ApplicationError
from portal.htmx import is_htmx
from portal.models import User
from portal.params import parse_ids
from portal.parsers import json_loads_bounded
from scans.android_permissions import protection_level
from scans.downloads import may_download_sample
from scans.models import Label, ScanJob, ScanStatus, Verdict
from scans.retrohunts import eta_seconds, retrohunt_cancel, retrohunt_create
from scans.search import PIVOT_PARAMS, samples_by_hash
from scans.selectors import (
    families,
    hunt_get,
    hunt_list,
    hunt_matches_by_label,
    hunt_rule_names,
    sample_current_matches,
    sample_get,
    sample_list,
    sample_scans,
    scan_get,
    scan_list,
)

_LEVEL_ORDER = {"dangerous": 0, "signature": 1, "custom": 2, "normal": 3}


def _query_without_page(request: HttpRequest) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


@require_GET
@permission_required("scans.view_sample", raise_exception=True)
def sample_list_view(request: HttpRequest) -> HttpResponse:
    filterset = sample_list(filters=request.GET)
    qs = filterset.qs if filterset.is_valid() else filterset.queryset.none()
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    context = {
        "filter": filterset,
        "page": page,
        "query": _query_without_page(request),
        "labels": Label.choices,
        "verdicts": Verdict.choices,
        "families": families(),
        # a pivot's filter (?cert=, ?domain=…) stays on while the other filters change
        "pivots": [(k, request.GET[k]) for k in PIVOT_PARAMS if request.GET.get(k)],
    }
    template = "scans/_sample_rows.html" if is_htmx(request) else "scans/sample_list.html"
    return render(request, template, context)


def _features_view(features: dict[str, Any] | None) -> dict[str, Any] | None:
    """The features arranged for the page: permissions with levels, components by kind."""
    if not features:
        return None
    manifest = features.get("manifest") or {}
    permissions = sorted(
        ({"name": p, "level": protection_level(p)} for p in manifest.get("permissions") or ()),
        key=lambda p: (_LEVEL_ORDER[p["level"]], p["name"]),
    )
    lineage = list(features.get("lineage") or ())
    return {
        **features,
        "manifest": manifest,
        "permissions": permissions,
        "dangerous_count": sum(1 for p in permissions if p["level"] != "normal"),
        "components": manifest.get("components") or [],
        "lineage": lineage,
    }


@require_GET
@permission_required("scans.view_sample", raise_exception=True)
def sample_detail_view(request: HttpRequest, sha256: str) -> HttpResponse:
    sample = sample_get(sha256=sha256.lower())
    if sample is None:
        # /samples/<md5 or sha1>/ leads to the sample's own page (search results if ambiguous)
        found = samples_by_hash(sha256)
        if len(found) == 1:
            return redirect("scans:sample-detail", sha256=found[0].sha256)
        if found:
            return redirect(f"{reverse('scans:sample-list')}?{urlencode({'q': sha256.lower()})}")
        raise Http404("No such sample.")
    context = {
        "sample": sample,
        "features": _features_view(sample.features),
        "scans": sample_scans(sample=sample),
        "can_scan": request.user.has_perm("scans.add_scanjob"),
        "can_download": may_download_sample(request.user),
        "can_relabel": request.user.has_perm("scans.change_sample"),
        "labels": Label.choices,
        "current_matches": sample_current_matches(sample=sample),
    }
    return render(request, "scans/sample_detail.html", context)


@require_GET
@permission_required(["scans.add_sample", "scans.add_scanjob"], raise_exception=True)
def sample_upload_view(request: HttpRequest) -> HttpResponse:
    context = {
        "labels": Label.choices,
        "families": families(),
        "max_upload_mb": settings.MAX_UPLOAD_MB,
    }
    return render(request, "scans/upload.html", context)


@require_GET
@permission_required("scans.view_scanjob", raise_exception=True)
def scan_list_view(request: HttpRequest) -> HttpResponse:
    filterset = scan_list(filters=request.GET)
    qs = filterset.qs if filterset.is_valid() else filterset.queryset.none()
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    context = {
        "filter": filterset,
        "page": page,
        "query": _query_without_page(request),
        "statuses": ScanStatus.choices,
        "verdicts": Verdict.choices,
        # the rows poll themselves while any scan waits or runs (one indexed query)
        "live": ScanJob.objects.filter(status__in=[ScanStatus.QUEUED, ScanStatus.RUNNING]).exists(),
    }
    template = "scans/_scan_rows.html" if is_htmx(request) else "scans/scan_list.html"
    return render(request, template, context)


@require_GET
@permission_required("scans.view_scanjob", raise_exception=True)
def scan_detail_view(request: HttpRequest, scan_id: int) -> HttpResponse:
    scan = scan_get(scan_id=scan_id)
    if scan is None:
        raise Http404("No such scan.")
    context = {
        "scan": scan,
        "sample": scan.sample,
        # the sample's features (its newest successful scan's), shown once this scan is over
        "features": _features_view(scan.sample.features) if scan.is_finished else None,
        "can_download": may_download_sample(request.user),
    }
    # htmx polls the status part while the scan runs; the part stops polling once finished
    template = "scans/_scan_status.html" if is_htmx(request) else "scans/scan_detail.html"
    return render(request, template, context)


# --- retro-hunts -------------------------------------------------------------------------------
def _parse_rule_body(kind: str, text: str) -> Any:
    """What the editor's text means (as the threats editor reads it)."""
    if kind == "yara":
        return text
    try:
        return json_loads_bounded(text)
    except json.JSONDecodeError:
        return text.strip()


@permission_required("scans.view_retrohunt", raise_exception=True)
def retrohunt_list_view(request: HttpRequest) -> HttpResponse:
    """The hunts, newest first; POST starts one (from a signature page or the editor)."""
    if request.method == "POST":
        if not request.user.has_perm("scans.add_retrohunt"):
            raise PermissionDenied
        user = request.user
        assert isinstance(user, User)
        # a signature page posts the revision it shows ("revisions"), the API-like form posts
        # signature ids ("signatures"), the editor posts its unsaved rule ("kind", "body")
        try:
            ids = parse_ids(request.POST.getlist("signatures"), field="signatures")
            rev_ids = parse_ids(request.POST.getlist("revisions"), field="revisions")
            rule = None
            if not ids and not rev_ids:
                kind = request.POST.get("kind", "")
                body = _parse_rule_body(kind, request.POST.get("body", ""))
                rule = {"kind": kind, "body": body}
            hunt = retrohunt_create(
                user=user, signature_ids=ids or None, revision_ids=rev_ids or None, rule=rule
            )
        except ApplicationError as exc:
            messages.error(request, f"The retro-hunt was not started: {exc.message}")
            back = request.POST.get("next", "")
            return redirect(back if back.startswith("/") else "scans:retrohunt-list")
        return redirect("scans:retrohunt-detail", hunt_id=hunt.pk)
    page = Paginator(hunt_list(), 50).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    rules = hunt_rule_names(page.object_list)
    for hunt in page.object_list:
        hunt.rules = rules[hunt.pk]  # type: ignore[attr-defined]
    return render(request, "scans/retrohunt_list.html", {"page": page})


@require_GET
@permission_required("scans.view_retrohunt", raise_exception=True)
def retrohunt_detail_view(request: HttpRequest, hunt_id: int) -> HttpResponse:
    hunt = hunt_get(hunt_id=hunt_id)
    if hunt is None:
        raise Http404("No such retro-hunt.")
    context = {
        "hunt": hunt,
        "eta": eta_seconds(hunt),
        "groups": hunt_matches_by_label(hunt=hunt),
        "can_cancel": request.user.has_perm("scans.change_retrohunt") and not hunt.is_done,
    }
    # htmx polls the status part while the hunt runs; the part stops polling once it is done
    template = "scans/_retrohunt_status.html" if is_htmx(request) else "scans/retrohunt_detail.html"
    return render(request, template, context)


@require_POST
@permission_required("scans.change_retrohunt", raise_exception=True)
def retrohunt_cancel_view(request: HttpRequest, hunt_id: int) -> HttpResponse:
    hunt = hunt_get(hunt_id=hunt_id)
    if hunt is None:
        raise Http404("No such retro-hunt.")
    user = request.user
    assert isinstance(user, User)
    try:
        retrohunt_cancel(hunt=hunt, user=user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Retro-hunt #{hunt.pk} cancelled.")
    return redirect("scans:retrohunt-detail", hunt_id=hunt.pk)
