"""The real reference client (client/) against the real portal on a live server.

client/tests cover every refusal against a stand-in server; these prove that the portal's
device API and /updates/ speak exactly what the client expects, end to end.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from client.__main__ import main
from engine.codec import load_state
from releases import services
from releases.models import Release
from releases.public import release_records
from releases.services import release_build, release_publish
from releases.tests.conftest import ENROLLMENT_KEY
from releases.tuf_repo import UpdateRepository

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def run(*argv: str) -> tuple[int, list[dict[str, Any]]]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(list(argv))
    return code, [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def publish(by) -> Release:
    release = release_publish(by=by, enqueue=False)
    return release_build(number=release.number)


@pytest.fixture
def phone(live_server: Any, update_repo: UpdateRepository, tmp_path: Path) -> Callable[..., Path]:
    root = tmp_path / "app-root.json"
    update_repo.export_root(root)

    def register(name: str = "phone", channel: str = "stable") -> Path:
        state = tmp_path / name
        code, out = run(
            "register",
            "--server",
            live_server.url,
            "--enrollment-key",
            ENROLLMENT_KEY,
            "--root",
            str(root),
            "--state",
            str(state),
            "--channel",
            channel,
        )
        assert code == 0, out
        return state

    return register


def sync(state: Path) -> tuple[int, dict[str, Any]]:
    code, out = run("sync", "--state", str(state), "--force")
    return code, out[0]


def installed(state: Path) -> tuple[int, str]:
    s = load_state(state / "db" / "state.bin", 1)
    return s.release, s.sha256


def test_register_full_then_deltas_and_chain_equals_full(phone, signatures, reviewer) -> None:
    # given a registered phone and a first release
    a = phone("a")
    sigs = [signatures.deploy() for _ in range(3)]
    first = publish(reviewer)
    # when it syncs: the full bundle
    code, report = sync(a)
    assert code == 0, report
    assert (report["from"], report["to"], report["applied"], report["signatures"]) == (
        0,
        1,
        "full",
        3,
    )
    assert installed(a) == (1, first.state_sha256)
    # then each later release arrives as a delta
    for step in range(3):
        signatures.deploy()
        signatures.revise(sigs[step])
        release = publish(reviewer)
        code, report = sync(a)
        assert code == 0, report
        assert report["applied"] == "delta"
        assert installed(a) == (release.number, release.state_sha256)
    # and a new phone's full bundle gives the very same state
    b = phone("b")
    code, report = sync(b)
    assert report["applied"] == "full"
    assert installed(b) == installed(a)
    # and asking again is a no-op
    assert sync(a)[1]["applied"] == "none"


def test_five_releases_behind_gets_a_delta_if_retained_else_full(
    phone, signatures, reviewer, settings
) -> None:
    behind = phone("behind")
    signatures.deploy()
    publish(reviewer)
    assert sync(behind)[0] == 0
    for _ in range(5):
        signatures.deploy()
        publish(reviewer)
    code, report = sync(behind)
    assert (code, report["from"], report["to"], report["applied"]) == (0, 1, 6, "delta")

    settings.RELEASE_DELTA_RETENTION = 3
    far = phone("far")
    signatures.deploy()
    publish(reviewer)  # 7
    assert sync(far)[1]["to"] == 7
    for _ in range(5):
        signatures.deploy()
        publish(reviewer)  # 8..12: deltas only from 9, 10, 11
    code, report = sync(far)
    assert (code, report["from"], report["to"], report["applied"]) == (0, 7, 12, "full")
    assert installed(far)[1] == Release.objects.get(number=12).state_sha256


def test_a_tampered_target_is_refused_and_the_old_database_kept(
    phone, signatures, reviewer, update_repo: UpdateRepository
) -> None:
    a = phone()
    signatures.deploy()
    publish(reviewer)
    assert sync(a)[0] == 0
    before = (a / "db" / "state.bin").read_bytes()
    signatures.deploy()
    publish(reviewer)
    # someone with write access to the file server flips bytes in the delta
    target = update_repo.target_files()["delta-1-2.bin"]
    path = update_repo.target_path(target)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    code, report = sync(a)
    assert code == 1
    assert "TUF" in report["error"] or "download" in report["error"]
    assert (a / "db" / "state.bin").read_bytes() == before


def test_a_wrong_state_hash_is_refused_and_the_old_database_kept(
    phone, signatures, reviewer, monkeypatch
) -> None:
    a = phone()
    signatures.deploy()
    publish(reviewer)
    assert sync(a)[0] == 0
    before = (a / "db" / "state.bin").read_bytes()
    # a publisher bug signs the wrong state hash into the targets' custom data
    real = services._custom

    def wrong(number: int, base: int | None, state: Any) -> dict[str, Any]:
        return {**real(number, base, state), "state_sha256": hashlib.sha256(b"x").hexdigest()}

    monkeypatch.setattr(services, "_custom", wrong)
    signatures.deploy()
    publish(reviewer)
    code, report = sync(a)
    assert code == 1
    assert "state hash mismatch" in report["error"]
    assert (a / "db" / "state.bin").read_bytes() == before


def test_client_scan_matches_the_server_engine(phone, signatures, reviewer, corpus: Path) -> None:
    from engine.analyze import analyze_with_content
    from engine.ruleset import compile_ruleset, match, verdict

    apk = corpus / "apks" / "InsecureBankv2.apk"
    clean = corpus / "apks" / "v2-only-with-rsa-pkcs1-sha256-2048.apk"
    features, _ = analyze_with_content(str(apk))
    signatures.deploy(features.sha256)
    signatures.deploy()
    release = publish(reviewer)
    a = phone()
    assert sync(a)[0] == 0
    code, results = run("scan", "--state", str(a), str(apk), str(clean))
    assert code == 0
    ruleset = compile_ruleset(release_records(release.number))
    for result, path in zip(results, (apk, clean), strict=True):
        feats, content = analyze_with_content(str(path))
        label, _ = verdict(match(feats, ruleset, content), ruleset)
        assert result["verdict"] == label
    assert results[0]["verdict"] != results[1]["verdict"]
