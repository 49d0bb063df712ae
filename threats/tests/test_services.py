"""The workflow rules, enforced by the services and (four eyes) by the database."""

import pytest
from django.db import IntegrityError, transaction

from portal.exceptions import ApplicationError, ConflictError, ForbiddenError
from portal.models import AuditEntry
from portal.testing import gate
from threats import services
from threats.models import RevisionState, Signature, SignatureRevision, Status
from threats.tests.factories import make_family

pytestmark = pytest.mark.django_db

SHA = "a" * 64
YARA = 'rule premium_sms {\n  strings:\n    $a = "sendTextMessage"\n  condition:\n    $a\n}\n'


def draft(author, body=SHA, kind="hash", **kwargs):
    return services.signature_create(
        actor=author, kind=kind, body=body, family=make_family(name="Joker"), **kwargs
    )


def in_review(author, **kwargs):
    """Submitted, and through the clean-corpus gate (a real retro-hunt, here of no samples)."""
    sig = draft(author, **kwargs)
    services.signature_submit(signature=sig, actor=author)
    gate(sig)
    return sig


def test_create_normalises_and_names_the_signature(researcher):
    sig = draft(researcher, body=SHA.upper(), tags=["SMS", "joker"])
    assert sig.status == Status.DRAFT
    assert sig.current_revision is not None
    assert sig.current_revision.body == {"algorithm": "sha256", "value": SHA, "target": "apk"}
    assert sig.name == f"Andr.SmsFraud.Joker-{sig.pk}-1"
    assert sorted(t.name for t in sig.tags.all()) == ["joker", "sms"]
    assert "joker" in sig.search_text
    assert AuditEntry.objects.filter(action="signature.create", object_id=str(sig.pk)).exists()


def test_create_refuses_a_bad_body_with_line_and_column(researcher):
    with pytest.raises(ApplicationError) as err:
        draft(researcher, kind="yara", body="rule x { condition: foo }")
    errors = err.value.extra["errors"]
    assert errors[0]["line"] == 1
    assert errors[0]["column"] is not None
    assert not Signature.objects.exists()


def test_create_refuses_unknown_kind(researcher):
    with pytest.raises(ApplicationError, match="Unknown signature kind"):
        draft(researcher, kind="nope", body="x")


def test_duplicate_is_refused_with_a_link(researcher, researcher2):
    first = draft(researcher)
    with pytest.raises(ConflictError) as err:
        draft(researcher2, body=SHA.upper())  # same normalised body
    assert err.value.status_code == 409
    assert err.value.extra["existing"] == {"id": first.pk, "url": f"/signatures/{first.pk}/"}


def test_author_cannot_approve_own_signature(researcher, make_user):
    # given a reviewer who wrote a signature and submitted it
    author = make_user("reviewer", username="self-reviewer")
    sig = in_review(author)
    # when the same reviewer approves it, then it is refused and nothing changed
    with pytest.raises(ForbiddenError, match="four eyes"):
        services.signature_approve(signature=sig, actor=author)
    sig.refresh_from_db()
    assert sig.status == Status.IN_REVIEW
    assert sig.deployed_revision is None


def test_last_editor_cannot_approve(researcher, reviewer, make_user):
    # given a researcher's draft that a reviewer edited before it was submitted
    sig = draft(researcher)
    services.signature_update(signature=sig, actor=reviewer, body="b" * 64)
    services.signature_submit(signature=sig, actor=researcher)
    gate(sig)
    # when that reviewer approves, then it is refused
    with pytest.raises(ForbiddenError):
        services.signature_approve(signature=sig, actor=reviewer)
    # and another reviewer may
    other = make_user("reviewer", username="other-reviewer")
    services.signature_approve(signature=sig, actor=other, comment="looks right")
    sig.refresh_from_db()
    assert sig.status == Status.DEPLOYED
    assert sig.deployed_revision_id == sig.current_revision_id


def test_database_refuses_self_approval_even_bypassing_the_service(researcher):
    sig = in_review(researcher)
    rev = sig.current_revision
    assert rev is not None
    with pytest.raises(IntegrityError), transaction.atomic():
        SignatureRevision.objects.filter(pk=rev.pk).update(
            state=RevisionState.APPROVED, reviewed_by=researcher
        )


def test_database_refuses_approval_by_last_editor(researcher, reviewer):
    sig = in_review(researcher)
    rev = sig.current_revision
    assert rev is not None
    with pytest.raises(IntegrityError), transaction.atomic():
        SignatureRevision.objects.filter(pk=rev.pk).update(
            state=RevisionState.APPROVED, reviewed_by=reviewer, last_editor=reviewer
        )


