"""``python manage.py publish_release --by USERNAME``: publish and build now, print the result."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from portal.exceptions import ApplicationError
from portal.models import User
from releases.models import ReleaseState
from releases.services import release_build, release_publish


class Command(BaseCommand):
    help = "Publish a release as USERNAME (a reviewer) and build its files in this process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--by", required=True, help="the reviewer publishing")
        parser.add_argument("--notes", default="")
        parser.add_argument("--rollout", type=int, default=None, help="percent, 1..100")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(username=options["by"], is_active=True).first()
        if user is None:
            raise CommandError(f"no active user {options['by']!r}")
        try:
            release = release_publish(
                by=user, notes=options["notes"], rollout_percent=options["rollout"], enqueue=False
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        release = release_build(number=release.number)
        if release.state != ReleaseState.PUBLISHED:
            raise CommandError(f"release {release.number} failed: {release.error}")
        self.stdout.write(
            f"release {release.number} published: {release.signature_count} signatures, "
            f"state {release.state_sha256[:16]}…, built in {release.build_seconds} s"
        )
        for f in release.files.order_by("kind", "base"):
            self.stdout.write(f"  {f.target}: {f.size} bytes")
