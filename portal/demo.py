"""Demo accounts: one per role, passwords generated on first seed and kept under the var folder."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.db import transaction

from portal.models import User
from portal.roles import ROLES
from portal.services import user_set_roles

DEMO_USERS = {role: f"demo-{role}" for role in ROLES}


def accounts_file() -> Path:
    return Path(settings.VAR_DIR) / "demo-accounts.json"


def demo_accounts() -> dict[str, dict[str, str]]:
    path = accounts_file()
    return json.loads(path.read_text()) if path.exists() else {}


@transaction.atomic
def seed_users() -> dict[str, User]:
    """Create (or keep) one demo user per role. Returns them by role."""
    accounts = demo_accounts()
    users: dict[str, User] = {}
    for role, username in DEMO_USERS.items():
        entry = accounts.get(role)
        user = User.objects.filter(username=username).first()
        if user is None or entry is None:
            password = secrets.token_urlsafe(12)
            user = user or User(username=username, email=f"{username}@example.invalid")
            user.set_password(password)
            user.full_clean()
            user.save()
            accounts[role] = {"username": username, "password": password}
        if set(user.groups.values_list("name", flat=True)) != {role}:
            user_set_roles(user=user, roles=[role], actor=None)
        users[role] = user
    _write_private(accounts_file(), json.dumps(accounts, indent=2))
    return users


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
