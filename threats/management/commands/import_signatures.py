"""``manage.py import_signatures PATH... [--author USERNAME] [--submit]``: import signature files.

Walks folders, takes YARA (.yar/.yara), ClamAV (.hdb/.hsb/.ndb/.ldb/.cvd/.cld), Quark JSON
and CSV files; everything lands as draft (or invalid, with the reason). One transaction per
file. ``--submit`` then submits every draft it created for review, which starts ONE gate hunt
over all of them (a feed is one command). Prints the summary (``--json`` for a script).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.models import User
from threats.services import signatures_import_paths, signatures_submit_imported


class Command(BaseCommand):
    help = "Import signature files and folders as drafts; prints a summary."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", help="files or folders (walked recursively)")
        parser.add_argument(
            "--author",
            default=None,
            help="username recorded as the author (default: the first admin-group user)",
        )
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")
        parser.add_argument(
            "--submit",
            action="store_true",
            help="submit the imported drafts for review: one gate hunt over all of them",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        author = self._author(options["author"])
        summary = signatures_import_paths(actor=author, paths=options["paths"])
        data = summary.as_dict()
        if options["submit"]:
            submitted = signatures_submit_imported(actor=author, summary=summary)
            data["submitted"] = len(submitted.succeeded)
            data["submit_failed"] = submitted.failed
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=2))
            return
        self.stdout.write(
            f"{data['files']} file(s): {data['imported']} imported as draft, "
            f"{data['duplicates']} duplicate(s), {data['invalid']} invalid"
        )
        if options["submit"]:
            self.stdout.write(
                f"{data['submitted']} submitted for review (one gate hunt), "
                f"{len(data['submit_failed'])} not submitted"
            )
            for failed in data["submit_failed"][:20]:
                self.stdout.write(f"  not submitted: #{failed['id']}: {failed['message']}")
        for reason, count in data["invalid_reasons"].items():
            self.stdout.write(f"  {count:6d}  {reason}")
        for failed in data["failed_files"]:
            self.stdout.write(f"  not imported: {failed['file']}: {failed['reason']}")

    def _author(self, username: str | None) -> User:
        if username:
            user = User.objects.filter(username=username).first()
            if user is None:
                raise CommandError(f"no user named {username!r}")
            return user
        user = (
            User.objects.filter(groups__name="admin").order_by("pk").first()
            or User.objects.filter(is_superuser=True).order_by("pk").first()
        )
        if user is None:
            raise CommandError("no admin user to record as the author; pass --author USERNAME")
        return user
