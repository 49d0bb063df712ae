"""Demo data: development TUF keys, the repository, and a first release (built right here)."""

from __future__ import annotations

from portal.models import User
from releases.models import Release
from releases.repository import init_dev_repository
from releases.services import release_build, release_publish


def seed(users: dict[str, User]) -> None:
    init_dev_repository()
    if Release.objects.exists():
        return
    release = release_publish(by=users["reviewer"], notes="Demo: the first release", enqueue=False)
    release_build(number=release.number)
