"""The reference client against a real HTTP server: TUF-verified sync, refusals, back-off."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from client.api import Backoff, retry_after_seconds
from client.state import ClientError, StateDir
from client.sync import SyncOptions, check, sync
from client.tests.conftest import FakePortal, Publisher, hash_record
from engine import codec
from engine.features import RuleRecord
from engine.rollout import Schedule, rollout_bucket
from portal.testing import missing_prerequisite
from releases.tuf_repo import UpdateRepository, delta_target_name, full_target_name

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "corpus"


def options(**kwargs: object) -> SyncOptions:
    sleeps: list[float] = []
    backoff = Backoff(sleep=sleeps.append, rand=lambda: 0.5)
    opts = SyncOptions(force=True, backoff=backoff)
    for key, value in kwargs.items():
        setattr(opts, key, value)
    return opts


def db_bytes(state: Path) -> bytes:
    return StateDir(state).db_path.read_bytes()


def releases(n: int, size: int = 50) -> list[list[RuleRecord]]:
    """n successive states: each adds 10 hashes, bumps one revision and drops one id."""
    out = [[hash_record(i) for i in range(1, size + 1)]]
    for k in range(1, n):
        current = {r.id: r for r in out[-1]}
        del current[min(current)]
        bumped = max(current)
        current[bumped] = hash_record(bumped, current[bumped].revision + 1)
        for i in range(10):
            current[1000 * k + i] = hash_record(1000 * k + i)
        out.append(list(current.values()))
    return out


def test_sync_installs_a_full_bundle_then_deltas(
    publisher: Publisher, portal: FakePortal, device: Callable[[str], Path]
) -> None:
    states = releases(3)
    publisher.publish(1, states[0])
    phone = device("phone")

    first = sync(phone, options())
    assert first["applied"] == "full"
    assert (first["from"], first["to"], first["signatures"]) == (0, 1, 50)

    publisher.publish(2, states[1])
    second = sync(phone, options())
    assert (second["applied"], second["from"], second["to"]) == ("delta", 1, 2)
    assert second["bytes"] < 1000  # eleven changed records, not the whole database

    publisher.publish(3, states[2])
    third = sync(phone, options())
    assert (third["applied"], third["to"]) == ("delta", 3)
    assert third["state_sha256"] == codec.state_sha256(states[2])

    again = sync(phone, options())
    assert (again["applied"], again["from"], again["to"]) == ("none", 3, 3)


def test_a_chain_of_deltas_and_a_full_bundle_give_the_same_database(
    publisher: Publisher, portal: FakePortal, device: Callable[[str], Path]
) -> None:
    states = releases(4)
    publisher.publish(1, states[0])
    early = device("early")
    sync(early, options())
    for number in (2, 3, 4):
        publisher.publish(number, states[number - 1])
        assert sync(early, options())["applied"] == "delta"

    late = device("late")
    assert sync(late, options())["applied"] == "full"
    a = codec.load_state(StateDir(early).db_path, 1)
    b = codec.load_state(StateDir(late).db_path, 1)
    assert (a.release, a.sha256) == (b.release, b.sha256) == (4, codec.state_sha256(states[3]))


def test_a_tampered_target_is_refused_and_the_old_database_stays(
    publisher: Publisher, portal: FakePortal, repo: UpdateRepository, device: Callable[[str], Path]
) -> None:
    states = releases(2)
    publisher.publish(1, states[0])
    phone = device("phone")
    sync(phone, options())
    before = db_bytes(phone)

    publisher.publish(2, states[1])
    target = repo.target_files()[delta_target_name(1, 2)]
    served = f"targets/{target.hashes['sha256']}.{target.path}"
    original = repo.target_path(target).read_bytes()
    portal.overrides[served] = original[:-1] + bytes([original[-1] ^ 1])

    with pytest.raises(ClientError, match="TUF verification failed") as failure:
        sync(phone, options())
    assert failure.value.extra["from"] == 1
    assert db_bytes(phone) == before


def test_a_rolled_back_timestamp_is_refused(
    publisher: Publisher, portal: FakePortal, repo: UpdateRepository, device: Callable[[str], Path]
) -> None:
    states = releases(3)
    publisher.publish(1, states[0])
    old_timestamp = (repo.metadata_dir / "timestamp.json").read_bytes()
    publisher.publish(2, states[1])
    phone = device("phone")
    sync(phone, options())  # now trusts the release-2 timestamp
    before = db_bytes(phone)

    publisher.publish(3, states[2])
    portal.overrides["metadata/timestamp.json"] = old_timestamp
    with pytest.raises(ClientError, match="BadVersionNumberError"):
        sync(phone, options())
    assert db_bytes(phone) == before


def test_an_expired_timestamp_is_refused(
    tmp_path: Path,
    publisher: Publisher,
    portal: FakePortal,
    repo: UpdateRepository,
    device: Callable[[str], Path],
) -> None:
    publisher.publish(1, releases(1)[0])
    phone = device("phone")
    # the timestamp was signed two days ago with a one-day expiry
    stale = UpdateRepository(
        repo.root_dir, repo.keys, clock=lambda: datetime.now(UTC) - timedelta(days=2)
    )
    stale.refresh_timestamp()
    with pytest.raises(ClientError, match="ExpiredMetadataError"):
        sync(phone, options())
    assert not StateDir(phone).db_path.exists()

    # re-signing on schedule brings devices back
    repo.refresh_timestamp()
    assert sync(phone, options())["to"] == 1


def test_a_wrong_state_hash_in_custom_data_is_refused(
    publisher: Publisher, portal: FakePortal, device: Callable[[str], Path]
) -> None:
    states = releases(2)
    publisher.publish(1, states[0])
    phone = device("phone")
    sync(phone, options())
    before = db_bytes(phone)

    publisher.publish(2, states[1], custom_override={"state_sha256": "0" * 64})
    with pytest.raises(ClientError, match="state hash mismatch"):
        sync(phone, options())
    assert db_bytes(phone) == before


def test_a_halted_release_is_skipped_and_a_device_never_goes_down(
    publisher: Publisher, portal: FakePortal, device: Callable[[str], Path]
) -> None:
    states = releases(3)
    publisher.publish(1, states[0])
    publisher.publish(2, states[1])
    phone = device("phone")
    assert sync(phone, options())["to"] == 2
    before = db_bytes(phone)

    # when release 2 is halted (re-signed rollout data)
    publisher.set_rollout(2, halted=True)
    # then the device on it stays there: never down to release 1
    stays = sync(phone, options())
    assert (stays["applied"], stays["to"]) == ("none", 2)
    assert db_bytes(phone) == before
    # and a new device gets the last good release, 1
    assert sync(device("fresh"), options())["to"] == 1
    # and when release 3 comes, the halted device moves on to it
    publisher.publish(3, states[2], deltas_from=(1, 2))
    moved = sync(phone, options())
    assert (moved["applied"], moved["to"]) == ("delta", 3)


def test_a_target_signed_as_one_release_holding_another_is_refused(
    publisher: Publisher, portal: FakePortal, repo: UpdateRepository, device: Callable[[str], Path]
) -> None:
    states = releases(2)
    publisher.publish(1, states[0])
    phone = device("phone")
    sync(phone, options())
    before = db_bytes(phone)
    # a full target signed as release 2 whose bytes are release 1's bundle
    wrong = codec.build_full(1, states[0])
    custom = {**repo.target_files()[full_target_name(1)].custom, "release": 2}
    repo.add_targets([(full_target_name(2), wrong, custom)])
    with pytest.raises(ClientError, match="holds release 1, not 2"):
        sync(phone, options())
    assert db_bytes(phone) == before


def test_the_rollout_percentage_is_decided_on_the_device_from_signed_data(
    publisher: Publisher, portal: FakePortal, device: Callable[[str], Path]
) -> None:
    publisher.publish(1, releases(1)[0], rollout={"percent": 30, "halted": False})
    phones = [device(f"p{i}") for i in range(12)]
    buckets = [rollout_bucket(StateDir(p).config().device_id) for p in phones]
    # then exactly the devices whose own bucket is under 30 install it
    installed = [sync(p, options())["to"] == 1 for p in phones]
    assert installed == [b < 30 for b in buckets]
    assert any(installed)
    assert not all(installed)
    # and widening the rollout reaches the rest
    publisher.set_rollout(1, percent=100)
    assert all(sync(p, options())["to"] == 1 for p in phones)


def test_retry_after_is_honoured_and_the_client_does_not_ask_again_early(
    publisher: Publisher, portal: FakePortal, device: Callable[[str], Path]
) -> None:
    publisher.publish(1, releases(1)[0])
    phone = device("phone")
    portal.scripted.append((429, {"Retry-After": "3600"}, {"detail": "slow down"}))

    with pytest.raises(ClientError) as failure:
        sync(phone, options(force=False))
    assert failure.value.exit_code == 75
    assert failure.value.extra["retry_after_seconds"] == 3600
    asked = portal.timestamp_requests

    waiting = sync(phone, options(force=False))
    assert waiting["applied"] == "none"
    assert waiting["waiting_seconds"] > 3500
    assert portal.timestamp_requests == asked  # no request was made

    assert sync(phone, options(force=True))["to"] == 1


def test_a_short_retry_after_is_waited_out_with_back_off(
    publisher: Publisher, portal: FakePortal, device: Callable[[str], Path]
) -> None:
    publisher.publish(1, releases(1)[0])
    phone = device("phone")
    portal.scripted.append((429, {"Retry-After": "5"}, {}))
    portal.scripted.append((503, {}, {}))
    portal.scripted.append((503, {"Retry-After": "7"}, {}))
    opts = options()
    opts.backoff.tries = 5
    slept: list[float] = []
    opts.backoff.sleep = slept.append

    assert sync(phone, opts)["to"] == 1
    assert slept[0] >= 5  # Retry-After, not less
    assert slept[1] == pytest.approx(0.75 * 2)  # base 1 s * 2**1, jitter pinned at the middle
    assert slept[2] >= 7  # a 503's Retry-After too
    # three refusals, then the conditional check that went through (tuf refreshes its own)
    assert portal.timestamp_requests >= 4


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def test_an_unchanged_repository_costs_one_small_conditional_request(
    publisher: Publisher, portal: FakePortal, device: Callable[[str], Path]
) -> None:
    publisher.publish(1, releases(1)[0])
    phone = device("phone")
    clock = Clock()
    assert sync(phone, options(clock=clock))["to"] == 1  # "update now": at once
    portal.requests.clear()
    clock.now += 3600
    report = check(phone, options(clock=clock, force=False))
    # then the scheduled check asked one thing, timestamp.json, and got a 304
    assert report["checked"] == "unchanged"
    assert portal.requests == ["/updates/metadata/timestamp.json"]
    assert portal.not_modified == 1
    # and it does not ask again before its interval (5 min, jittered)
    clock.now += 60
    assert check(phone, options(clock=clock, force=False))["waiting_seconds"] > 0
    assert portal.requests == ["/updates/metadata/timestamp.json"]


def test_an_urgent_release_is_installed_at_once_and_a_normal_one_at_the_device_slot(
    publisher: Publisher, portal: FakePortal, device: Callable[[str], Path]
) -> None:
    states = releases(3)
    publisher.publish(1, states[0])
    phone = device("phone")
    sync(phone, options())
    clock = Clock()
    schedule = Schedule(check_seconds=300, update_seconds=1800)

    def scheduled() -> dict[str, object]:
        opts = options(clock=clock, force=False, schedule=schedule, rand=lambda: 0.5)
        return check(phone, opts)  # checks every 300 s exactly: jitter pinned at the middle

    # a normal release waits for this device's slot in the half hour
    publisher.publish(2, states[1], rollout={"percent": 100, "halted": False, "urgent": False})
    first = scheduled()
    assert first["applied"] == "none"
    pending = first["pending"]
    assert isinstance(pending, dict)
    assert pending["release"] == 2
    install_at = float(pending["install_at"])
    assert clock.now <= install_at < clock.now + 1800
    report = first
    while clock.now < install_at:
        clock.now += 300
        report = scheduled()
    assert report["to"] == 2
    # an urgent release (the kill switch) is installed at the next check
    publisher.publish(3, states[2], rollout={"percent": 100, "halted": False, "urgent": True})
    clock.now += 300
    urgent = scheduled()
    assert (urgent["to"], urgent.get("urgent")) == (3, True)


def test_network_failures_are_retried_a_bounded_number_of_times(
    tmp_path: Path, device: Callable[[str], Path]
) -> None:
    phone = device("phone")
    config = StateDir(phone).config()
    StateDir(phone).save_config(
        type(config)(server="http://127.0.0.1:9", device_id="x", token="t")  # discard port
    )
    opts = options()
    slept: list[float] = []
    opts.backoff.sleep = slept.append
    with pytest.raises(ClientError, match="after 4 tries"):
        sync(phone, opts)
    assert slept == pytest.approx([0.75, 1.5, 3.0])


def test_an_old_engine_skips_newer_records_and_still_verifies(
    publisher: Publisher, portal: FakePortal, device: Callable[[str], Path]
) -> None:
    base = releases(1)[0]
    publisher.publish(1, base)
    publisher.publish(2, [*base, hash_record(7777, min_engine=99)])
    phone = device("phone")
    report = sync(phone, options())
    assert report["to"] == 2
    assert report["skipped_needing_newer_engine"] == 1
    state = codec.load_state(StateDir(phone).db_path, 1)
    assert 7777 in {r.id for r in state.skipped}
    assert 7777 not in {r.id for r in state.records}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "client", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_command_line_register_sync_and_scan(
    tmp_path: Path, publisher: Publisher, portal: FakePortal, repo: UpdateRepository
) -> None:
    apk = CORPUS / "apks" / "v2-only-with-rsa-pkcs1-sha256-2048.apk"
    if not apk.exists():
        missing_prerequisite(f"the shared corpus ({apk})")
    sha = "b11e85df088c3474b2d0f266f1a4863744162fc44b4b53a87d3432f03dce25c6"
    detection = dataclasses.replace(
        hash_record(1), body={"algorithm": "sha256", "target": "apk", "value": sha}
    )
    publisher.publish(1, [detection, *releases(1)[0][1:]])
    root = tmp_path / "root.json"
    repo.export_root(root)
    state = tmp_path / "cli-phone"

    reg = _run(
        "register",
        "--server",
        portal.url,
        "--enrollment-key",
        "enrol-me",
        "--root",
        str(root),
        "--state",
        str(state),
    )
    assert reg.returncode == 0, reg.stdout + reg.stderr
    assert json.loads(reg.stdout)["device_id"] == "dev-1"

    synced = _run("sync", "--state", str(state))
    assert synced.returncode == 0, synced.stdout + synced.stderr
    report = json.loads(synced.stdout)
    assert {k: report[k] for k in ("from", "to", "applied", "signatures")} == {
        "from": 0,
        "to": 1,
        "applied": "full",
        "signatures": 50,
    }
    assert report["bytes"] > 0

    not_an_apk = tmp_path / "notes.txt"
    not_an_apk.write_text("hello")
    scanned = _run("scan", "--state", str(state), str(apk), str(not_an_apk))
    lines = [json.loads(line) for line in scanned.stdout.splitlines()]
    assert scanned.returncode == 1  # one file could not be scanned
    assert lines[0]["sha256"] == sha
    assert lines[0]["package"] == "android.appsecurity.cts.tinyapp"
    assert lines[0]["verdict"] == "malicious"
    assert lines[0]["matches"][0]["name"] == "Andr.Trojan.Joker-1-1"
    assert "error" in lines[1]

    wrong = _run(
        "register",
        "--server",
        portal.url,
        "--enrollment-key",
        "nope",
        "--root",
        str(root),
        "--state",
        str(tmp_path / "other"),
    )
    assert wrong.returncode == 1
    assert "refused" in json.loads(wrong.stdout)["error"]


def test_sync_without_registration_says_so(tmp_path: Path) -> None:
    with pytest.raises(ClientError, match="not registered"):
        sync(tmp_path / "nowhere", options())


def test_register_keeps_the_root_it_was_given_as_trust_anchor(
    device: Callable[[str], Path],
) -> None:
    assert (device("x") / "trust" / "root.json").exists()


@pytest.mark.parametrize(("header", "seconds"), [("120", 120.0), ("\u00b3", None), ("1e3", None)])
def test_a_retry_after_that_is_not_ascii_digits_or_a_date_is_ignored(header, seconds) -> None:
    # given a server (or a proxy) answering with a strange Retry-After
    response = requests.Response()
    response.headers["Retry-After"] = header
    # then the client reads seconds only from ASCII digits, and never crashes
    assert retry_after_seconds(response) == seconds
