"""What the reviewer sees (issue 6): the gate state and the review difference on the signature
page, the override field when clean hits block approval, hit statistics on the signature page
and in the list (stored counters, no N+1), the clean-hits flag and review-queue filter, and
override reasons on the release page and in the release API."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

from portal.testing import gate
from releases.services import release_publish
from scans.tests.conftest import SMALL_APK
from scans.tests.factories import stored_sample
from threats import services
from threats.models import Signature
from threats.tests.factories import make_family

pytestmark = pytest.mark.django_db

A2DP = "a2dp.Vol_137.apk"


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _hash_body(sha256: str) -> dict[str, str]:
    return {"algorithm": "sha256", "target": "apk", "value": sha256}


def _signature(author, sha256: str, family_name: str = "Joker") -> Signature:
    return services.signature_create(
        actor=author, kind="hash", body=_hash_body(sha256), family=make_family(name=family_name)
    )


def _gate_state(html: str) -> str:
    match = re.search(r'id="gate" data-gate="([a-z_]+)"', html)
    assert match, "no gate card on the page"
    return match.group(1)


@pytest.fixture
def samples(corpus: Path, researcher):
    clean = stored_sample(corpus / "apks" / A2DP, label="clean", user=researcher)[0]
    malicious = stored_sample(corpus / "apks" / SMALL_APK, label="malicious", user=researcher)[0]
    return clean, malicious


@pytest.fixture
def update_repo(settings, tmp_path: Path, monkeypatch):
    from releases.repository import init_dev_repository

    settings.RELEASE_REPO_DIR = tmp_path / "updates"
    settings.TUF_KEYS_DIR = tmp_path / "tuf-keys"
    for name in ("TUF_ROOT_KEY", "TUF_TARGETS_KEY", "TUF_SNAPSHOT_KEY", "TUF_TIMESTAMP_KEY"):
        monkeypatch.delenv(name, raising=False)
    return init_dev_repository()


def test_the_signature_page_shows_each_gate_state(researcher, reviewer, samples, corpus) -> None:
    _clean, malicious = samples
    sig = _signature(researcher, malicious.sha256)
    services.signature_submit(signature=sig, actor=researcher)
    page = _client(reviewer)

    assert _gate_state(page.get(f"/signatures/{sig.pk}/").content.decode()) == "not_gated"

    hunt = gate(sig)
    html = page.get(f"/signatures/{sig.pk}/").content.decode()
    assert _gate_state(html) == "passed"
    assert f'href="/retrohunts/{hunt.pk}/"' in html
    assert 'id="id_override_reason"' not in html  # nothing blocks approval

    # a clean app stored after the hunt started: the gate is stale until hunted again
    stored_sample(corpus / "apks" / "ovaa.apk", label="clean", user=researcher)
    assert _gate_state(page.get(f"/signatures/{sig.pk}/").content.decode()) == "stale"


def test_clean_hits_show_the_override_field_and_the_difference_against_the_shipping_revision(
    researcher, reviewer, samples
) -> None:
    clean, malicious = samples
    # given r1 shipping, hitting the malicious app
    sig = _signature(researcher, malicious.sha256)
    services.signature_submit(signature=sig, actor=researcher)
    gate(sig)
    services.signature_approve(signature=sig, actor=reviewer)
    # when r2 (hitting the clean app instead) is submitted and gated
    services.signature_update(
        signature=sig, actor=researcher, body=_hash_body(clean.sha256), reason="broader"
    )
    services.signature_submit(signature=sig, actor=researcher)
    gate(sig)

    html = _client(reviewer).get(f"/signatures/{sig.pk}/").content.decode()

    # then the reviewer sees the clean hits, the difference, and an override field
    assert _gate_state(html) == "clean_hits"
    assert 'id="gate-clean-hits"' in html
    assert "Against the shipping revision r1" in html
    diff = html[html.index('id="review-diff"') :]
    new_clean = diff[diff.index('id="diff-new-clean"') : diff.index('id="diff-new-malicious"')]
    lost = diff[diff.index('id="diff-lost-malicious"') : diff.index("</tbody>")]
    assert f'href="/samples/{clean.sha256}/"' in new_clean
    assert f'href="/samples/{malicious.sha256}/"' in lost
    assert 'id="id_override_reason"' in html
    # the author sees the gate but has no approve form
    own = _client(researcher).get(f"/signatures/{sig.pk}/").content.decode()
    assert _gate_state(own) == "clean_hits"
    assert 'id="id_override_reason"' not in own

    # and approving through the page form with a reason works and shows the reason
    response = _client(reviewer).post(
        f"/signatures/{sig.pk}/approve/", {"override_reason": "the vendor's debug build"}
    )
    assert response.status_code == 302
    sig.refresh_from_db()
    assert sig.deployed_revision is not None
    assert sig.deployed_revision.number == 2
    shown = _client(reviewer).get(f"/signatures/{sig.pk}/").content.decode()
    assert "the vendor&#x27;s debug build" in shown


def test_hit_statistics_on_the_signature_page_and_as_list_columns_without_n_plus_1(
    researcher, reviewer, samples, django_assert_max_num_queries
) -> None:
    clean, malicious = samples
    noisy = _signature(researcher, clean.sha256, "Joker")
    good = _signature(researcher, malicious.sha256, "Hydra")
    gate(noisy, good)

    page = _client(researcher).get(f"/signatures/{noisy.pk}/").content.decode()
    stats = page[page.index('id="hit-stats"') :]
    stats = stats[: stats.index("</dd>")]
    assert "0 malicious" in stats
    assert "1 clean" in stats
    assert "0 unknown" in stats
    assert "last hit never" not in stats
    assert 'id="clean-hits-flag"' in stats

    client = _client(researcher)
    for n in range(10):  # more rows must not mean more queries
        _signature(researcher, f"{n:02x}" * 32, "Hydra")
    with django_assert_max_num_queries(12):
        listing = client.get("/signatures/").content.decode()
    rows = {
        int(m.group(1)): m.group(0)
        for m in re.finditer(r'value="(\d+)" aria-label="Tick.*?</tr>', listing, re.S)
    }
    assert "0 / 1 / 0" in rows[noisy.pk]
    assert "clean-hits" in rows[noisy.pk]
    assert "1 / 0 / 0" in rows[good.pk]
    assert "clean-hits" not in rows[good.pk]

    flagged = client.get("/signatures/?clean_hits=true").content.decode()
    assert f"/signatures/{noisy.pk}/" in flagged
    assert f"/signatures/{good.pk}/" not in flagged
    api_rows = client.get("/api/v1/signatures/?clean_hits=true").json()
    assert [r["id"] for r in api_rows["results"]] == [noisy.pk]


def test_the_review_queue_shows_gate_states_and_filters_signatures_with_clean_hits(
    researcher, reviewer, samples
) -> None:
    clean, malicious = samples
    blocked = _signature(researcher, clean.sha256, "Joker")
    passed = _signature(researcher, malicious.sha256, "Hydra")
    waiting = _signature(researcher, "ef" * 32, "Anubis")
    for sig in (blocked, passed, waiting):
        services.signature_submit(signature=sig, actor=researcher)
    gate(blocked, passed)
    client = _client(reviewer)

    queue = client.get("/signatures/review/").content.decode()
    states = dict(
        re.findall(r'href="/signatures/(\d+)/".*?data-gate="([a-z_]+)"', queue, re.S),
    )
    assert states == {
        str(blocked.pk): "clean_hits",
        str(passed.pk): "passed",
        str(waiting.pk): "not_gated",
    }

    only = client.get("/signatures/review/?clean_hits=1").content.decode()
    assert f"/signatures/{blocked.pk}/" in only
    assert f"/signatures/{passed.pk}/" not in only
    assert f"/signatures/{waiting.pk}/" not in only
    assert "show all" in only


def test_override_reasons_on_the_release_page_and_in_the_release_api(
    api, researcher, reviewer, samples, update_repo
) -> None:
    clean, malicious = samples
    overridden = _signature(researcher, clean.sha256, "Joker")
    plain = _signature(researcher, malicious.sha256, "Hydra")
    for sig in (overridden, plain):
        services.signature_submit(signature=sig, actor=researcher)
    gate(overridden, plain)
    services.signature_approve(
        signature=overridden, actor=reviewer, override_reason="known FP on a2dp, tracked"
    )
    services.signature_approve(signature=plain, actor=reviewer)
    release = release_publish(by=reviewer, enqueue=False)

    html = _client(reviewer).get(f"/releases/{release.number}/").content.decode()
    assert html.count('class="gate-override') == 1
    assert "known FP on a2dp, tracked" in html

    diff = api(reviewer).get(f"/api/v1/releases/{release.number}/").json()["diff"]
    by_id = {e["signature_id"]: e for e in diff["added"]}
    assert by_id[overridden.pk]["gate_override"]["reason"] == "known FP on a2dp, tracked"
    assert by_id[overridden.pk]["gate_override"]["clean_hits"] == 1
    assert "gate_override" not in by_id[plain.pk]
