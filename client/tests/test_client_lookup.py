"""``client lookup``: the portal's verdicts of apps, asked in batches of 100 and kept per hash
until they expire or the installed release changes; a throttled phone waits."""

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
from client.api import Backoff
from client.lookup import LookupOptions, cache_path, lookup
from client.state import ClientError, StateDir
from client.tests.conftest import FakePortal, hash_record
from engine import codec


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def opts(clock: Clock | None = None, **kwargs: Any) -> LookupOptions:
    backoff = Backoff(sleep=lambda _: None, rand=lambda: 0.5)
    return LookupOptions(backoff=backoff, clock=clock or Clock(), **kwargs)


def run(*argv: str) -> tuple[int, list[dict[str, Any]]]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(list(argv))
    return code, [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def install(state: Path, release: int) -> None:
    data = codec.build_full(release, [hash_record(1)])
    StateDir(state).install(codec.apply_full(data, 1))


def test_a_file_and_a_hash_are_answered_then_answered_again_from_the_cache(
    portal: FakePortal, device: Callable[[str], Path], tmp_path: Path
) -> None:
    # given a phone, an app file the portal knows as malicious and a hash it never saw
    phone = device("phone")
    app = tmp_path / "app.apk"
    app.write_bytes(b"not really an apk, but hashed all the same")
    known = hashlib.sha256(app.read_bytes()).hexdigest()
    unseen = sha("unseen")
    portal.verdicts[known] = "malicious"
    # when it looks them up (the hash given in capitals)
    code, lines = run("lookup", "--state", str(phone), str(app), unseen.upper())
    # then one request asked about both, and each app has its line
    assert code == 0, lines
    assert portal.lookups == [[known, unseen]]
    assert [(x["sha256"], x["verdict"], x["cached"]) for x in lines] == [
        (known, "malicious", False),
        (unseen, "unknown", False),
    ]
    assert lines[0]["file"] == str(app)
    assert lines[0]["family"] == "Joker"
    # and a second run answers both from the cache, with no request
    code, again = run("lookup", "--state", str(phone), unseen, str(app))
    assert code == 0
    assert len(portal.lookups) == 1
    assert [(x["sha256"], x["verdict"], x["cached"]) for x in again] == [
        (unseen, "unknown", True),
        (known, "malicious", True),
    ]


def test_many_apps_are_asked_in_batches_of_100_and_duplicates_once(
    portal: FakePortal, device: Callable[[str], Path]
) -> None:
    phone = device("phone")
    hashes = [sha(f"app-{i}") for i in range(250)]
    results, throttled = lookup(phone, [*hashes, hashes[0]], opts())
    assert throttled is None
    assert [len(b) for b in portal.lookups] == [100, 100, 50]
    assert sorted(h for b in portal.lookups for h in b) == sorted(hashes)
    assert len(results) == 251
    # only the hashes not in the cache are asked about next time
    lookup(phone, [*hashes[:10], sha("new")], opts())
    assert portal.lookups[-1] == [sha("new")]


def test_an_answer_expires_after_the_portals_cache_seconds(
    portal: FakePortal, device: Callable[[str], Path]
) -> None:
    phone = device("phone")
    portal.cache_seconds = 600
    clock = Clock()
    lookup(phone, [sha("a")], opts(clock))
    clock.now += 599
    assert lookup(phone, [sha("a")], opts(clock))[0][0]["cached"] is True
    clock.now += 2
    assert lookup(phone, [sha("a")], opts(clock))[0][0]["cached"] is False
    assert len(portal.lookups) == 2


def test_a_new_installed_release_drops_every_cached_answer(
    portal: FakePortal, device: Callable[[str], Path]
) -> None:
    # given answers kept under release 1
    phone = device("phone")
    install(phone, 1)
    first = lookup(phone, [sha("a"), sha("b")], opts())[0]
    assert {x["installed_release"] for x in first} == {1}
    assert lookup(phone, [sha("a")], opts())[0][0]["cached"] is True
    # when release 2 is installed (a sync), then the next look-up asks again
    portal.verdicts[sha("a")] = "malicious"
    install(phone, 2)
    again = lookup(phone, [sha("a")], opts())[0][0]
    assert (again["verdict"], again["cached"], again["installed_release"]) == (
        "malicious",
        False,
        2,
    )
    assert json.loads(cache_path(StateDir(phone)).read_text())["release"] == 2


def test_a_long_retry_after_exits_75_keeps_what_was_answered_and_waits(
    portal: FakePortal, device: Callable[[str], Path]
) -> None:
    phone = device("phone")
    cached = sha("cached")
    lookup(phone, [cached], opts())
    portal.lookup_scripted.append((429, {"Retry-After": "3600"}, {"message": "slow down"}))
    # when the portal throttles the look-up
    code, lines = run("lookup", "--state", str(phone), cached, sha("other"))
    # then the cached answer is printed, the other app says it was not asked, and exit 75
    assert code == 75
    assert lines[0]["verdict"] == "unknown"
    assert lines[0]["cached"] is True
    assert "not asked" in lines[1]["error"]
    assert lines[2]["retry_after_seconds"] == 3600
    assert lines[2]["unanswered"] == 1
    asked = len(portal.lookups)
    # and the next run does not ask before the time it was told
    code, lines = run("lookup", "--state", str(phone), sha("other"))
    assert code == 75
    assert lines[-1]["retry_after_seconds"] > 3500
    assert len(portal.lookups) == asked
    assert not portal.lookup_scripted
    # unless forced
    code, lines = run("lookup", "--state", str(phone), "--force", sha("other"))
    assert code == 0
    assert lines[0]["verdict"] == "unknown"


def test_a_short_retry_after_is_waited_out_in_process(
    portal: FakePortal, device: Callable[[str], Path]
) -> None:
    phone = device("phone")
    portal.lookup_scripted.append((429, {"Retry-After": "2"}, {"message": "slow down"}))
    slept: list[float] = []
    options = opts()
    options.backoff.sleep = slept.append
    results, throttled = lookup(phone, [sha("a")], options)
    assert throttled is None
    assert results[0]["verdict"] == "unknown"
    assert slept
    assert slept[0] >= 2


def test_bad_arguments_and_refusals_say_what_is_wrong(
    portal: FakePortal, device: Callable[[str], Path], tmp_path: Path
) -> None:
    phone = device("phone")
    code, lines = run("lookup", "--state", str(phone), "nope", sha("a"))
    assert code == 1
    assert "neither" in lines[0]["error"]
    assert lines[1]["verdict"] == "unknown"
    portal.lookup_scripted.append((400, {}, {"message": "sha256s[0] is not a SHA-256."}))
    with pytest.raises(ClientError, match="refused") as refused:
        lookup(phone, [sha("b")], opts())
    assert refused.value.extra["detail"]["message"].startswith("sha256s[0]")
    portal.lookup_scripted.append((200, {}, {"results": [], "cache_seconds": 60}))
    with pytest.raises(ClientError, match="lacks 1 app"):
        lookup(phone, [sha("c")], opts())
    with pytest.raises(ClientError, match="not registered"):
        lookup(tmp_path / "nowhere", [sha("a")], opts())
