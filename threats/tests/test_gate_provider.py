"""One gate provider (threats/gates.py): registered once, typed, frozen, and with none
registered an approval still refuses a revision never gated."""

import dataclasses

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from portal.exceptions import ConflictError
from scans.gates import CLEAN_CORPUS_GATE
from scans.models import RetroHunt
from threats import gates, services
from threats.gates import GateDetail, GateRefusal, GateState, ReviewDiff, SampleLink
from threats.models import SignatureRevision, Status
from threats.tests.factories import make_family

SHA = "b" * 64


def _in_review(author, body=SHA):
    sig = services.signature_create(
        actor=author, kind="hash", body=body, family=make_family(name="Joker")
    )
    services.signature_submit(signature=sig, actor=author)
    sig.refresh_from_db()
    return sig


class _OtherGate:
    """Another app's gate: refuses everything."""

    def approval_check(self, revision, override_reason):
        raise GateRefusal("no", {"gate": "not_gated"}).error()

    def approval_refusals(self, revisions):
        return {r.pk: GateRefusal("no", {"gate": "not_gated"}) for r in revisions}

    def run_now(self, revision_ids):
        pass

    def on_submit(self, *, revision_ids, actor):
        pass

    def states(self, revisions):
        return {r.pk: "not_gated" for r in revisions}

    def detail(self, revision):
        return GateDetail("not_gated", None, (), 0, 0, "", 0, 0, None, None)


def test_the_scans_gate_is_the_one_provider_and_a_different_one_is_refused() -> None:
    # given the scans app registered its gate at start-up
    assert gates.gate_provider() is CLEAN_CORPUS_GATE
    # when it registers again (AppConfig.ready may run twice), nothing changes
    gates.set_gate_provider(CLEAN_CORPUS_GATE)
    assert gates.gate_provider() is CLEAN_CORPUS_GATE
    # but another provider is refused, and the registered one stays
    with pytest.raises(ImproperlyConfigured, match="already registered"):
        gates.set_gate_provider(_OtherGate())
    assert gates.gate_provider() is CLEAN_CORPUS_GATE


def test_what_the_gate_returns_is_frozen() -> None:
    link = SampleLink(sha256=SHA, package="com.example", name="x.apk", url=f"/samples/{SHA}/")
    state = GateState(gate="clean_hits", hunt=3, clean_hits=(link,), clean_min=1)
    diff = ReviewDiff("nothing (first revision)", None, False, 3, None, 9, (link,), (), ())
    detail = GateDetail("clean_hits", 3, (link,), 1, 0, "", 1, 1, "/retrohunts/3/", diff)
    refusal = GateRefusal("Refused.", {"gate": "stale"})
    for value, name in [
        (link, "package"),
        (state, "gate"),
        (diff, "against"),
        (detail, "hunt_url"),
        (refusal, "message"),
    ]:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, name, None)
    # a refusal raises as the API's 409 with its details
    error = refusal.error()
    assert isinstance(error, ConflictError)
    assert (error.message, error.extra) == ("Refused.", {"gate": "stale"})


@pytest.mark.django_db
def test_with_no_provider_approval_refuses_a_revision_never_gated(researcher, reviewer) -> None:
    sig = _in_review(researcher)
    with gates.gate_provider_replaced(None):
        # when a reviewer approves a revision never gated: refused, with the gate's sentence
        with pytest.raises(ConflictError) as refused:
            services.signature_approve(signature=sig, actor=reviewer)
        assert refused.value.extra == {"gate": "not_gated"}
        assert "has not been retro-hunted" in refused.value.message
        # the bulk approve refuses it the same way
        result = services.signatures_approve(actor=reviewer, ids=[sig.pk])
        assert result.succeeded == []
        assert "has not been retro-hunted" in result.failed[0]["message"]
        # pages: the verdict from the revision's own fields, and no gate card
        revision = sig.current_revision
        assert gates.gate_states([revision]) == {revision.pk: "not_gated"}
        assert gates.gate_detail(revision) is None
        with pytest.raises(RuntimeError, match="no gate provider"):
            gates.run_gate_now([revision.pk])
    sig.refresh_from_db()
    assert sig.status == Status.IN_REVIEW


@pytest.mark.django_db
def test_with_no_provider_a_revision_marked_gated_is_approved(researcher, reviewer) -> None:
    # given a revision whose gate was recorded (gated_at) but no hunt this process knows
    sig = _in_review(researcher)
    SignatureRevision.objects.filter(pk=sig.current_revision_id).update(gated_at=timezone.now())
    # the clean-corpus gate refuses it (no finished hunt of this body)
    with pytest.raises(ConflictError) as refused:
        services.signature_approve(signature=sig, actor=reviewer)
    assert refused.value.extra == {"gate": "not_gated"}
    # with no provider, only gated_at is checked: approved
    with gates.gate_provider_replaced(None):
        services.signature_approve(signature=sig, actor=reviewer)
    sig.refresh_from_db()
    assert sig.status == Status.DEPLOYED


@pytest.mark.django_db
def test_with_no_provider_a_submission_starts_no_hunt(
    researcher, django_capture_on_commit_callbacks
) -> None:
    with gates.gate_provider_replaced(None), django_capture_on_commit_callbacks(execute=True):
        sig = _in_review(researcher)
    assert sig.status == Status.IN_REVIEW
    assert not RetroHunt.objects.exists()
    # with the clean-corpus gate, the same submission starts one gate hunt
    with django_capture_on_commit_callbacks(execute=True):
        _in_review(researcher, body="c" * 64)
    assert RetroHunt.objects.count() == 1
