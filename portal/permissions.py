from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from portal.models import User
from portal.roles import user_roles


class IsStaffUser(BasePermission):
    """A logged-in person with at least one portal role (devices never pass)."""

    message = "You need a portal role (researcher, reviewer, admin or auditor) for this."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return isinstance(user, User) and user.is_active and bool(user_roles(user))


def require_perms(*perms: str) -> type[BasePermission]:
    """A permission class that needs every Django permission in ``perms``."""

    class _HasPerms(IsStaffUser):
        message = "Your role does not allow this."

        def has_permission(self, request: Request, view: Any) -> bool:
            return super().has_permission(request, view) and request.user.has_perms(perms)

    _HasPerms.__name__ = "HasPerms_" + "_".join(p.replace(".", "_") for p in perms)
    return _HasPerms
