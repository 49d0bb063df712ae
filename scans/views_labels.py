"""Pages that change labels: one sample's (a form on its page) and many at once (a page
where hashes are pasted). Thin views over ``scans.labels`` (docs/verdicts.md)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from portal.exceptions import ApplicationError
from portal.models import User
from scans.labels import MAX_RELABEL, RelabelResult, samples_relabel
from scans.models import Label
from scans.selectors import sample_get


def _said(result: RelabelResult) -> str:
    label = Label(result.label).label.lower()
    parts = [f"{len(result.changed)} sample(s) now labelled {label}"]
    if result.unchanged:
        parts.append(f"{len(result.unchanged)} already were")
    if result.not_found:
        parts.append(f"{len(result.not_found)} hash(es) match no stored sample")
    if result.stale_hunts:
        hunts = ", ".join(f"#{h}" for h in result.stale_hunts)
        parts.append(f"retro-hunt(s) {hunts} are now stale: gates on them must hunt again")
    return "; ".join(parts) + "."


@require_POST
@permission_required("scans.change_sample", raise_exception=True)
def sample_label_view(request: HttpRequest, sha256: str) -> HttpResponse:
    sample = sample_get(sha256=sha256.lower())
    if sample is None:
        raise Http404("No such sample.")
    user = request.user
    assert isinstance(user, User)
    try:
        result = samples_relabel(
            hashes=[sample.sha256],
            label=request.POST.get("label", ""),
            reason=request.POST.get("reason", ""),
            by=user,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _said(result))
    return redirect("scans:sample-detail", sha256=sample.sha256)


@require_http_methods(["GET", "POST"])
@permission_required("scans.change_sample", raise_exception=True)
def labels_bulk_view(request: HttpRequest) -> HttpResponse:
    context: dict[str, object] = {
        "labels": Label.choices,
        "max": MAX_RELABEL,
        "form": {"hashes": "", "label": "", "reason": ""},
    }
    if request.method == "POST":
        text = request.POST.get("hashes", "")
        context["form"] = {
            "hashes": text,
            "label": request.POST.get("label", ""),
            "reason": request.POST.get("reason", ""),
        }
        user = request.user
        assert isinstance(user, User)
        try:
            result = samples_relabel(
                hashes=text.replace(",", " ").split(),
                label=request.POST.get("label", ""),
                reason=request.POST.get("reason", ""),
                by=user,
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _said(result))
            context["result"] = result
            context["form"] = {"hashes": "", "label": "", "reason": ""}
    return render(request, "scans/labels.html", context)
