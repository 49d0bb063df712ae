"""The releases panel on the dashboard: latest release, its rollout, devices."""

from __future__ import annotations

from django.http import HttpRequest

from portal.dashboard import Panel
from releases.models import Device, Release


def releases_panel(request: HttpRequest) -> list[Panel]:
    if not request.user.has_perm("releases.view_release"):
        return []
    latest = Release.objects.order_by("-number").first()
    devices = Device.objects.filter(revoked_at__isnull=True).count()
    if latest is None:
        rows = [("Latest release", "none yet")]
    else:
        rows = [
            ("Latest release", f"{latest.number} ({latest.get_state_display().lower()})"),
            ("Rollout", "halted" if latest.halted else f"{latest.rollout_percent}%"),
            ("Signatures", f"{latest.signature_count:,}"),
        ]
    rows.append(("Devices", f"{devices:,}"))
    return [{"title": "Releases", "rows": rows, "footer": ""}]
