"""Pages of the threats app. Thin: selectors read, services write, templates show."""

from __future__ import annotations

from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from threats.models import Signature


@permission_required("threats.view_signature", raise_exception=True)
def signature_detail_view(request: HttpRequest, pk: int) -> HttpResponse:
    signature = get_object_or_404(Signature.objects.select_related("family"), pk=pk)
    return render(request, "threats/signature_detail.html", {"signature": signature})
