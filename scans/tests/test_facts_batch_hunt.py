"""A hunt of Koodous facts rules answers a chunk in one batch (engine.facts_batch), and finds
what the sample-by-sample path finds: the same apps, rules and evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from portal.models import User
from scans import retrohunts
from scans.retrohunts import retrohunt_run_sync
from scans.tests.conftest import SMALL_APK
from scans.tests.factories import stored_sample

pytestmark = pytest.mark.django_db

RULES = {
    # batched: a call pair, a negation (hits the other apps), integers
    "pair": 'androguard.package_name("jakhar.aseem.diva") and androguard.permission(/INTERNET/)',
    "others": "not androguard.package_name(/diva/) and androguard.min_sdk >= 1",
    "receivers": "androguard.receiver(/./) or androguard.activity(/Main/i)",
    # left to yara-x: the android.* globals are outside the batch's grammar
    "mixed": 'androguard.permission(/INTERNET/) and android.package != ""',
}


def koodous(name: str, condition: str) -> dict[str, str]:
    return {
        "kind": "yara",
        "body": f'import "androguard"\nrule {name} {{ condition: {condition} }}\n',
    }


def found(hunt: Any) -> set[tuple[str, str, str, tuple[str, ...]]]:
    return {
        (m.sample.sha256, m.name, m.kind, tuple(m.evidence))
        for m in hunt.matches.select_related("sample")
    }


def test_a_batched_koodous_hunt_finds_what_the_sample_by_sample_path_finds(
    corpus: Path, researcher: User, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    apks = corpus / "apks"
    for name in ("android.apk", "a2dp.Vol_137.apk", SMALL_APK):
        stored_sample(apks / name, user=researcher)
    # a first hunt analyses the never-scanned samples and stores their summaries
    retrohunt_run_sync(user=researcher, rule=koodous("warm", "true"))
    calls: list[int] = []
    batch = retrohunts.chunk_facts_matches

    def counted(id_range: tuple[int, int], ruleset: Any) -> Any:
        out = batch(id_range, ruleset)
        calls.append(len(out))
        return out

    monkeypatch.setattr(retrohunts, "chunk_facts_matches", counted)
    for name, condition in RULES.items():
        settings.RETROHUNT_FACTS_BATCH = False
        before = retrohunt_run_sync(user=researcher, rule=koodous(name, condition))
        settings.RETROHUNT_FACTS_BATCH = True
        after = retrohunt_run_sync(user=researcher, rule=koodous(name, condition))
        assert (after.errors, after.scanned) == (before.errors, before.scanned) == (0, 3)
        assert found(after) == found(before), name
        assert found(after), name  # each rule hits something, so the comparison means something
    # the batch answered every sample of every hunt with the batch on
    assert calls == [0, 3] * len(RULES)
