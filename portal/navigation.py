"""The site navigation. An area appears once its app registers its page's URL name."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    perm: str | None = None  # Django permission needed to see the entry


AREAS: tuple[NavItem, ...] = (
    NavItem("Dashboard", "dashboard"),
    NavItem("Signatures", "threats:signature-list"),
    NavItem("Families", "threats:family-list"),
    NavItem("Samples", "scans:sample-list"),
    NavItem("Scans", "scans:scan-list"),
    NavItem("Retro-hunts", "scans:retrohunt-list"),
    NavItem("Livehunt", "livehunt:rule-list"),
    NavItem("Releases", "releases:release-list"),
    NavItem("Devices", "releases:device-list"),
    NavItem("Audit", "audit", perm="portal.view_auditentry"),
)


def nav_items(request: HttpRequest) -> list[dict[str, object]]:
    items = []
    for area in AREAS:
        if area.perm and not request.user.has_perm(area.perm):
            continue
        try:
            url = reverse(area.url_name)
        except NoReverseMatch:
            continue  # that area's app has not shipped its pages yet
        items.append({"label": area.label, "url": url, "active": request.path.startswith(url)})
    if items and items[0]["url"] == "/":
        items[0]["active"] = request.path == "/"
    return items
