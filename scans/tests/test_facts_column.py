"""Sample.facts: the compact ``androguard`` facts a scan keeps in the row, what a Koodous facts
hunt reads instead of the summary (scans.hunt_match.chunk_facts_matches), and the larger
chunks such a hunt gets over samples whose features are current."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.facts_segment import SEGMENT_VERSION, Segment
from engine.facts_summary import expand_facts, facts_current, summary_facts
from portal.models import User
from scans import hunt_match
from scans.hunt_match import facts_segments_build
from scans.models import FactsSegment, Sample
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


# RULE, and the SMS demo app too
WIDER = RULE.replace("INTERNET|", "INTERNET|SMS|")


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


def test_a_facts_hunt_keeps_an_index_of_each_block_and_reads_it_next_time(
    analysed: list[Sample], researcher: User, corpus: Path, settings: Any
) -> None:
    # given the answer of a hunt that built the blocks' facts segments from the rows
    first = retrohunt_run_sync(user=researcher, rule=koodous("first", WIDER))
    segments = list(FactsSegment.objects.all())
    assert [(s.version, s.apps) for s in segments] == [(SEGMENT_VERSION, 3)]
    want = found(first)
    assert len(want) == 2
    # when the rows' facts say something else (which a scan never writes: a sample's facts
    # are a function of its file and the engine), the next hunt still answers from the
    # segment, not from the rows: it reads no row's facts
    Sample.objects.update(facts={"_format": [0, 0]})
    assert found(retrohunt_run_sync(user=researcher, rule=koodous("first", WIDER))) == want
    assert FactsSegment.objects.get().built_at == segments[0].built_at
    # a sample whose features went stale since is not answered from the segment (analysed
    # again), and a sample stored since is answered from its row: as sample by sample
    Sample.objects.update(facts=None)
    Sample.objects.filter(pk=analysed[0].pk).update(features_engine_version=None)
    stored_sample(corpus / "apks" / "krvarma-android-samples-smsdemo.apk", user=researcher)
    retrohunt_run_sync(user=researcher, rule=koodous("warm", "true"))  # its features stored
    Sample.objects.filter(pk=analysed[0].pk).update(features_engine_version=None)
    settings.RETROHUNT_FACTS_BATCH = False
    one_by_one = found(retrohunt_run_sync(user=researcher, rule=koodous("first", WIDER)))
    settings.RETROHUNT_FACTS_BATCH = True
    Sample.objects.filter(pk=analysed[0].pk).update(features_engine_version=None)
    again = retrohunt_run_sync(user=researcher, rule=koodous("first", WIDER))
    assert (again.scanned, again.errors) == (4, 0)
    assert found(again) == one_by_one
    assert len(one_by_one) == 3  # the new app hits too
    assert FactsSegment.objects.get().apps == 3  # not built again for one new sample
    # a damaged segment is built again, and the hunt answers as before
    FactsSegment.objects.update(data=b"not a segment")
    mended = retrohunt_run_sync(user=researcher, rule=koodous("first", WIDER))
    assert {sha for sha, _, _ in found(mended)} == {sha for sha, _, _ in found(again)}
    assert Segment.decode(bytes(FactsSegment.objects.get().data)).ids() == sorted(
        Sample.objects.values_list("id", flat=True)  # the one analysed again included
    )
    # a segment of another version is built again, never read
    FactsSegment.objects.update(version="0:0:0")
    rebuilt = retrohunt_run_sync(user=researcher, rule=koodous("first", WIDER))
    # (the same apps; the one analysed again last time named the part its condition held in)
    assert {sha for sha, _, _ in found(rebuilt)} == {sha for sha, _, _ in found(again)}
    assert FactsSegment.objects.get().version == SEGMENT_VERSION


def test_a_block_is_built_again_for_new_samples_not_for_samples_without_facts(
    analysed: list[Sample], researcher: User, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given blocks built again as soon as one current sample is not in their segment, and a
    # sample whose row has neither summary nor facts (matched one by one, from its unit pack)
    monkeypatch.setattr(hunt_match, "_SEGMENT_SLACK", 0)
    Sample.objects.filter(pk=analysed[2].pk).update(features=None, facts=None)
    first = retrohunt_run_sync(user=researcher, rule=koodous("first"))
    segment = FactsSegment.objects.get()
    assert segment.apps == 2
    # when the next hunt runs, then it does not build the block again for that sample
    again = retrohunt_run_sync(user=researcher, rule=koodous("first"))
    assert FactsSegment.objects.get().built_at == segment.built_at
    assert {sha for sha, _, _ in found(again)} == {sha for sha, _, _ in found(first)}
    # but a sample stored since makes it build the block again, with every sample that has
    # facts in it
    stored_sample(corpus / "apks" / "krvarma-android-samples-smsdemo.apk", user=researcher)
    retrohunt_run_sync(user=researcher, rule=koodous("warm", "true"))  # its features stored
    retrohunt_run_sync(user=researcher, rule=koodous("first"))
    rebuilt = FactsSegment.objects.get()
    assert rebuilt.built_at > segment.built_at
    assert rebuilt.apps == 3


def test_beat_builds_the_segments_ahead_of_the_hunts(
    analysed: list[Sample], researcher: User, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given stored samples and no segment yet
    assert not FactsSegment.objects.exists()
    # when the beat task runs, then it builds their block, and the next run has nothing to do
    assert facts_segments_build() == [0]
    segment = FactsSegment.objects.get()
    assert (segment.apps, segment.covered, segment.version) == (3, 3, SEGMENT_VERSION)
    assert facts_segments_build() == []
    # and a hunt reads it as it is
    assert retrohunt_run_sync(user=researcher, rule=koodous("first")).match_count == 2
    assert FactsSegment.objects.get().built_at == segment.built_at
    # when more samples than the slack are stored since, then the block is built again
    monkeypatch.setattr(hunt_match, "_SEGMENT_SLACK", 0)
    stored_sample(corpus / "apks" / "krvarma-android-samples-smsdemo.apk", user=researcher)
    assert facts_segments_build() == []  # not analysed yet: no facts to index
    # (a hash hunt analyses it and stores its features; it reads no segment)
    assert retrohunt_run_sync(user=researcher, rule={"kind": "hash", "body": "0" * 64}).scanned == 4
    assert FactsSegment.objects.get().covered == 3
    assert facts_segments_build() == [0]
    assert (FactsSegment.objects.get().apps, FactsSegment.objects.get().covered) == (4, 4)


def test_beat_runs_the_segment_builder_on_the_hunts_queue(settings: Any) -> None:
    entries = [
        e
        for e in settings.CELERY_BEAT_SCHEDULE.values()
        if e["task"] == "scans.facts_segments_build"
    ]
    assert entries == [
        {"task": "scans.facts_segments_build", "schedule": 300.0, "options": {"queue": "hunts"}}
    ]
    from portal.celery import app

    assert "scans.facts_segments_build" in app.tasks