def test_full_workflow_writes_an_audit_row_with_reason_per_transition(researcher, reviewer):
    sig = in_review(researcher)
    services.signature_reject(signature=sig, actor=reviewer, reason="too broad")
    sig.refresh_from_db()
    assert sig.status == Status.DRAFT
    assert sig.status_reason == "too broad"
    # the rejected revision stays in history; an edit makes revision 2
    services.signature_update(signature=sig, actor=researcher, body="c" * 64)
    sig.refresh_from_db()
    assert sig.revision_number == 2
    services.signature_submit(signature=sig, actor=researcher)
    gate(sig)
    services.signature_approve(signature=sig, actor=reviewer, comment="ok")
    services.signature_mark_noisy(signature=sig, actor=reviewer, reason="FP on a game")
    services.signature_disable(signature=sig, actor=reviewer, reason="retired")
    actions = list(
        AuditEntry.objects.filter(object_type="threats.signature", object_id=str(sig.pk))
        .order_by("id")
        .values_list("action", "reason")
    )
    assert [a for a, _ in actions] == [
        "signature.create",
        "signature.submit",
        "signature.reject",
        "signature.update",
        "signature.submit",
        "signature.approve",
        "signature.noisy",
        "signature.disable",
    ]
    reasons = dict(actions)
    assert reasons["signature.reject"] == "too broad"
    assert reasons["signature.noisy"] == "FP on a game"
    assert reasons["signature.disable"] == "retired"


def test_editing_a_deployed_signature_makes_a_new_draft_revision(researcher, reviewer):
    sig = in_review(researcher)
    services.signature_approve(signature=sig, actor=reviewer)
    deployed_rev = sig.deployed_revision
    services.signature_update(signature=sig, actor=researcher, body="d" * 64)
    sig.refresh_from_db()
    assert sig.status == Status.DEPLOYED  # still shipping
    assert sig.deployed_revision == deployed_rev
    assert sig.current_revision is not None
    assert sig.current_revision.number == 2
    assert sig.current_revision.state == RevisionState.DRAFT
    from threats.public import deployed_records

    assert deployed_records()[0].body["value"] == SHA


def test_only_the_author_edits_a_draft(researcher, researcher2):
    sig = draft(researcher)
    with pytest.raises(ForbiddenError):
        services.signature_update(signature=sig, actor=researcher2, description="mine now")


def test_in_review_cannot_be_edited(researcher):
    sig = in_review(researcher)
    with pytest.raises(ConflictError):
        services.signature_update(signature=sig, actor=researcher, body="e" * 64)


def test_delete_only_drafts(researcher, reviewer):
    sig = draft(researcher)
    services.signature_delete(signature=sig, actor=researcher)
    assert not Signature.objects.filter(pk=sig.pk).exists()
    sig2 = in_review(researcher, body="f" * 64)
    with pytest.raises(ConflictError):
        services.signature_delete(signature=sig2, actor=researcher)


def test_researcher_cannot_moderate(researcher, reviewer):
    sig = in_review(researcher)
    services.signature_approve(signature=sig, actor=reviewer)
    with pytest.raises(ForbiddenError):
        services.signature_mark_noisy(signature=sig, actor=researcher, reason="x")
    with pytest.raises(ApplicationError, match="reason"):
        services.signature_disable(signature=sig, actor=reviewer, reason="  ")


def test_bulk_applies_the_same_rules_one_by_one(researcher, reviewer):
    mine = [in_review(researcher, body=c * 64) for c in "123"]
    own = in_review(reviewer, body="4" * 64)
    result = services.signature_bulk_action(
        actor=reviewer, ids=[*(s.pk for s in mine), own.pk, 99999], action="approve"
    )
    assert result.succeeded == [s.pk for s in mine]
    failed = {f["id"]: f["message"] for f in result.failed}
    assert set(failed) == {own.pk, 99999}
    assert "four eyes" in failed[own.pk]
    assert Signature.objects.filter(status=Status.DEPLOYED).count() == 3


def test_family_rename_updates_search(researcher):
    sig = draft(researcher)
    family = sig.family
    services.family_update(family=family, actor=researcher, data={"name": "Bread"})
    sig.refresh_from_db()
    assert "bread" in sig.search_text
    with pytest.raises(ConflictError):
        services.family_create(
            actor=researcher, name="bread", category="adware", severity="riskware"
        )
