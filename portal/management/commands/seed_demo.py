from __future__ import annotations

import importlib
from typing import Any

from django.core.management.base import BaseCommand

from portal.demo import accounts_file, seed_users

# Each app's demo module, if it has one, exposes seed(users) and is run in this order: the
# clean corpus (scans) first, so that the demo signatures' gate covers clean apps.
APP_DEMOS = ("scans.demo", "threats.demo", "releases.demo")


class Command(BaseCommand):
    help = "Create demo accounts (one per role) and demo data. Safe to run again."

    def handle(self, *args: Any, **options: Any) -> None:
        users = seed_users()
        for name in APP_DEMOS:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name != name:
                    raise
                continue
            module.seed(users)
        self.stdout.write(f"Demo accounts are in {accounts_file()}")
