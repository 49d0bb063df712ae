"""Sample.facts: the compact ``androguard`` facts a scan keeps in the row, what a Koodous facts
hunt reads instead of the summary (scans.hunt_match.chunk_facts_matches), and the larger
chunks such a hunt gets over samples whose features are current."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.facts_summary import expand_facts, facts_current, summary_facts
from portal.models import User
from scans.models import Sample
from scans.retrohunts import FACTS_CHUNK_FACTOR, retrohunt_run_sync
from scans.tests.conftest import SMALL_APK
from scans.tests.factories import stored_sample

pytestmark = pytest.mark.django_db

APPS = ("android.apk", "a2dp.Vol_137.apk", SMALL_APK)
# hits android.apk (INTERNET) and a2dp (BLUETOOTH), not the tiny app (no permission); with a
# negation and an integer, all in the batch
RULE = "androguard.permission(/INTERNET|BLUETOOTH/) and not androguard.package_name(/^zzz/)" + (
    " and androguard.min_sdk >= 1"
)


def koodous(name: str, condition: str = RULE) -> dict[str, str]:
    return {
        "kind": "yara",
        "body": f'import "androguard"\nrule {name} {{ condition: {condition} }}\n',
    }


def found(hunt: Any) -> set[tuple[str, str, tuple[str, ...]]]:
    return {(m.sample.sha256, m.name, tuple(m.evidence)) for m in hunt.matches.all()}


@pytest.fixture
def analysed(corpus: Path, researcher: User) -> list[Sample]:
    """Three stored apps whose features (and facts) a first hunt stored."""
    for name in APPS:
        stored_sample(corpus / "apks" / name, user=researcher)
    retrohunt_run_sync(user=researcher, rule=koodous("warm", "true"))
    return list(Sample.objects.order_by("id"))


def test_a_scanned_sample_keeps_its_facts_in_compact_form(analysed: list[Sample]) -> None:
    # given samples whose features were stored, then each row holds facts that expand to
    # exactly what its stored summary gives
    for sample in analysed:
        assert sample.features is not None
        assert facts_current(sample.facts)
        assert expand_facts(sample.facts) == summary_facts(sample.features)


def test_a_sample_stored_before_the_column_hunts_the_same_and_gets_its_facts(
    analysed: list[Sample], researcher: User, settings: Any
) -> None:
    # given the answer sample by sample (no batch, no facts column read)
    settings.RETROHUNT_FACTS_BATCH = False
    want = found(retrohunt_run_sync(user=researcher, rule=koodous("same")))
    settings.RETROHUNT_FACTS_BATCH = True
    assert len(want) == 2
    # and samples scanned before Sample.facts existed (None), or whose stored form is of an
    # older format and says the wrong thing (believed, it would make the tiny app hit)
    Sample.objects.filter(pk=analysed[0].pk).update(facts=None)
    Sample.objects.filter(pk__in=[analysed[1].pk, analysed[2].pk]).update(
        facts={
            "permissions": ["INTERNET"],
            "permissions_count": 1,
            "min_sdk": 30,
            "_format": [0, 1],
        }
    )
    # when a batched hunt runs, then it finds what the sample-by-sample path finds
    hunt = retrohunt_run_sync(user=researcher, rule=koodous("same"))
    assert (hunt.scanned, hunt.errors) == (3, 0)
    assert found(hunt) == want
    # and every row now keeps its current facts, computed from its summary
    for sample in Sample.objects.all():
        assert facts_current(sample.facts)
        assert sample.features is not None
        assert expand_facts(sample.facts) == summary_facts(sample.features)


def test_a_facts_hunt_over_current_samples_takes_larger_chunks(
    analysed: list[Sample], researcher: User, settings: Any
) -> None:
    settings.RETROHUNT_CHUNK_SIZE = 1
    # given three samples with current features: one chunk (up to FACTS_CHUNK_FACTOR of them)
    assert FACTS_CHUNK_FACTOR >= 3
    hunt = retrohunt_run_sync(user=researcher, rule=koodous("same"))
    assert (hunt.chunks_total, hunt.scanned, hunt.match_count) == (1, 3, 2)
    # a hash hunt keeps chunks of RETROHUNT_CHUNK_SIZE
    hashed = retrohunt_run_sync(user=researcher, rule={"kind": "hash", "body": "0" * 64})
    assert hashed.chunks_total == 3
    # when the middle sample's features are of another engine, it weighs as a whole chunk
    # (it may be analysed again): the chunk ends with it, and the hunt finds the same apps
    Sample.objects.filter(pk=analysed[1].pk).update(features_engine_version=None)
    again = retrohunt_run_sync(user=researcher, rule=koodous("same"))
    assert (again.chunks_total, again.scanned, again.errors) == (2, 3, 0)
    # (the same apps; an app analysed again names the part its condition held in)
    assert {sha for sha, _, _ in found(again)} == {sha for sha, _, _ in found(hunt)}
    # with the batch off, a facts hunt keeps the small chunks
    settings.RETROHUNT_FACTS_BATCH = False
    assert retrohunt_run_sync(user=researcher, rule=koodous("off")).chunks_total == 3
