"""The "Wanted" page: the unknown apps phones look up most (``scans.lookup``), to collect
next. A thin view; the samples page links to it."""

from __future__ import annotations

from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from scans.lookup import lookups_unknown_top


@require_GET
@permission_required("scans.view_sample", raise_exception=True)
def wanted_view(request: HttpRequest) -> HttpResponse:
    return render(request, "scans/wanted.html", {"wanted": lookups_unknown_top(limit=200)})
