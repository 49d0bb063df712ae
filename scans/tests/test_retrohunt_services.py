"""Retro-hunt services: chunks, matches by label, stale features, unsaved rules, cancel,
progress and ETA, the gate recorded on revisions, recovery of never-started work."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from engine import ENGINE_VERSION
from engine.analyze import DEFAULT_LIMITS, analyze, read_content
from engine.units import read_units, write_units
from portal.exceptions import ApplicationError, ForbiddenError
from portal.models import User, WorkerHeartbeat
from scans import retrohunts
from scans.models import ChunkStatus, HuntChunk, HuntStatus, RetroHunt, Sample, ScanJob, ScanStatus
from scans.retrohunts import (
    eta_seconds,
    hunts_recover,
    retrohunt_cancel,
    retrohunt_chunk_run,
    retrohunt_create,
    retrohunt_run_sync,
)
from scans.rulesets import EMPTY
from scans.services import scan_run, scans_recover
from scans.storage import units_key, units_storage_name
from scans.tests.conftest import SMALL_APK, corpus_files
from scans.tests.factories import stored_sample
from threats import services as threats_services
from threats.models import Family, Signature
from threats.tests.factories import make_family

pytestmark = pytest.mark.django_db

A2DP = "a2dp.Vol_137.apk"
DIVA = "android.apk"


def _sha(path: Path) -> str:
    return analyze(path).sha256


def _hash_signature(author: User, family: Family, sha256: str) -> Signature:
    return threats_services.signature_create(
        actor=author,
        kind="hash",
        body={"algorithm": "sha256", "target": "apk", "value": sha256},
        family=family,
    )


@pytest.fixture
def three_samples(corpus: Path, researcher: User) -> dict[str, Sample]:
    """A clean, a malicious and an unknown sample (scans queued, never run: no features)."""
    apks = corpus / "apks"
    clean, _ = stored_sample(apks / A2DP, label="clean", user=researcher)
    bad, _ = stored_sample(apks / DIVA, label="malicious", user=researcher)
    other, _ = stored_sample(apks / SMALL_APK, label="unknown", user=researcher)
    return {"clean": clean, "malicious": bad, "unknown": other}


def test_a_hash_hunt_runs_in_chunks_and_records_matches_with_their_label(
    three_samples: dict[str, Sample], researcher: User, settings: Any
) -> None:
    settings.RETROHUNT_CHUNK_SIZE = 2
    family = make_family()
    hit_clean = _hash_signature(researcher, family, three_samples["clean"].sha256)
    hit_bad = _hash_signature(researcher, family, three_samples["malicious"].sha256)

    hunt = retrohunt_run_sync(user=researcher, signature_ids=[hit_clean.pk, hit_bad.pk])

    assert hunt.status == HuntStatus.FINISHED
    assert (hunt.total, hunt.scanned, hunt.chunks_total, hunt.chunks_done) == (3, 3, 2, 2)
    assert hunt.progress == 100
    assert eta_seconds(hunt) == 0
    got = {(m.sample.sha256, m.signature_id, m.label) for m in hunt.matches.all()}
    assert got == {
        (three_samples["clean"].sha256, hit_clean.pk, "clean"),
        (three_samples["malicious"].sha256, hit_bad.pk, "malicious"),
    }
    # samples never analysed were analysed first, and their features kept
    assert Sample.objects.filter(features_engine_version=ENGINE_VERSION).count() == 3


def test_a_sample_analysed_by_an_older_engine_is_analysed_again_first(
    three_samples: dict[str, Sample], researcher: User
) -> None:
    family = make_family()
    sig = _hash_signature(researcher, family, three_samples["unknown"].sha256)
    retrohunt_run_sync(user=researcher, signature_ids=[sig.pk])
    old = three_samples["unknown"]
    Sample.objects.filter(pk=old.pk).update(
        features_engine_version=ENGINE_VERSION - 1, features={"stale": True}
    )

    hunt = retrohunt_run_sync(user=researcher, signature_ids=[sig.pk])

    old.refresh_from_db()
    assert old.features_engine_version == ENGINE_VERSION
    assert old.features is not None
    assert "stale" not in old.features
    assert old.features["sha256"] == old.sha256
    assert hunt.matches.get().sample_id == old.pk


def test_an_unsaved_yara_rule_is_validated_and_hunted(
    three_samples: dict[str, Sample], researcher: User
) -> None:
    package = "jakhar.aseem.diva"
    rule = {"kind": "yara", "body": f'rule diva {{ condition: android.package == "{package}" }}'}

    hunt = retrohunt_run_sync(user=researcher, rule=rule)

    match = hunt.matches.get()
    assert (match.sample.package, match.signature_id, match.label) == (package, 0, "malicious")
    assert match.name == "unsaved yara rule"
    assert hunt.bytes_scanned == sum(s.size for s in three_samples.values())
    with pytest.raises(ApplicationError, match="not valid"):
        retrohunt_create(user=researcher, rule={"kind": "yara", "body": "rule broken {"})
    with pytest.raises(ApplicationError, match="Unknown signature kind"):
        retrohunt_create(user=researcher, rule={"kind": "nope", "body": "x"})


def test_a_hunt_needs_exactly_one_rule_source_and_a_role(
    researcher: User, auditor: User, three_samples: dict[str, Sample]
) -> None:
    with pytest.raises(ApplicationError, match="either"):
        retrohunt_create(user=researcher)
    with pytest.raises(ApplicationError, match="No such signature"):
        retrohunt_create(user=researcher, signature_ids=[987654])
    with pytest.raises(ForbiddenError):
        retrohunt_create(user=auditor, rule={"kind": "indicator", "body": "evil.example"})


def test_cancel_makes_the_remaining_chunks_do_nothing(
    three_samples: dict[str, Sample], researcher: User, reviewer: User, settings: Any
) -> None:
    settings.RETROHUNT_CHUNK_SIZE = 1
    hunt = retrohunt_create(
        user=researcher, rule={"kind": "indicator", "body": "evil.example"}, enqueue=False
    )
    first, *rest = hunt.chunks.order_by("index")
    retrohunt_chunk_run(chunk_id=first.pk)

    retrohunt_cancel(hunt=hunt, user=reviewer)
    for chunk in rest:
        assert retrohunt_chunk_run(chunk_id=chunk.pk) is None

    hunt.refresh_from_db()
    assert hunt.status == HuntStatus.CANCELLED
    assert (hunt.scanned, hunt.total) == (1, 3)
    assert {c.status for c in rest} | {HuntChunk.objects.get(pk=c.pk).status for c in rest} >= {
        ChunkStatus.CANCELLED
    }
    with pytest.raises(ApplicationError, match="already cancelled"):
        retrohunt_cancel(hunt=hunt, user=reviewer)


def test_progress_and_eta_while_a_hunt_runs(
    three_samples: dict[str, Sample], researcher: User, settings: Any
) -> None:
    settings.RETROHUNT_CHUNK_SIZE = 1
    hunt = retrohunt_create(
        user=researcher, rule={"kind": "indicator", "body": "evil.example"}, enqueue=False
    )
    assert hunt.progress == 0
    assert eta_seconds(hunt) is None
    retrohunt_chunk_run(chunk_id=hunt.chunks.order_by("index").first().pk)  # type: ignore[union-attr]
    hunt.refresh_from_db()
    assert hunt.status == HuntStatus.RUNNING
    assert hunt.progress == 33
    assert hunt.started_at is not None
    eta = eta_seconds(hunt, now=hunt.started_at + timedelta(seconds=10))
    assert eta == 20  # one sample in 10 s, two to go


def test_a_chunk_run_twice_counts_once(three_samples: dict[str, Sample], researcher: User) -> None:
    hunt = retrohunt_create(
        user=researcher,
        rule={"kind": "hash", "body": three_samples["clean"].sha256},
        enqueue=False,
    )
    chunk = hunt.chunks.get()
    retrohunt_chunk_run(chunk_id=chunk.pk)
    assert retrohunt_chunk_run(chunk_id=chunk.pk) is None  # done: nothing to do
    hunt.refresh_from_db()
    assert (hunt.scanned, hunt.match_count, hunt.matches.count()) == (3, 1, 1)


def test_a_finished_hunt_records_the_gate_on_each_revision(
    three_samples: dict[str, Sample], researcher: User
) -> None:
    family = make_family()
    noisy = _hash_signature(researcher, family, three_samples["clean"].sha256)
    fine = _hash_signature(researcher, family, "ab" * 32)

    hunt = retrohunt_run_sync(user=researcher, signature_ids=[noisy.pk, fine.pk])

    for sig, clean_hits in ((noisy, 1), (fine, 0)):
        rev = sig.revisions.get()
        assert (rev.gate_hunt_id, rev.clean_hits) == (hunt.pk, clean_hits)
        assert rev.gated_at is not None
    noisy.refresh_from_db()
    assert (noisy.hits_clean, noisy.hits_malicious, noisy.hits_unknown) == (1, 0, 0)
    assert noisy.last_hit_at is not None


def test_editing_a_draft_clears_its_gate(researcher: User, three_samples: Any) -> None:
    sig = _hash_signature(researcher, make_family(), "cd" * 32)
    retrohunt_run_sync(user=researcher, signature_ids=[sig.pk])
    threats_services.signature_update(
        signature=sig,
        actor=researcher,
        body={"algorithm": "sha256", "target": "apk", "value": "ef" * 32},
    )
    rev = sig.revisions.get()
    assert rev.gated_at is None
    assert rev.gate_hunt_id is None


def test_a_hunt_of_no_samples_finishes_at_once(researcher: User) -> None:
    hunt = retrohunt_create(user=researcher, rule={"kind": "indicator", "body": "evil.example"})
    assert (hunt.status, hunt.total, hunt.progress) == (HuntStatus.FINISHED, 0, 100)


def test_recovery_resends_scans_and_chunks_queued_long_ago_but_never_started(
    three_samples: dict[str, Sample], researcher: User, settings: Any, monkeypatch: Any
) -> None:
    # given: the broker was down when these were created (never sent)
    hunt = retrohunt_create(
        user=researcher, rule={"kind": "indicator", "body": "evil.example"}, enqueue=False
    )
    long_ago = timezone.now() - timedelta(seconds=settings.SCAN_REQUEUE_AFTER_SECONDS + 5)
    HuntChunk.objects.filter(hunt=hunt).update(queued_at=long_ago, sent_at=None)
    ScanJob.objects.update(queued_at=long_ago, sent_at=None)
    sent: list[tuple[str, int]] = []

    class FakeTask:
        def __init__(self, name: str) -> None:
            self.name = name

        def apply_async(self, args: tuple[int], queue: str) -> None:
            sent.append((queue, args[0]))

    monkeypatch.setattr("scans.tasks.scan_sample", FakeTask("scan"))
    monkeypatch.setattr("scans.tasks.hunt_chunk", FakeTask("chunk"))

    # when
    scans_recover()
    hunts_recover()

    # then: every one was sent again, and marked sent (a second pass sends nothing)
    scan_ids = set(ScanJob.objects.filter(status=ScanStatus.QUEUED).values_list("id", flat=True))
    chunk_ids = set(hunt.chunks.values_list("id", flat=True))
    assert {i for q, i in sent if q == "scans"} == scan_ids
    assert len(scan_ids) == 3
    assert {i for q, i in sent if q == "hunts"} == chunk_ids
    sent.clear()
    scans_recover()
    hunts_recover()
    assert sent == []


def test_a_chunk_whose_worker_died_is_sent_again_and_finished(
    three_samples: dict[str, Sample], researcher: User, monkeypatch: Any
) -> None:
    hunt = retrohunt_create(
        user=researcher, rule={"kind": "indicator", "body": "evil.example"}, enqueue=False
    )
    chunk = hunt.chunks.get()
    # a worker on another machine claimed it, then died: its node's heartbeat went stale
    WorkerHeartbeat.objects.create(
        hostname="hunter@machine-b", queues=["hunts"], last_seen=timezone.now() - timedelta(hours=1)
    )
    HuntChunk.objects.filter(pk=chunk.pk).update(
        status=ChunkStatus.RUNNING,
        worker="hunter@machine-b/machine-b:4242",
        attempts=1,
        started_at=timezone.now(),
    )
    monkeypatch.setattr(retrohunts, "chunks_enqueue", lambda chunk_ids: None)

    assert hunts_recover() == [chunk.pk]
    retrohunt_chunk_run(chunk_id=chunk.pk, worker_name="second")

    chunk.refresh_from_db()
    hunt.refresh_from_db()
    assert (chunk.status, chunk.attempts, chunk.worker_name) == ("done", 2, "second")
    assert hunt.status == HuntStatus.FINISHED


def test_every_corpus_file_ends_scanned_or_counted_as_an_error(
    corpus: Path, researcher: User, settings: Any
) -> None:
    settings.RETROHUNT_CHUNK_SIZE = 10
    for path in corpus_files():
        stored_sample(path, label="clean", user=researcher)

    hunt = retrohunt_run_sync(user=researcher, rule={"kind": "indicator", "body": "evil.example"})

    assert hunt.status == HuntStatus.FINISHED
    assert hunt.scanned == hunt.total == len(corpus_files())
    assert 0 < hunt.errors < 5  # the empty and manifest-less zips cannot be analysed
    assert RetroHunt.objects.count() == 1


def _pack_ok(sample: Sample) -> bool:
    with default_storage.open(units_storage_name(sample.file.name), "rb") as fh:
        content = read_units(fh, units_key(sample.file.name), "app", DEFAULT_LIMITS)
    return bool(content.dex)


def test_a_yara_hunt_reads_the_unit_pack_and_replaces_a_damaged_one(
    corpus: Path, three_samples: dict[str, Sample], researcher: User
) -> None:
    diva, small = three_samples["malicious"], three_samples["unknown"]
    scan_run(scan_id=diva.scans.get().pk, ruleset_provider=lambda: EMPTY)
    name = units_storage_name(diva.file.name)
    assert _pack_ok(diva)  # written by the scan, beside the app
    rule = {"kind": "yara", "body": 'rule d { strings: $a = "jakhar/aseem/diva" condition: $a }'}
    assert [m.sample_id for m in retrohunt_run_sync(user=researcher, rule=rule).matches.all()] == [
        diva.pk
    ]

    # the hunt scans the pack, not the app: a pack holding another app's DEX finds nothing
    default_storage.delete(name)
    other = ContentFile(b"")
    write_units(other, units_key(diva.file.name), read_content(corpus / "apks" / SMALL_APK))
    default_storage.save(name, other)
    assert not retrohunt_run_sync(user=researcher, rule=rule).matches.exists()

    # a damaged pack is refused: the app is read again and the pack written again
    with default_storage.open(name, "rb") as fh:
        cut = fh.read()[:100]
    default_storage.delete(name)
    default_storage.save(name, ContentFile(cut))
    hunt = retrohunt_run_sync(user=researcher, rule=rule)
    assert [m.sample_id for m in hunt.matches.all()] == [diva.pk]
    assert hunt.errors == 0
    assert _pack_ok(diva)
    assert _pack_ok(small)  # analysed by the first hunt: its pack was written then
