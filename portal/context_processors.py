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
