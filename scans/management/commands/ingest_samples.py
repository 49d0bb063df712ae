"""python manage.py ingest_samples PATH... [--label unknown|clean|malicious]"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from portal.exceptions import ApplicationError
from scans.models import Label
from scans.services import sample_ingest


def _files(paths: list[str]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            yield path
        elif path.is_dir():
            # symlinks are not followed: a folder of samples is not a way out of it
            yield from sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
        else:
            raise CommandError(f"{raw}: no such file or folder")


class Command(BaseCommand):
    help = "Store every file under the given paths as a sample and queue a scan of each."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH")
        parser.add_argument("--label", choices=Label.values, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        files = list(_files(options["paths"]))
        new = existing = refused = 0
        progress = tqdm(files, unit="file", disable=options["verbosity"] == 0)
        for path in progress:
            progress.set_postfix_str(path.name[-30:], refresh=False)
            try:
                _, _, created = sample_ingest(path=path, label=options["label"])
            except ApplicationError as exc:
                refused += 1
                progress.write(f"{path}: refused: {exc.message}")
                continue
            if created:
                new += 1
            else:
                existing += 1
        self.stdout.write(
            f"{len(files)} file(s): {new} new, {existing} already stored, {refused} refused; "
            f"{new + existing} scan(s) queued."
        )
