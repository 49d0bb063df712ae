"""The front door other apps use: records for releases and retro-hunts, refs for pages."""

import pytest

from engine.features import RuleRecord
from threats import public as api
from threats.models import Category, RevisionState, SignatureRevision, Status
from threats.tests.factories import deployed_signature, make_family, make_signature

pytestmark = pytest.mark.django_db


def test_deployed_records_ship_deployed_and_noisy_revisions_only():
    # given one signature in every status
    family = make_family(name="Joker", category=Category.SMS_FRAUD)
    by_status = {s: make_signature(family=family, status=s) for s in Status.values}

    # when the releases app asks what to ship
    records = api.deployed_records()

    # then only the deployed and noisy ones come back, noisy flagged, named by convention
    assert [r.id for r in records] == sorted(
        [by_status[Status.DEPLOYED].pk, by_status[Status.NOISY].pk]
    )
    noisy = {r.id: r.noisy for r in records}
    assert noisy == {by_status[Status.DEPLOYED].pk: False, by_status[Status.NOISY].pk: True}
    deployed = next(r for r in records if r.id == by_status[Status.DEPLOYED].pk)
    assert isinstance(deployed, RuleRecord)
    assert deployed.name == f"Andr.SmsFraud.Joker-{deployed.id}-1"
    assert deployed.kind == "hash"
    assert deployed.body["algorithm"] == "sha256"
    assert deployed.severity == "malicious"


def test_deployed_records_keep_shipping_the_deployed_revision_while_a_new_one_is_drafted():
    # given a deployed signature with a newer draft revision
    sig = deployed_signature()
    deployed_rev = sig.deployed_revision
    assert deployed_rev is not None
    draft = SignatureRevision.objects.create(
        signature=sig,
        number=2,
        body={"algorithm": "sha256", "value": "ab" * 32, "target": "apk"},
        severity=sig.severity,
        family=sig.family,
        state=RevisionState.DRAFT,
        author=sig.author,
        last_editor=sig.author,
    )
    sig.current_revision = draft
    sig.save()

    # when a release is built
    (record,) = api.deployed_records()

    # then it is the deployed revision, named with its own number
    assert record.revision == 1
    assert record.body == deployed_rev.body
    assert record.name.endswith(f"-{sig.pk}-1")


def test_deployed_records_filtered_by_revision_ids():
    a, b = deployed_signature(), deployed_signature()
    assert b.deployed_revision_id is not None
    records = api.deployed_records([b.deployed_revision_id, 999_999])
    assert [r.id for r in records] == [b.pk]
    assert api.deployed_records([]) == []
    assert a.pk not in [r.id for r in records]


def test_records_for_revisions_include_drafts():
    draft = make_signature()
    assert draft.current_revision_id is not None
    (record,) = api.records_for_revisions([draft.current_revision_id, 424242])
    assert record.id == draft.pk
    assert record.revision == 1
    assert record.noisy is False


def test_signature_refs_link_to_the_signature_page(client, researcher):
    sig = make_signature(status=Status.IN_REVIEW, family=make_family(name="Harly"))
    refs = api.signature_refs([sig.pk, 123456])
    assert list(refs) == [sig.pk]
    ref = refs[sig.pk]
    assert ref.status == "in_review"
    assert ref.name == f"Andr.SmsFraud.Harly-{sig.pk}-1"
    assert ref.url == f"/signatures/{sig.pk}/"
    client.force_login(researcher)
    assert client.get(ref.url).status_code == 200


def test_current_revision_ids():
    sig = make_signature()
    assert api.current_revision_ids([sig.pk]) == {sig.pk: sig.current_revision_id}


def test_front_door_is_cheap(django_assert_max_num_queries):
    for _ in range(30):
        deployed_signature()
    with django_assert_max_num_queries(2):
        assert len(api.deployed_records()) == 30
