"""A second machine: worker processes with their own PORTAL_VAR_DIR (no release files, no local
media) and their own host name (a UTS namespace), sharing only the database, the broker and
object storage with machine A (this test process, its worker and its update repository).

Needs what several machines need: S3-compatible storage and a network broker. .ci/run runs
these on PostgreSQL, Redis and moto's S3 server; the embedded run leaves them out by marker
(`-m "not second_machine"`), because one machine's SQLite file and broker folder cannot be
shared. Run anywhere else without them, they fail in CI and skip on a laptop.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from engine.analyze import analyze_with_content
from engine.ruleset import compile_ruleset, match, verdict
from portal.testing import missing_prerequisite, wait_for
from releases.models import Release, ReleaseState
from releases.public import release_records
from releases.tests.test_client_e2e import installed, publish, run, sync
from scans.models import FactsSegment, HuntStatus, RetroHunt, ScanJob, ScanStatus
from scans.retrohunts import retrohunt_create, retrohunt_run_sync
from scans.tests.conftest import SMALL_APK, corpus_files
from scans.tests.factories import stored_sample

pytestmark = [pytest.mark.integration, pytest.mark.second_machine]

APK = "InsecureBankv2.apk"
RULE = 'rule any_dex { strings: $d = "dex\\n" condition: $d }'


@pytest.fixture
def machine_b(celery_worker: Any, tmp_path: Path) -> Any:
    """Start workers of machine B: host name machine-b, a var folder of its own."""
    if not settings.AWS_STORAGE_BUCKET_NAME:
        missing_prerequisite("S3-compatible storage (AWS_STORAGE_BUCKET_NAME)")
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        missing_prerequisite("a network broker (CELERY_BROKER_URL=redis://...)")
    var_b = tmp_path / "machine-b"
    var_b.mkdir()

    def start(queues: str, **env: str) -> Any:
        return celery_worker(
            queues,
            hostname="machine-b",
            env={
                "PORTAL_VAR_DIR": str(var_b),
                "RELEASE_REPO_DIR": str(var_b / "updates"),
                "TUF_KEYS_DIR": str(var_b / "tuf-keys"),
                **env,
            },
        )

    start.var = var_b  # type: ignore[attr-defined]
    return start


def _scan(scan_id: int) -> ScanJob:
    return ScanJob.objects.get(pk=scan_id)


def test_a_sample_uploaded_on_a_and_scanned_on_b_gets_the_verdict_of_the_release(
    machine_b, update_repo, signatures, reviewer, researcher, api, corpus: Path
) -> None:
    # given a release of signatures at revisions 2 and 3 (numbers that are also other rows'
    # ids), the one at revision 2 matching the app
    apk = corpus / "apks" / APK
    features, _ = analyze_with_content(str(apk))
    kept = signatures.deploy()
    signatures._revise(kept, 2, {"algorithm": "sha256", "target": "apk", "value": features.sha256})
    other = signatures.deploy()
    signatures.revise(other)
    signatures.revise(other)
    release = publish(reviewer)
    # and machine B, which has no release files and no media of its own
    worker = machine_b("scans")
    # when a researcher uploads the app on machine A
    response = api(researcher).post(
        "/api/v1/samples/",
        {"file": SimpleUploadedFile(apk.name, apk.read_bytes())},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    scan_id = response.json()["scan"]["id"]
    # then machine B scans it with release N's exact rules and gets the release's verdict
    wait_for(
        lambda: _scan(scan_id).status == ScanStatus.SUCCEEDED,
        timeout=180,
        what=f"machine B to scan it\n{worker.output()[-3000:]}",
    )
    scan = _scan(scan_id)
    assert scan.worker.startswith("test-")
    assert "/machine-b:" in scan.worker
    assert scan.ruleset_release == release.number
    ruleset = compile_ruleset(release_records(release.number))
    feats, content = analyze_with_content(str(apk))
    expected = match(feats, ruleset, content)
    label, _ = verdict(expected, ruleset)
    assert scan.verdict == label == "malicious"
    assert sorted((m["signature_id"], m["revision"]) for m in scan.matches) == sorted(
        (m.signature_id, m.revision) for m in expected
    )
    assert [(m["signature_id"], m["revision"]) for m in scan.matches] == [(kept.pk, 2)]
    assert not (machine_b.var / "media").exists()
    assert not (machine_b.var / "updates" / "targets").exists()


def test_a_hunt_is_shared_by_workers_on_a_and_b(
    machine_b, celery_worker, researcher, corpus: Path, settings, monkeypatch
) -> None:
    # given 12 stored apps in object storage, chunks of 2, a short pause per sample
    for path in corpus_files()[:12]:
        stored_sample(path, label="clean", user=researcher)
    settings.RETROHUNT_CHUNK_SIZE = 2
    monkeypatch.setenv("RETROHUNT_TEST_DELAY_SECONDS", "0.3")
    on_a = celery_worker("hunts")
    on_b = machine_b("hunts")
    # when a hunt starts
    hunt = retrohunt_create(
        user=researcher,
        rule={"kind": "yara", "body": RULE},
    )
    # then both machines run chunks, and every sample is scanned once
    wait_for(
        lambda: RetroHunt.objects.get(pk=hunt.pk).status == HuntStatus.FINISHED,
        timeout=240,
        what=f"the hunt to finish\nA:\n{on_a.output()[-2000:]}\nB:\n{on_b.output()[-2000:]}",
    )
    hunt.refresh_from_db()
    # and the answer is the one a single process on machine A gives
    alone = retrohunt_run_sync(user=researcher, rule={"kind": "yara", "body": RULE})
    assert (hunt.scanned, hunt.total) == (12, 12)
    assert (hunt.errors, hunt.match_count) == (alone.errors, alone.match_count)
    assert hunt.match_count > 6
    hosts = {w.split("@", 1)[1] for w in hunt.chunks.values_list("worker_name", flat=True)}
    assert "machine-b" in hosts
    assert len(hosts) == 2, hosts


KOODOUS = (
    'import "androguard"\nrule sms_or_net { condition: androguard.permission(/SMS|INTERNET/) '
    "and not androguard.package_name(/^zzz/) }\n"
)


def test_a_koodous_hunt_on_b_reads_the_facts_index_a_built(
    machine_b, researcher, corpus: Path
) -> None:
    # given stored apps whose features a hunt on machine A stored, and the facts index of
    # their block (scans.FactsSegment) that A's first Koodous facts hunt built
    for path in corpus_files()[:10]:
        stored_sample(path, label="clean", user=researcher)
    warm = 'import "androguard"\nrule warm { condition: true }\n'
    retrohunt_run_sync(user=researcher, rule={"kind": "yara", "body": warm})
    alone = retrohunt_run_sync(user=researcher, rule={"kind": "yara", "body": KOODOUS})
    built = {s.block: (s.built_at, s.apps) for s in FactsSegment.objects.all()}
    assert built
    assert alone.match_count > 0
    # when machine B alone runs the same hunt
    on_b = machine_b("hunts")
    hunt = retrohunt_create(user=researcher, rule={"kind": "yara", "body": KOODOUS})
    wait_for(
        lambda: RetroHunt.objects.get(pk=hunt.pk).status == HuntStatus.FINISHED,
        timeout=240,
        what=f"the hunt to finish\nB:\n{on_b.output()[-3000:]}",
    )
    hunt.refresh_from_db()
    # then B answered from A's index, as it was (not built again), and found what A found
    assert {s.block: (s.built_at, s.apps) for s in FactsSegment.objects.all()} == built
    assert sorted(hunt.matches.values_list("sample_id", "evidence")) == sorted(
        alone.matches.values_list("sample_id", "evidence")
    )
    assert (hunt.scanned, hunt.errors) == (alone.scanned, alone.errors)
    hosts = {w.split("@", 1)[1] for w in hunt.chunks.values_list("worker_name", flat=True)}
    assert hosts == {"machine-b"}


def test_publish_runs_only_on_a_and_a_device_gets_the_release(
    machine_b, celery_worker, update_repo, signatures, reviewer, api, live_server, tmp_path
) -> None:
    # given machine B consuming every queue but publish, and machine A consuming publish
    on_b = machine_b("default,scans,hunts")
    on_a = celery_worker("publish")
    signatures.deploy()
    root = tmp_path / "app-root.json"
    update_repo.export_root(root)
    state = tmp_path / "phone"
    code, out = run(
        "register", "--server", live_server.url, "--enrollment-key", "test-enrollment-key",
        "--root", str(root), "--state", str(state),
    )  # fmt: skip
    assert code == 0, out
    # when a reviewer publishes through the API
    response = api(reviewer).post("/api/v1/releases/", {"notes": "two machines"}, format="json")
    assert response.status_code == 202
    number = response.json()["number"]
    wait_for(
        lambda: Release.objects.get(number=number).state == ReleaseState.PUBLISHED,
        timeout=120,
        what=f"machine A to build it\n{on_a.output()[-3000:]}",
    )
    # then A built it, B never saw the build, and a phone syncs to it through TUF
    assert "releases.build_release[" in on_a.output()  # "Task ...[id] received"
    assert "releases.build_release[" not in on_b.output()
    code, report = sync(state)
    assert code == 0, report
    assert installed(state)[0] == number


def test_killing_b_mid_scan_loses_nothing(
    machine_b, celery_worker, researcher, corpus: Path, monkeypatch
) -> None:
    # given machine B running a slow scan, with quick heartbeats
    _, scan = stored_sample(corpus / "apks" / SMALL_APK, user=researcher)
    on_b = machine_b("scans", SCAN_TEST_DELAY_SECONDS="8", WORKER_HEARTBEAT_SECONDS="1")
    wait_for(
        lambda: _scan(scan.pk).status == ScanStatus.RUNNING,
        timeout=120,
        what=f"B to start the scan\n{on_b.output()[-3000:]}",
    )
    assert "/machine-b:" in _scan(scan.pk).worker
    # when machine B's worker dies with SIGKILL (its pid means nothing on machine A)
    assert on_b.proc is not None
    os.killpg(on_b.proc.pid, signal.SIGKILL)
    on_b.proc.wait(timeout=30)
    # then a worker on A sees B's heartbeat go stale, takes the scan over and finishes it
    monkeypatch.setenv("WORKER_STALE_AFTER_SECONDS", "4")
    monkeypatch.setenv("SCAN_RECOVER_EVERY_SECONDS", "2")
    on_a = celery_worker("scans")
    wait_for(
        lambda: _scan(scan.pk).status == ScanStatus.SUCCEEDED,
        timeout=180,
        what=f"A to finish B's scan\n{on_a.output()[-3000:]}",
    )
    scan = _scan(scan.pk)
    assert scan.attempts == 2
    assert "/machine-b:" not in scan.worker
    assert scan.verdict == "clean"
