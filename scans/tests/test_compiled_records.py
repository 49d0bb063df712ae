"""scans.hunt_plan.compiled_records: a process compiles the same rules once, and never serves
the compiled form of other rules (a new revision, another name) for them."""

from __future__ import annotations

import pytest

from engine.features import RuleRecord
from scans import hunt_plan
from scans.hunt_plan import compiled_records

BODY = 'import "androguard"\nrule r { condition: androguard.permission(/SMS/) }\n'


def record(revision: int = 1, name: str = "Andr.T.X-1-1", body: str = BODY) -> RuleRecord:
    return RuleRecord(1, revision, name, "yara", body, "suspicious")


def test_the_same_rules_compile_once_and_other_rules_do_not_share_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = compiled_records([record()])
    assert compiled_records([record()]) is first
    # any field of a record makes it other rules: its matches carry the name and revision
    for other in (record(revision=2), record(name="Andr.T.Y-1-1"), record(body=BODY + "\n")):
        again = compiled_records([other])
        assert again is not first
        assert again.records[0] == other
    # a ruleset larger than the cache keeps (a feed's gate hunt) is compiled each time
    monkeypatch.setattr(hunt_plan, "_COMPILED_CACHE_RECORDS", 1)
    two = [record(), record(revision=3)]
    assert compiled_records(two) is not compiled_records(two)
