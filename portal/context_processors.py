from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from portal.navigation import nav_items
from portal.roles import user_roles


def roles(request: HttpRequest) -> dict[str, Any]:
    current = user_roles(request.user)
    return {
        "user_roles": sorted(current),
        "nav_items": nav_items(request) if current else [],
    }


def notifications(request: HttpRequest) -> dict[str, Any]:
    """The bell's count: one indexed COUNT per page, for people with a role."""
    from portal.notifications import unread_count

    user = request.user
    if not user_roles(user):
        return {}
    return {"unread_notifications": unread_count(user)}  # type: ignore[arg-type]
