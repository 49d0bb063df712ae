"""Helpers shared by every app's tests (imported by tests, never by the product)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import factory
import pytest

from portal.models import User
from portal.services import user_set_roles

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PASSWORD = "correct horse battery staple"  # noqa: S105 - test users only


def missing_prerequisite(what: str) -> None:
    """In CI a missing prerequisite fails the run; on a laptop it skips with the reason."""
    if IN_CI:
        pytest.fail(f"{what} is required in CI", pytrace=False)
    pytest.skip(f"{what} is not available on this machine")


def wait_for(predicate: Callable[[], Any], *, timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.invalid")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def roles(obj: User, create: bool, extracted: list[str] | None, **kwargs: Any) -> None:
        obj.save()
        if extracted:
            user_set_roles(user=obj, roles=extracted, actor=None)


def gate(*signatures: Any) -> Any:
    """Run the clean-corpus gate for these signatures' newest revisions, for real: a retro-hunt
    over the samples stored now (often none), run here with no worker. Returns the hunt."""
    from scans.retrohunts import retrohunt_run_sync

    revision_ids = []
    for sig in signatures:
        sig.refresh_from_db()
        assert sig.current_revision_id is not None
        revision_ids.append(sig.current_revision_id)
    return retrohunt_run_sync(user=None, revision_ids=revision_ids)
