"""The rule's own name (a YARA identifier, a Quark crime, a feed row's name) beside the
generated ``Andr.*`` one, in the signature list and the review queue; search finds both."""

from __future__ import annotations

import pytest

from threats import services
from threats.models import Signature, Status
from threats.tests.factories import make_family, make_signature

pytestmark = pytest.mark.django_db

QUARK = "quark/quark-engine/sendLocation_SMS.json"  # crime "Send Location via SMS"
YARA = "yara/koodous_social_rulesets/skymobi (913).yara"  # rules SkyMobiVariant, SkymobiPorn…
FEED = (
    "kind,body,name,family,severity\n"
    'hash,"{""algorithm"": ""sha256"", ""target"": ""apk"", ""value"": ""'
    + "ab" * 32
    + '""}",Premium dialer feed entry,Joker,malicious\n'
)


@pytest.fixture
def imported(corpus, tmp_path, researcher) -> dict[str, Signature]:
    make_family(name="Joker")
    feed = tmp_path / "feed.csv"
    feed.write_text(FEED)
    summary = services.signatures_import_paths(
        actor=researcher, paths=[corpus / QUARK, corpus / YARA, feed]
    )
    assert summary.imported >= 3
    sigs = Signature.objects.select_related("current_revision")
    by_name = {}
    for sig in sigs:
        title = sig.description.rpartition(" (imported from ")[0]
        by_name[title] = sig
    return by_name


def test_the_list_shows_each_rules_own_name_beside_the_generated_one(
    client, researcher, imported
) -> None:
    client.force_login(researcher)
    page = client.get("/signatures/").content.decode()
    for title in ("Send Location via SMS", "SkyMobiVariant", "Premium dialer feed entry"):
        sig = imported[title]
        row = page[page.index(f'href="/signatures/{sig.pk}/"') :]
        row = row[: row.index("</td>")]
        assert sig.name in row
        assert f'<div class="muted rule-name" title="the rule\'s own name">{title}</div>' in row


def test_a_hand_written_yara_rule_shows_its_public_rule_name(client, researcher) -> None:
    body = (
        "private rule helper { condition: true }\n"
        'rule Joker_Dropper { strings: $a = "premium" condition: $a and helper }\n'
    )
    sig = make_signature(kind="yara", body=body, description="written here")
    client.force_login(researcher)
    page = client.get("/signatures/").content.decode()
    assert sig.name in page
    assert ">Joker_Dropper</div>" in page


def test_search_finds_a_signature_by_its_own_name_and_by_the_generated_one(
    api, researcher, imported
) -> None:
    client = api(researcher)
    quark = imported["Send Location via SMS"]
    feed = imported["Premium dialer feed entry"]

    def found(q: str) -> set[int]:
        response = client.get("/api/v1/signatures/", {"q": q})
        assert response.status_code == 200, response.json()
        return {s["id"] for s in response.json()["results"]}

    assert quark.pk in found("send location via sms")
    assert imported["SkyMobiVariant"].pk in found("SkyMobiVariant")
    assert feed.pk in found("premium dialer")
    assert found(feed.name) == {feed.pk}  # Andr.SmsFraud.Joker-<id>-1
    family_name = feed.name.rsplit("-", 2)[0]  # Andr.SmsFraud.Joker
    assert feed.pk in found(family_name)
    assert quark.pk not in found(family_name)


def test_the_review_queue_shows_the_rules_own_name(client, reviewer, researcher, imported):
    quark = imported["Send Location via SMS"]
    result = services.signatures_submit(actor=researcher, ids=[quark.pk], reason="imported")
    assert quark.pk in result.succeeded, result.failed
    quark.refresh_from_db()
    assert quark.status == Status.IN_REVIEW
    client.force_login(reviewer)
    page = client.get("/signatures/review/").content.decode()
    assert quark.name in page
    assert ">Send Location via SMS</div>" in page
