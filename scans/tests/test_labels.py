"""Labels change with a reason, one or many at once, by API and on the page; a change to or
from clean makes stale the hunts that hit the app, and the gate then asks for a new hunt."""

from __future__ import annotations

from pathlib import Path

import pytest

from portal.exceptions import ApplicationError
from portal.models import AuditEntry
from portal.testing import gate
from scans.models import RetroHunt, Sample
from scans.tests.factories import stored_sample
from threats import services
from threats.models import Signature
from threats.tests.factories import make_family

pytestmark = pytest.mark.django_db

BANK = "InsecureBankv2.apk"
CLEAN = "a2dp.Vol_137.apk"
OTHER = "com.politedroid_4.apk"


@pytest.fixture
def apps(corpus: Path, researcher) -> dict[str, Sample]:
    return {
        name: stored_sample(corpus / "apks" / name, user=researcher)[0]
        for name in (BANK, CLEAN, OTHER)
    }


def _submitted(author, sha256: str) -> Signature:
    sig = services.signature_create(
        actor=author,
        kind="hash",
        body={"algorithm": "sha256", "target": "apk", "value": sha256},
        family=make_family(name="Joker"),
    )
    return services.signature_submit(signature=sig, actor=author)


def test_one_label_changes_by_api_with_its_reason_in_the_audit(api, researcher, apps) -> None:
    bank = apps[BANK]
    response = api(researcher).post(
        f"/api/v1/samples/{bank.sha256}/label/",
        {"label": "malicious", "reason": "dropper seen in the wild"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["changed"] == [bank.sha256]
    bank.refresh_from_db()
    assert bank.label == "malicious"
    entry = AuditEntry.objects.get(action="sample.label")
    assert entry.reason == "dropper seen in the wild"
    assert entry.actor == researcher
    # the sample's own API says the label, apart from the verdict
    body = api(researcher).get(f"/api/v1/samples/{bank.sha256}/").json()
    assert body["label"] == "malicious"
    assert "verdict_release" in body


def test_many_labels_change_at_once_by_any_hash(api, researcher, apps) -> None:
    hashes = [apps[BANK].md5, apps[OTHER].sha1, "f" * 64]
    response = api(researcher).post(
        "/api/v1/samples/labels/",
        {"hashes": hashes, "label": "clean", "reason": "vendor allow-list"},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert sorted(body["changed"]) == sorted([apps[BANK].sha256, apps[OTHER].sha256])
    assert body["not_found"] == ["f" * 64]
    assert Sample.objects.filter(label="clean").count() == 2
    assert AuditEntry.objects.filter(action="sample.label").count() == 2
    # the same again changes nothing and audits nothing
    again = (
        api(researcher)
        .post(
            "/api/v1/samples/labels/",
            {"hashes": hashes, "label": "clean", "reason": "vendor allow-list"},
            format="json",
        )
        .json()
    )
    assert again["changed"] == []
    assert len(again["unchanged"]) == 2
    assert AuditEntry.objects.filter(action="sample.label").count() == 2


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ({"hashes": ["ab" * 32], "label": "clean", "reason": "  "}, "reason"),
        ({"hashes": ["nothex"], "label": "clean", "reason": "r"}, "not an MD5"),
        ({"hashes": ["ab" * 32], "label": "evil", "reason": "r"}, "label"),
        ({"hashes": [], "label": "clean", "reason": "r"}, "hashes"),
        ({"hashes": ["ab" * 32] * 1001, "label": "clean", "reason": "r"}, "hashes"),
    ],
)
def test_bad_label_changes_get_a_json_400(api, researcher, apps, payload, says) -> None:
    response = api(researcher).post("/api/v1/samples/labels/", payload, format="json")
    assert response.status_code == 400
    assert says in response.content.decode()
    assert response.json()["message"]


def test_roles_without_write_cannot_relabel(api, auditor, apps) -> None:
    sha = apps[BANK].sha256
    response = api(auditor).post(
        f"/api/v1/samples/{sha}/label/", {"label": "clean", "reason": "r"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["message"]
    assert api(None).post("/api/v1/samples/labels/", {}, format="json").status_code in (401, 403)
    missing = api(auditor).post(
        f"/api/v1/samples/{'0' * 64}/label/", {"label": "clean", "reason": "r"}, format="json"
    )
    assert missing.status_code == 403  # the role is checked before the sample is looked up


def test_unknown_sample_is_a_json_404(api, researcher) -> None:
    response = api(researcher).post(
        f"/api/v1/samples/{'0' * 64}/label/", {"label": "clean", "reason": "r"}, format="json"
    )
    assert response.status_code == 404
    assert response.json()["message"]


def test_relabelling_a_hit_app_clean_makes_the_gate_stale_until_hunted_again(
    researcher, reviewer, apps, client
) -> None:
    from scans.labels import samples_relabel

    Sample.objects.filter(pk=apps[CLEAN].pk).update(label="clean")
    sig = _submitted(researcher, apps[BANK].sha256)
    hunt = gate(sig)
    assert hunt.match_count == 1
    # a hunt that did not hit the relabelled app stays valid
    untouched = samples_relabel(
        hashes=[apps[OTHER].sha256], label="clean", reason="allow-listed", by=researcher
    )
    assert untouched.stale_hunts == ()

    result = samples_relabel(
        hashes=[apps[BANK].sha256], label="clean", reason="it is the real bank app", by=reviewer
    )
    assert result.stale_hunts == (hunt.pk,)
    hunt.refresh_from_db()
    assert "relabelled from unknown to known clean" in hunt.stale_reason
    with pytest.raises(ApplicationError, match="is stale") as refused:
        services.signature_approve(signature=sig, actor=reviewer)
    assert refused.value.extra["gate"] == "stale"

    # the review queue shows it
    client.force_login(reviewer)
    queue = client.get("/signatures/review/").content.decode()
    assert 'data-gate="stale"' in queue

    # a new hunt sees the clean hit and the gate asks for an override, no longer "stale"
    again = gate(sig)
    assert again.pk != hunt.pk
    with pytest.raises(ApplicationError, match="hits 1 clean app") as refused:
        services.signature_approve(signature=sig, actor=reviewer)
    assert refused.value.extra["gate"] == "clean_hits"
    assert RetroHunt.objects.get(pk=again.pk).stale_reason == ""


def test_the_sample_page_changes_a_label_and_keeps_label_and_verdict_apart(
    client, researcher, apps
) -> None:
    bank = apps[BANK]
    client.force_login(researcher)
    page = client.get(f"/samples/{bank.sha256}/").content.decode()
    assert 'id="sample-label"' in page
    assert "Unknown" in page
    assert 'id="relabel-form"' in page
    response = client.post(
        f"/samples/{bank.sha256}/label/", {"label": "malicious", "reason": "seen stealing SMS"}
    )
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "Known malicious" in page
    assert "now labelled known malicious" in page
    # without a reason nothing changes, and the page says why
    response = client.post(f"/samples/{bank.sha256}/label/", {"label": "clean", "reason": ""})
    page = client.get(response["Location"]).content.decode()
    assert "a reason is required" in page
    bank.refresh_from_db()
    assert bank.label == "malicious"


def test_the_bulk_page_relabels_pasted_hashes(client, researcher, auditor, apps) -> None:
    client.force_login(researcher)
    text = f"{apps[BANK].sha256}\n{apps[OTHER].md5}, {'e' * 40}"
    page = client.post(
        "/samples/labels/", {"hashes": text, "label": "malicious", "reason": "feed X"}
    ).content.decode()
    assert 'id="labels-result"' in page
    assert "2 sample(s) now labelled known malicious" in page
    assert "e" * 40 in page  # listed as not found
    client.force_login(auditor)
    assert client.get("/samples/labels/").status_code == 403
