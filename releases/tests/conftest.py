"""Fixtures for the releases tests: a TUF repository of their own, deployed signatures."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from portal.models import User
from portal.testing import gate
from releases.repository import init_dev_repository
from releases.services import device_register
from releases.tuf_repo import UpdateRepository
from threats.models import (
    Category,
    Family,
    RevisionState,
    Severity,
    Signature,
    SignatureRevision,
    Status,
)

ENROLLMENT_KEY = "test-enrollment-key"


@pytest.fixture
def update_repo(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> UpdateRepository:
    """A fresh repository and dev keys in tmp_path (also for worker processes, via env)."""
    settings.RELEASE_REPO_DIR = tmp_path / "updates"
    settings.TUF_KEYS_DIR = tmp_path / "tuf-keys"
    settings.DEVICE_ENROLLMENT_KEY = ENROLLMENT_KEY
    settings.DEVICE_MIN_WAIT_SECONDS = 0
    monkeypatch.setenv("RELEASE_REPO_DIR", str(settings.RELEASE_REPO_DIR))
    monkeypatch.setenv("TUF_KEYS_DIR", str(settings.TUF_KEYS_DIR))
    for name in ("TUF_ROOT_KEY", "TUF_TARGETS_KEY", "TUF_SNAPSHOT_KEY", "TUF_TIMESTAMP_KEY"):
        monkeypatch.delenv(name, raising=False)
    return init_dev_repository()


def _digest(i: int, revision: int) -> str:
    return hashlib.sha256(f"sig-{i}-{revision}".encode()).hexdigest()


class SignatureMaker:
    """Deployed signatures straight through the threats models (author ≠ approver)."""

    def __init__(self, author: User, approver: User) -> None:
        self.author = author
        self.approver = approver
        self.family, _ = Family.objects.get_or_create(
            name="Joker",
            defaults={"category": Category.SMS_FRAUD, "severity": Severity.MALICIOUS},
        )
        self.count = 0

    def deploy(
        self, value: str | None = None, *, status: str = Status.DEPLOYED, target: str = "apk"
    ) -> Signature:
        self.count += 1
        digest = value or _digest(self.count, 1)
        sig = Signature.objects.create(
            kind="hash",
            family=self.family,
            severity=Severity.MALICIOUS,
            status=status,
            author=self.author,
            dedup_key=f"{target}:{digest}",
        )
        self._revise(sig, 1, {"algorithm": "sha256", "target": target, "value": digest})
        return sig

    def revise(self, sig: Signature) -> Signature:
        number = (sig.current_revision.number if sig.current_revision else 0) + 1
        self._revise(
            sig, number, {"algorithm": "sha256", "target": "apk", "value": _digest(sig.pk, number)}
        )
        return sig

    def _revise(self, sig: Signature, number: int, body: dict[str, str]) -> None:
        rev = SignatureRevision.objects.create(
            signature=sig,
            number=number,
            body=body,
            severity=sig.severity,
            family=sig.family,
            state=RevisionState.APPROVED,
            author=self.author,
            last_editor=self.author,
            reviewed_by=self.approver,
            reviewed_at=timezone.now(),
        )
        sig.current_revision = rev
        sig.deployed_revision = rev
        sig.save(update_fields=["current_revision", "deployed_revision"])
        # the clean-corpus gate, for real: a retro-hunt of the revision over the stored
        # samples (publishing refuses a revision that was never gated)
        gate(sig)

    def set_status(self, sig: Signature, status: str) -> None:
        sig.status = status
        sig.save(update_fields=["status"])


@pytest.fixture
def signatures(researcher: User, reviewer: User) -> SignatureMaker:
    return SignatureMaker(researcher, reviewer)


@pytest.fixture
def make_device(update_repo: UpdateRepository) -> Callable[..., tuple[Any, str]]:
    def make(channel: str = "stable", **kwargs: Any) -> tuple[Any, str]:
        enrolment = device_register(enrollment_key=ENROLLMENT_KEY, channel=channel, **kwargs)
        return enrolment.device, enrolment.token

    return make
