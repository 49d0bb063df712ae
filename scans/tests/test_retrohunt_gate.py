"""The clean-corpus gate: approval needs a finished hunt over the current clean corpus; a
clean hit blocks unless overridden (audited); publishing refuses ungated revisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from portal.exceptions import ApplicationError
from portal.models import AuditEntry
from portal.testing import gate
from releases.services import release_publish
from scans.tests.conftest import SMALL_APK
from scans.tests.factories import stored_sample
from threats import services
from threats.models import RevisionState, Signature, SignatureRevision, Status
from threats.tests.factories import make_family

pytestmark = pytest.mark.django_db

A2DP = "a2dp.Vol_137.apk"


def _submitted(author, sha256: str) -> Signature:
    sig = services.signature_create(
        actor=author,
        kind="hash",
        body={"algorithm": "sha256", "target": "apk", "value": sha256},
        family=make_family(name="Joker"),
    )
    return services.signature_submit(signature=sig, actor=author)


@pytest.fixture
def update_repo(settings, tmp_path: Path, monkeypatch):
    from releases.repository import init_dev_repository

    settings.RELEASE_REPO_DIR = tmp_path / "updates"
    settings.TUF_KEYS_DIR = tmp_path / "tuf-keys"
    for name in ("TUF_ROOT_KEY", "TUF_TARGETS_KEY", "TUF_SNAPSHOT_KEY", "TUF_TIMESTAMP_KEY"):
        monkeypatch.delenv(name, raising=False)
    return init_dev_repository()


@pytest.fixture
def clean_app(corpus: Path, researcher):
    return stored_sample(corpus / "apks" / A2DP, label="clean", user=researcher)[0]


def test_approval_is_refused_until_a_hunt_covers_the_current_clean_corpus(
    researcher, reviewer, clean_app, corpus: Path
) -> None:
    sig = _submitted(researcher, "ab" * 32)
    with pytest.raises(ApplicationError, match="has not been retro-hunted") as refused:
        services.signature_approve(signature=sig, actor=reviewer)
    assert refused.value.extra["gate"] == "not_gated"

    gate(sig)
    # a clean app stored after the hunt started makes the gate stale
    stored_sample(corpus / "apks" / SMALL_APK, label="clean", user=researcher)
    with pytest.raises(ApplicationError, match="clean sample") as stale:
        services.signature_approve(signature=sig, actor=reviewer)
    assert (stale.value.extra["gate"], stale.value.extra["clean_added"]) == ("stale", 1)

    gate(sig)
    services.signature_approve(signature=sig, actor=reviewer)
    sig.refresh_from_db()
    assert sig.status == Status.DEPLOYED


def test_a_clean_hit_blocks_approval_unless_overridden_with_an_audited_reason(
    researcher, reviewer, clean_app
) -> None:
    sig = _submitted(researcher, clean_app.sha256)
    hunt = gate(sig)

    with pytest.raises(ApplicationError, match="hits 1 clean app") as refused:
        services.signature_approve(signature=sig, actor=reviewer)
    extra = refused.value.extra
    assert extra["gate"] == "clean_hits"
    assert extra["hunt"] == hunt.pk
    assert [h["sha256"] for h in extra["clean_hits"]] == [clean_app.sha256]
    assert extra["review_diff"]["new_clean_hits"] == [clean_app.sha256]
    sig.refresh_from_db()
    assert sig.status == Status.IN_REVIEW

    services.signature_approve(
        signature=sig, actor=reviewer, override_reason="the vendor's own debug build"
    )
    rev = SignatureRevision.objects.get(signature=sig)
    assert (rev.state, rev.clean_hits) == (RevisionState.APPROVED, 1)
    assert rev.gate_override_reason == "the vendor's own debug build"
    entry = AuditEntry.objects.get(action="signature.gate_override")
    assert (entry.actor, entry.reason) == (reviewer, "the vendor's own debug build")


def test_the_approve_api_answers_409_with_the_clean_hits_and_accepts_an_override(
    api, researcher, reviewer, clean_app
) -> None:
    sig = _submitted(researcher, clean_app.sha256)
    gate(sig)
    url = f"/api/v1/signatures/{sig.pk}/approve/"
    refused = api(reviewer).post(url, {}, format="json")
    assert refused.status_code == 409
    assert refused.json()["extra"]["clean_hit_count"] == 1
    ok = api(reviewer).post(url, {"override_reason": "known FP, tracked"}, format="json")
    assert ok.status_code == 200
    assert ok.json()["status"] == "deployed"


def test_publishing_refuses_a_release_with_a_revision_never_gated(
    researcher, reviewer, update_repo
) -> None:
    from threats.tests.factories import deployed_signature

    gated = _submitted(researcher, "cd" * 32)
    gate(gated)
    services.signature_approve(signature=gated, actor=reviewer)
    bypassed = deployed_signature()  # approved straight in the database: never gated

    with pytest.raises(ApplicationError, match="never retro-hunted") as refused:
        release_publish(by=reviewer, enqueue=False)
    assert [u["id"] for u in refused.value.extra["ungated"]] == [bypassed.pk]
    assert refused.value.status_code == 409

    gate(bypassed)
    assert release_publish(by=reviewer, enqueue=False).signature_count == 2
