"""``python manage.py tuf_keys init | export-root PATH | rotate-root``.

``init`` makes DEVELOPMENT keys under the var folder (with a loud warning) and the
repository. Production never runs ``init`` on the server: the root key is made and kept
offline, and the online keys come from TUF_TARGETS_KEY / TUF_SNAPSHOT_KEY /
TUF_TIMESTAMP_KEY (PEM text or a file path). ``rotate-root`` needs the current root key
(TUF_ROOT_KEY or <TUF_KEYS_DIR>/root.pem) and writes the new one to --new-key-out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from securesystemslib.signer import CryptoSigner

from portal.exceptions import ApplicationError
from releases.repository import init_dev_repository, keys_dir, open_repository, publish_lock
from releases.tuf_repo import RepositoryError, write_private_key


class Command(BaseCommand):
    help = "Create development TUF keys, export the root for the app, or rotate the root key."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("init", help="development keys and repository under the var folder")
        export = sub.add_parser("export-root", help="write root.json to ship inside the app")
        export.add_argument("path", type=Path)
        rotate = sub.add_parser("rotate-root", help="replace the root key (needs the old one)")
        rotate.add_argument(
            "--new-key-out",
            type=Path,
            default=None,
            help="where to write the new root key (default: <TUF_KEYS_DIR>/root.pem)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["action"] == "init":
                repo = init_dev_repository()
                self.stderr.write(
                    self.style.WARNING(
                        f"DEVELOPMENT TUF keys in {keys_dir()}: never use them in production."
                    )
                )
                self.stdout.write(f"update repository ready in {repo.root_dir}")
            elif options["action"] == "export-root":
                open_repository().export_root(options["path"])
                self.stdout.write(f"root metadata written to {options['path']}")
            else:
                self._rotate(options["new_key_out"])
        except (ApplicationError, RepositoryError, OSError) as exc:
            raise CommandError(str(getattr(exc, "message", exc))) from exc

    def _rotate(self, out: Path | None) -> None:
        repo = open_repository(require_root=True)
        target = out or keys_dir() / "root.pem"
        new = CryptoSigner.generate_ed25519()
        with publish_lock():
            old_copy = target.with_suffix(".pem.old")
            if target.exists():
                if old_copy.exists():
                    old_copy.unlink()
                target.rename(old_copy)
            write_private_key(target, new)
            version = repo.rotate_root(new)
        self.stdout.write(
            f"root is now version {version}; the new root key is in {target}. "
            "Move it offline, and ship the new root with the next app release."
        )
