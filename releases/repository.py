"""The portal's handle on its TUF update repository: where it lives, its keys, its lock.

``releases.tuf_repo`` knows nothing of Django; this module supplies it with the settings
(``RELEASE_REPO_DIR``, ``TUF_KEYS_DIR`` and the ``TUF_*_KEY`` environment variables) and with
one inter-process lock, because a publish reads targets.json and writes the next version:
two writers at once would lose one's targets.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from django.conf import settings

from portal.exceptions import ApplicationError
from releases.tuf_repo import RepoKeys, RepositoryError, UpdateRepository


def repo_dir() -> Path:
    return Path(settings.RELEASE_REPO_DIR)


def keys_dir() -> Path:
    return Path(settings.TUF_KEYS_DIR)


def timestamp_expiry() -> timedelta:
    return timedelta(hours=settings.RELEASE_TIMESTAMP_EXPIRY_HOURS)


def open_repository(*, require_root: bool = False) -> UpdateRepository:
    """The initialised repository with its keys, or an ApplicationError saying what to do."""
    try:
        keys = RepoKeys.load(keys_dir(), require_root=require_root)
    except (RepositoryError, OSError) as exc:
        raise ApplicationError(
            f"The TUF keys are not available ({exc}). Development: "
            "`python manage.py tuf_keys init`; production: set TUF_TARGETS_KEY, "
            "TUF_SNAPSHOT_KEY and TUF_TIMESTAMP_KEY."
        ) from exc
    repo = UpdateRepository(repo_dir(), keys)
    if not repo.is_initialised():
        raise ApplicationError(
            f"The update repository in {repo_dir()} is not initialised: "
            "run `python manage.py tuf_keys init`."
        )
    return repo


def init_dev_repository() -> UpdateRepository:
    """Development keys under the var folder (loudly) and a fresh repository, if missing."""
    keys = RepoKeys.generate_dev(keys_dir(), exist_ok=True)
    repo = UpdateRepository(repo_dir(), keys)
    if not repo.is_initialised():
        repo.init(timestamp_expiry=timestamp_expiry())
    return repo


@contextmanager
def publish_lock() -> Iterator[None]:
    """One writer of the repository at a time (across processes on this machine).

    Several publish workers on several machines sharing one repository need a shared lock
    instead; docs/releases.md says to run the ``publish`` queue with a single worker.
    """
    directory = repo_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".publish.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
