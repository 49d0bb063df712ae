"""Severity and family are reviewed like the body: they live on the revision, and what ships
(``threats.public.deployed_records``) is the deployed revision's, never an edit waiting for review.
"""

import pytest

from portal.exceptions import ForbiddenError
from portal.testing import gate
from threats import public as api
from threats import services
from threats.models import RevisionState, Severity, Status
from threats.tests.factories import make_family

pytestmark = pytest.mark.django_db

SHA = "c" * 64


def deployed(author, approver):
    """A malicious Joker hash signature, approved by ``approver`` through the real gate."""
    family = make_family(name="Joker", category="sms-fraud", severity=Severity.MALICIOUS)
    sig = services.signature_create(actor=author, kind="hash", body=SHA, family=family)
    services.signature_submit(signature=sig, actor=author)
    gate(sig)
    services.signature_approve(signature=sig, actor=approver)
    return sig


def shipped(sig):
    (record,) = [r for r in api.deployed_records() if r.id == sig.pk]
    return record


def test_downgrading_severity_ships_only_after_another_reviewer_approves(researcher, reviewer):
    # given a deployed malicious signature
    sig = deployed(researcher, reviewer)
    # when its author downgrades it to riskware
    services.signature_update(signature=sig, actor=researcher, severity=Severity.RISKWARE)
    # then that is a new draft revision; phones still get r1, malicious
    sig.refresh_from_db()
    assert sig.status == Status.DEPLOYED
    assert sig.current_revision.number == 2
    assert sig.current_revision.state == RevisionState.DRAFT
    assert sig.current_revision.severity == Severity.RISKWARE
    assert sig.current_revision.body == sig.deployed_revision.body
    assert sig.deployed_revision.severity == Severity.MALICIOUS
    assert (shipped(sig).revision, shipped(sig).severity) == (1, "malicious")

    # when it is submitted and passes the gate, it still waits for a reviewer
    services.signature_submit(signature=sig, actor=researcher)
    gate(sig)
    assert shipped(sig).severity == "malicious"

    # and the author cannot approve it (four eyes)
    with pytest.raises(ForbiddenError):
        services.signature_approve(signature=sig, actor=researcher)
    assert shipped(sig).severity == "malicious"

    # when another reviewer approves it, the downgrade ships as r2
    services.signature_approve(signature=sig, actor=reviewer)
    record = shipped(sig)
    assert (record.revision, record.severity) == (2, "riskware")
    assert record.name == f"Andr.SmsFraud.Joker-{sig.pk}-2"


def test_a_reviewer_who_changed_the_severity_cannot_approve_the_change(
    researcher, reviewer, make_user
):
    # given a deployed signature that a second reviewer downgrades
    sig = deployed(researcher, reviewer)
    other = make_user("reviewer", username="val")
    services.signature_update(signature=sig, actor=other, severity=Severity.SUSPICIOUS)
    services.signature_submit(signature=sig, actor=other)
    gate(sig)
    # when that reviewer approves their own change, then it is refused
    with pytest.raises(ForbiddenError, match="four eyes"):
        services.signature_approve(signature=sig, actor=other)
    assert shipped(sig).severity == "malicious"
    # and the first reviewer may
    services.signature_approve(signature=sig, actor=reviewer)
    assert shipped(sig).severity == "suspicious"


def test_moving_to_another_family_keeps_the_shipped_name_until_approved(researcher, reviewer):
    # given a deployed Joker signature and another family in another category
    sig = deployed(researcher, reviewer)
    hiddad = make_family(name="Hiddad", category="adware", severity=Severity.RISKWARE)
    # when its author moves it to Hiddad
    services.signature_update(signature=sig, actor=researcher, family=hiddad)
    sig.refresh_from_db()
    # then the editor shows the new family, and phones keep the old name
    assert sig.family == hiddad
    assert sig.name == f"Andr.Adware.Hiddad-{sig.pk}-2"
    assert shipped(sig).name == f"Andr.SmsFraud.Joker-{sig.pk}-1"
    assert shipped(sig).severity == "malicious"  # a family's severity is only a default
    # when another reviewer approves it after the gate, the new name ships
    services.signature_submit(signature=sig, actor=researcher)
    gate(sig)
    services.signature_approve(signature=sig, actor=reviewer)
    assert shipped(sig).name == f"Andr.Adware.Hiddad-{sig.pk}-2"


def test_severity_of_a_draft_is_edited_in_place(researcher):
    # given a draft
    family = make_family(name="Joker")
    sig = services.signature_create(actor=researcher, kind="hash", body=SHA, family=family)
    # when its author changes the severity and the family
    other = make_family(name="Hiddad", category="adware")
    services.signature_update(
        signature=sig, actor=researcher, severity=Severity.SUSPICIOUS, family=other
    )
    sig.refresh_from_db()
    # then the one draft revision carries them, and the list's copies follow
    rev = sig.current_revision
    assert rev is not None
    assert sig.revisions.count() == 1
    assert (rev.number, rev.severity, rev.family) == (1, "suspicious", other)
    assert (sig.severity, sig.family) == ("suspicious", other)


