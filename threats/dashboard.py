"""The threats panels on the dashboard: signatures by status (each figure a link to the list it
counts) and the approvals of this week."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpRequest
from django.urls import reverse

from portal.dashboard import Panel, week_start, week_start_at
from threats.models import RevisionState, SignatureRevision, Status, signature_name
from threats.selectors import signature_counts

RECENT_SHOWN = 6


def _list_url(**query: str) -> str:
    return f"{reverse('threats:signature-list')}?{urlencode(query)}"


def signatures_panel(request: HttpRequest) -> list[Panel]:
    if not request.user.has_perm("threats.view_signature"):
        return []
    counts = signature_counts()
    rows = [(label, counts[value], _list_url(status=value)) for value, label in Status.choices]
    rows.append(("Review queue", counts["review_queue"], reverse("threats:review-queue")))
    return [
        {
            "title": "Signatures",
            "rows": rows,
            "footer": f"{sum(counts[s] for s in Status.values)} signature(s) · "
            f"{counts['review_queue']} waiting for review",
            "footer_url": reverse("threats:signature-list"),
        },
        _approvals(request),
    ]


def _name(revision: SignatureRevision) -> str:
    return signature_name(
        category=revision.family.category,
        family=revision.family.name,
        signature_id=revision.signature_id,
        revision=revision.number,
    )


def _approvals(request: HttpRequest) -> Panel:
    """The revisions approved this week, newest first; the count links to the audit log's
    approvals of the week for those who may read it."""
    approved = SignatureRevision.objects.filter(
        state=RevisionState.APPROVED, reviewed_at__gte=week_start_at()
    )
    recent = approved.select_related("reviewed_by", "family").order_by("-reviewed_at")[
        :RECENT_SHOWN
    ]
    events = [
        {
            "when": r.reviewed_at,
            "text": f"{_name(r)} approved by "
            + (r.reviewed_by.get_username() if r.reviewed_by else "the portal"),
            "url": reverse("threats:signature-detail", args=[r.signature_id]),
        }
        for r in recent
    ]
    total = approved.count()
    url = None
    if request.user.has_perm("portal.view_auditentry"):
        query = {"action": "signature.approve", "date_from": week_start().isoformat()}
        url = f"{reverse('audit')}?{urlencode(query)}"
    return {
        "title": "Approvals this week",
        "rows": [("Revisions approved", total, url)],
        "events": events,
    }
