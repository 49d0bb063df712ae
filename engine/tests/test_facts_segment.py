"""engine.facts_segment: Koodous facts rules answered over a block's inverted index of facts give,
per app and rule, yara-x's answer.

Given every corpus Koodous rule that reads no bytes and the corner rules of
``test_facts_batch`` (plus patterns that span values, anchored patterns and patterns left to
yara-x), when they run over segments of the corpus APKs' facts and of synthetic fact sets, then
each app's hits are those ``FactsScanner`` (one yara-x scan per app) reports.
"""

from __future__ import annotations

import random
import zlib
from typing import Any

import pytest

from engine import androguard
from engine.facts_batch import FactsBatch
from engine.facts_segment import (
    SEGMENT_IDS,
    Segment,
    SegmentPlan,
    positions_mask,
    segment_encode,
    segment_match,
)
from engine.facts_summary import compact_facts
from engine.features import RuleRecord
from engine.ruleset import Ruleset, compile_ruleset
from engine.tests.test_facts_batch import (
    corpus_facts,
    corpus_features,
    facts_ruleset,
    scanner_hits,
    synthetic_facts,
)

__all__ = ["corpus_facts", "corpus_features", "facts_ruleset"]  # the fixtures, shared

# patterns whose matches in the column's text may cross from one value into the next (\s, a
# class, a dot with /s), anchored ones, and ones Python does not answer (left to yara-x)
SPANNING = {
    "spans_space": r"condition: androguard.activity(/a\sb/)",
    "spans_class": r"condition: androguard.service(/x[^y]z/)",
    "spans_dotall": r"condition: androguard.receiver(/q.r/s)",
    "anchored_both": r"condition: androguard.url(/^ab$/)",
    "short_run": "condition: androguard.filter(/zq/)",
    "yara_only_pattern": r"condition: androguard.activity(/nn.\mono/)",
}
SPAN_VALUES = {
    "activities": ["xa", "b", "a b", "ab", "nnXmono", "nn", "mono", "a\nb"],
    "services": ["ax", "z", "axqz", "xz", "x\nz"],
    "receivers": ["q", "r", "qxr", "q\nr"],
    "urls": ["ab", "xab", "abx", "a", "b"],
    "filters": ["z", "q", "zq", "ZQ"],
}


@pytest.fixture(scope="module")
def ruleset(facts_ruleset: Ruleset) -> Ruleset:
    start = max(r.id for r in facts_ruleset.records) + 1
    extra = [
        RuleRecord(
            n,
            1,
            f"Andr.T.Span-{n}-1",
            "yara",
            f'import "androguard"\n\nrule {name}\n{{\n\t{condition}\n}}\n',
            "suspicious",
        )
        for n, (name, condition) in enumerate(SPANNING.items(), start=start)
    ]
    return compile_ruleset([*facts_ruleset.records, *extra])


def spanning_facts(count: int) -> list[dict[str, Any]]:
    """Apps holding values next to each other in a column that a pattern spans."""
    rng = random.Random(7)
    out = []
    for _ in range(count):
        facts = androguard.default_facts()
        for fact, pool in SPAN_VALUES.items():
            chosen = list(dict.fromkeys(rng.choice(pool) for _ in range(rng.randint(0, 3))))
            facts[fact] = chosen or [""]
            facts[androguard._COUNT[fact]] = len(chosen)
        out.append(facts)
    return out


def segments_hits(
    plan: SegmentPlan, facts: list[dict[str, Any]], ids: list[int]
) -> dict[int, set[Any]]:
    """Per app id, the hits of the segments of its block, each segment encoded and decoded."""
    out: dict[int, set[Any]] = {}
    blocks: dict[int, list[int]] = {}
    for n, pk in enumerate(ids):
        blocks.setdefault(pk // SEGMENT_IDS, []).append(n)
    for block, members in blocks.items():
        data = segment_encode(block, [ids[n] for n in members], [facts[n] for n in members])
        segment = Segment.decode(data)
        everyone = positions_mask([ids[n] - segment.base for n in members])
        for position, matches in segment_match(plan, segment, everyone).items():
            out[segment.base + position] = {(m.signature_id, m.evidence) for m in matches}
    return out


def test_segments_and_yara_x_agree_on_every_app_and_rule(
    ruleset: Ruleset, corpus_facts: list[dict[str, Any]]
) -> None:
    batch = FactsBatch(ruleset.records, ruleset.yara_namespaces.values())
    wanted = {ruleset.records[r.index].id for r in batch.rules}
    facts: list[dict[str, Any]] = [
        f
        for f in [*corpus_facts, *synthetic_facts(batch, 1500), *spanning_facts(400)]
        if f is not None
    ]
    # the apps spread over three blocks, with gaps (ids of samples without facts)
    rng = random.Random(3)
    ids = sorted(rng.sample(range(SEGMENT_IDS - 700, 3 * SEGMENT_IDS), len(facts)))
    # stored as rows keep them, half compact and half full
    stored = [compact_facts(f) if n % 2 else f for n, f in enumerate(facts)]
    want = scanner_hits(ruleset, list(facts), wanted)
    got = segments_hits(SegmentPlan(batch), stored, ids)
    differences = [
        (ids[n], sorted(w ^ got.get(ids[n], set())))
        for n, w in enumerate(want)
        if w != got.get(ids[n], set())
    ]
    assert differences == []
    # the comparison proves something: most rules fire, the spanning ones included
    rules_hit = {sid for w in want for sid, _ in w}
    assert sum(len(w) for w in want) > 1000
    assert len(rules_hit) >= 150
    span_ids = {r.id for r in ruleset.records if ".Span-" in r.name}
    assert span_ids <= rules_hit


def test_apps_outside_everyone_never_match(ruleset: Ruleset) -> None:
    # given a segment of four apps that all hit a rule, when only two are asked for, then only
    # those two are answered (a sample deleted or stale since the segment was built is not)
    batch = FactsBatch(ruleset.records, ruleset.yara_namespaces.values())
    apps = spanning_facts(200)
    hits = [
        n
        for n, h in enumerate(
            scanner_hits(ruleset, list(apps), {0} | {r.id for r in ruleset.records})
        )
        if h
    ]
    chosen = hits[:4]
    segment = Segment.decode(
        segment_encode(5, [5 * SEGMENT_IDS + n for n in chosen], [apps[n] for n in chosen])
    )
    assert segment.ids() == [5 * SEGMENT_IDS + n for n in chosen]
    found = segment_match(SegmentPlan(batch), segment, positions_mask(chosen[:2]))
    assert set(found) == set(chosen[:2])


def test_a_segment_refuses_ids_of_another_block_and_another_format() -> None:
    with pytest.raises(ValueError, match="outside the segment's block"):
        segment_encode(1, [SEGMENT_IDS - 1], [androguard.default_facts()])
    data = segment_encode(0, [3], [androguard.default_facts()])
    raw = zlib.decompress(data).replace(b'"format": 1', b'"format": 0')
    with pytest.raises(ValueError, match="another format"):
        Segment.decode(zlib.compress(raw))


def test_a_damaged_segment_is_refused_with_a_reason() -> None:
    facts = spanning_facts(50)
    data = segment_encode(0, list(range(50)), facts)
    assert len(Segment.decode(data).ids()) == 50
    raw = zlib.decompress(data)
    for damaged in (data[: len(data) // 2], zlib.compress(raw[:-3]), zlib.compress(raw + b"x")):
        with pytest.raises(ValueError, match="a damaged segment"):
            Segment.decode(damaged)