def test_notes_on_a_deployed_signature_change_at_once_without_a_revision(researcher, reviewer):
    # given a deployed signature
    sig = deployed(researcher, reviewer)
    before = shipped(sig)
    # when its author changes tags, references and description (and saves the same severity)
    services.signature_update(
        signature=sig,
        actor=researcher,
        severity=Severity.MALICIOUS,
        tags=["premium-sms"],
        references=["https://example.org/joker"],
        description="Joker dropper hash",
    )
    sig.refresh_from_db()
    # then no revision waits for review, and what ships is unchanged
    assert sig.revisions.count() == 1
    assert [t.name for t in sig.tags.all()] == ["premium-sms"]
    assert sig.description == "Joker dropper hash"
    assert shipped(sig) == before


def test_patch_severity_of_a_deployed_signature_answers_the_new_draft_revision(
    api, researcher, reviewer
):
    # given a deployed signature
    sig = deployed(researcher, reviewer)
    url = f"/api/v1/signatures/{sig.pk}/"
    # when its author downgrades it over the API
    response = api(researcher).patch(
        url, {"severity": "riskware", "reason": "an ad SDK"}, format="json"
    )
    # then the answer is the new draft revision, with what still ships beside it
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["revision"], body["revision_state"]) == (2, "draft")
    assert body["severity"] == "riskware"
    assert (body["deployed_revision"], body["deployed_severity"]) == (1, "malicious")
    assert body["deployed_family"] == "Joker"
    assert body["status"] == "deployed"
    # and the history shows the change with a diff
    history = api(researcher).get(f"{url}history/").json()
    assert [(h["number"], h["severity"]) for h in history] == [(2, "riskware"), (1, "malicious")]
    assert "-severity: malicious" in history[0]["diff"]
    assert "+severity: riskware" in history[0]["diff"]
    assert history[1]["deployed"] is True
    # and the author cannot approve it over the API either
    api(researcher).post(f"{url}submit/", {}, format="json")
    gate(sig)
    refused = api(researcher).post(f"{url}approve/", {}, format="json")
    assert refused.status_code == 403
    assert shipped(sig).severity == "malicious"


def test_history_shows_a_family_change(api, researcher, reviewer):
    sig = deployed(researcher, reviewer)
    hiddad = make_family(name="Hiddad", category="adware")
    api(researcher).patch(f"/api/v1/signatures/{sig.pk}/", {"family": "Hiddad"}, format="json")
    history = api(researcher).get(f"/api/v1/signatures/{sig.pk}/history/").json()
    assert history[0]["family"] == hiddad.name
    assert "-family: Joker (sms-fraud)" in history[0]["diff"]
    assert "+family: Hiddad (adware)" in history[0]["diff"]


def test_signature_page_says_what_still_ships(client, researcher, reviewer):
    # given a deployed signature downgraded by its author
    sig = deployed(researcher, reviewer)
    services.signature_update(signature=sig, actor=researcher, severity=Severity.RISKWARE)
    # when a reviewer opens its page
    client.force_login(reviewer)
    page = client.get(f"/signatures/{sig.pk}/").content.decode()
    # then it shows the pending severity and the one phones still get
    assert 'id="shipping-severity"' in page
    assert "r1 ships as" in page
    assert "+severity: riskware" in page


def test_list_filters_by_the_current_revision_severity(api, researcher, reviewer):
    sig = deployed(researcher, reviewer)
    services.signature_update(signature=sig, actor=researcher, severity=Severity.RISKWARE)

    def ids(**params):
        rows = api(reviewer).get("/api/v1/signatures/", params).json()["results"]
        return [r["id"] for r in rows]

    assert ids(severity="riskware") == [sig.pk]
    assert ids(severity="malicious") == []


def test_editor_severity_change_on_a_deployed_signature_makes_a_revision(
    client, researcher, reviewer
):
    # given a deployed signature
    sig = deployed(researcher, reviewer)
    client.force_login(researcher)
    editor = client.get(f"/signatures/{sig.pk}/edit/").content.decode()
    assert "severity or family makes a new draft revision" in editor
    # when its author saves the editor with only the severity changed
    response = client.post(
        f"/signatures/{sig.pk}/edit/",
        {
            "family": str(sig.family_id),
            "severity": "suspicious",
            "body": SHA,
            "tags": "",
            "description": "",
        },
    )
    # then a new draft revision waits for review and r1 keeps shipping
    assert response.status_code == 302
    sig.refresh_from_db()
    assert (sig.current_revision.number, sig.current_revision.severity) == (2, "suspicious")
    assert shipped(sig).severity == "malicious"
