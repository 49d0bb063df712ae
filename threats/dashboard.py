"""The threats panel on the dashboard: signatures by status and the review queue."""

from __future__ import annotations

from django.http import HttpRequest
from django.urls import reverse

from portal.dashboard import Panel
from threats.models import Status
from threats.selectors import signature_counts


def signatures_panel(request: HttpRequest) -> list[Panel]:
    if not request.user.has_perm("threats.view_signature"):
        return []
    counts = signature_counts()
    rows = [(label, counts[value]) for value, label in Status.choices]
    rows.append(("Review queue", counts["review_queue"]))
    return [
        {
            "title": "Signatures",
            "rows": rows,
            "footer": f"{sum(counts[s] for s in Status.values)} signature(s) · "
            f"{counts['review_queue']} waiting for review",
            "url": reverse("threats:signature-list"),
        }
    ]
