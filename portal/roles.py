"""The four roles and the Django permissions each holds.

``ROLE_PERMISSIONS`` is the one place that says what each role may do. Data migrations apply
it (each app's migration the part about its own models, see ``grant``), and
``sync_roles`` re-applies all of it, e.g. after a test flush or to repair a database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

RESEARCHER = "researcher"
REVIEWER = "reviewer"
ADMIN = "admin"
AUDITOR = "auditor"
ROLES: tuple[str, ...] = (RESEARCHER, REVIEWER, ADMIN, AUDITOR)

_READ_THREATS = [
    "threats.view_family",
    "threats.view_signature",
    "threats.view_signaturerevision",
    "threats.view_tag",
]
_WRITE_THREATS = [
    "threats.add_family",
    "threats.change_family",
    "threats.add_signature",
    "threats.change_signature",
    "threats.delete_signature",
    "threats.add_tag",
    "threats.import_signature",
]

# Researchers and reviewers upload apps and scan them; auditors read; admins also delete.
_READ_SCANS = ["scans.view_sample", "scans.view_scanjob", "scans.view_retrohunt"]
# researchers and reviewers also start retro-hunts and cancel them
_WRITE_SCANS = [
    "scans.add_sample",
    "scans.change_sample",
    "scans.add_scanjob",
    "scans.add_retrohunt",
    "scans.change_retrohunt",
]

# Everyone with a role sees releases and devices; reviewers publish and steer rollout.
_READ_RELEASES = ["releases.view_release", "releases.view_device"]
_STEER_RELEASES = ["releases.publish_release", "releases.rollout_release"]

ROLE_PERMISSIONS: dict[str, list[str]] = {
    RESEARCHER: [*_READ_THREATS, *_WRITE_THREATS, *_READ_SCANS, *_WRITE_SCANS, *_READ_RELEASES],
    REVIEWER: [
        *_READ_THREATS,
        *_WRITE_THREATS,
        "threats.review_signature",
        "threats.moderate_signature",
        *_READ_SCANS,
        *_WRITE_SCANS,
        *_READ_RELEASES,
        *_STEER_RELEASES,
    ],
    AUDITOR: [
        "portal.view_auditentry",
        "portal.view_user",
        *_READ_THREATS,
        *_READ_SCANS,
        *_READ_RELEASES,
    ],
    ADMIN: [
        *_READ_THREATS,
        *_WRITE_THREATS,
        "threats.review_signature",
        "threats.moderate_signature",
        "threats.change_signaturerevision",
        "threats.delete_family",
        "portal.view_auditentry",
        "portal.add_user",
        "portal.change_user",
        "portal.view_user",
        "portal.view_apitoken",
        "portal.view_workerheartbeat",
        "auth.view_group",
        "auth.change_group",
        *_READ_SCANS,
        *_WRITE_SCANS,
        "scans.delete_sample",
        "scans.change_scanjob",
        "scans.delete_scanjob",
        *_READ_RELEASES,
        *_STEER_RELEASES,
        "releases.change_device",
        "releases.delete_device",
    ],
}


def permissions_for_app(app_label: str) -> dict[str, list[str]]:
    """The part of ROLE_PERMISSIONS about one app's models (for that app's data migration)."""
    return {
        role: [p for p in perms if p.split(".", 1)[0] == app_label]
        for role, perms in ROLE_PERMISSIONS.items()
    }


def sync_roles() -> None:
    """Create the groups and grant every permission in ROLE_PERMISSIONS (idempotent)."""
    from django.apps import apps

    grant(apps, ROLE_PERMISSIONS, strict=True)


def grant(apps: Any, grants: Mapping[str, Sequence[str]], *, strict: bool = False) -> None:
    """Give each group the listed ``app_label.codename`` permissions (for data migrations).

    Permissions are normally created after all migrations ran; create them now for the apps
    named so that a fresh database gets its grants in a single ``migrate``. In a migration a
    permission of a model that a *later* migration creates does not exist yet: it is skipped
    here and granted by that later migration's own grant (``strict`` refuses instead).
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
            found = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if found is None and not strict:
                continue
            if found is None:
                raise LookupError(f"no permission {perm}")
            group.permissions.add(found)


def user_roles(user: Any) -> frozenset[str]:
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    cached = getattr(user, "_portal_roles", None)
    if cached is None:
        cached = frozenset(user.groups.values_list("name", flat=True))
        user._portal_roles = cached  # noqa: SLF001 -- this module's own per-request cache
    return frozenset(cached)


def has_role(user: Any, *roles: str) -> bool:
    return bool(user_roles(user) & set(roles))
