"""The four roles and the Django permissions each holds.

Groups are created by a data migration (portal/migrations/0002_roles.py); each app's own data
migration grants its models' permissions with ``grant`` so that a role's rights are declared
next to the models they concern.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

RESEARCHER = "researcher"
REVIEWER = "reviewer"
ADMIN = "admin"
AUDITOR = "auditor"
ROLES: tuple[str, ...] = (RESEARCHER, REVIEWER, ADMIN, AUDITOR)


def grant(apps: Any, grants: Mapping[str, Sequence[str]]) -> None:
    """Give each group the listed ``app_label.codename`` permissions (for data migrations).

    Permissions are normally created after all migrations ran; create them now for the apps
    named so that a fresh database gets its grants in a single ``migrate``.
    """
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    labels = {perm.split(".", 1)[0] for perms in grants.values() for perm in perms}
    for label in labels:
        create_permissions(global_apps.get_app_config(label), apps=apps, verbosity=0)
    for group_name, perms in grants.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        for perm in perms:
            app_label, codename = perm.split(".", 1)
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


def user_roles(user: Any) -> frozenset[str]:
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    cached = getattr(user, "_portal_roles", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        user._portal_roles = cached
    return frozenset(cached)


def has_role(user: Any, *roles: str) -> bool:
    return bool(user_roles(user) & set(roles))
