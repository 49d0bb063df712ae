"""Who may do what with watch rules: one policy that pages, the API and services all call.

- researchers, reviewers and admins keep watch rules (create, edit, delete their own);
- admins may also change or delete anyone's (a webhook that misbehaves);
- researchers and reviewers see their own rules; admins and auditors read everyone's;
- auditors have the list and detail pages read-only (no form) and get 403 on every write.
"""

from __future__ import annotations

from typing import Any

from portal.roles import ADMIN, AUDITOR, RESEARCHER, REVIEWER, has_role, user_roles

WRITERS = (RESEARCHER, REVIEWER, ADMIN)


def can_view(user: Any) -> bool:
    return bool(getattr(user, "is_active", False) and user_roles(user))


def can_write(user: Any) -> bool:
    return bool(getattr(user, "is_active", False) and has_role(user, *WRITERS))


def sees_all(user: Any) -> bool:
    return has_role(user, ADMIN, AUDITOR)


def can_change(user: Any, rule: Any) -> bool:
    return can_write(user) and (rule.owner_id == user.pk or has_role(user, ADMIN))
