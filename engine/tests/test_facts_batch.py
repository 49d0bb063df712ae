"""engine.facts_batch: a chunk of apps at once gives, per app and rule, yara-x's answer.

Given every corpus Koodous rule that reads no bytes (and a few rules written for the corners),
when they run over the corpus APKs' facts and over synthetic fact sets built from the rules'
own arguments (mixed case, colons, missing values, empty lists, anchors, non-ASCII), then the
batch and ``FactsScanner`` (one yara-x scan per app) report the same hits, rule by rule.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from engine import ENGINE_VERSION, androguard
from engine.analyze import analyze_with_content
from engine.errors import AnalysisError
from engine.facts_batch import FactsBatch, summary_facts
from engine.facts_regex import python_regex
from engine.facts_summary import (
    FACTS_FORMAT,
    compact_facts,
    expand_facts,
    facts_current,
    stored_facts,
)
from engine.features import AppFeatures, Match, RuleRecord
from engine.importers import parse_path
from engine.kinds import _yara_source
from engine.kinds import yara as yara_kind
from engine.ruleset import FactsScanner, Ruleset, android_globals, compile_ruleset, reads_bytes

CORNERS = {
    "mixed_case_name": 'condition: androguard.app_name("MiXeD Name")',
    "sha1_colons": (
        'condition: androguard.certificate.sha1("AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89'
        ':AB:CD:EF:01")'
    ),
    "not_a_receiver": "condition: not androguard.receiver(/Boot/i)",
    "anchored_url": r"condition: androguard.url(/^https?:\/\/evil\.example\/gate$/)",
    "word_boundary": r"condition: androguard.package_name(/\bpay/)",
    "ints": (
        "condition: androguard.min_sdk < 21 and androguard.max_sdk == 0 "
        "or androguard.target_sdk >= 0x1c and androguard.permissions_number > 3"
    ),
    "int_vs_int": "condition: androguard.min_sdk == androguard.target_sdk",
    "dot_one_byte": "condition: androguard.app_name(/^caf.$/)",
    "non_ascii_equal": 'condition: androguard.app_name("café")',
    "byte_escape": r'condition: androguard.app_name("caf\xc3\xa9 x")',
    "case_class": "condition: androguard.service(/[a-c]{2,}Svc/i)",
    "issuer": r"condition: androguard.certificate.issuer(/\/CN=Evil/)",
    "dates": 'condition: androguard.certificate.not_after("2043-01-10T18:10:36Z")',
    "dotall": "condition: androguard.filter(/A.B/s)",
    "const": "condition: true and not false and androguard.permission(/SMS/)",
    "main": r"condition: androguard.main_activity(/\.Main$/)",
    "kelvin": 'condition: androguard.app_name("k") or androguard.service(/kelvin/i)',
    "sigma": 'condition: androguard.app_name("\u03c3\u03c3")',
    "relaxed": r"condition: androguard.url(/api.\mono\.ir/)",
    "display": "condition: androguard.displayed_version(/^1\\.0/) or androguard.activity(/x\\d/)",
}


def corner_records(start: int) -> list[RuleRecord]:
    records = []
    for n, (name, condition) in enumerate(CORNERS.items(), start=start):
        body = f'import "androguard"\n\nrule {name}\n{{\n\t{condition}\n}}\n'
        records.append(RuleRecord(n, 1, f"Andr.T.Corner-{n}-1", "yara", body, "suspicious"))
    return records


def koodous_records(corpus: Path) -> list[RuleRecord]:
    """Every corpus rule in a file that imports androguard (as the bench loads them)."""
    records: list[RuleRecord] = []
    root = corpus / "yara"
    for path in sorted(root.rglob("*.yar*")):
        parsed = _yara_source.parse(path.read_text(encoding="utf-8", errors="replace"))
        if not any(m == "androguard" for m, _ in parsed.imports):
            continue
        for candidate in parse_path(path, root=root):
            if candidate.ok:
                n = len(records) + 1
                records.append(
                    RuleRecord(n, 1, f"Andr.K.F-{n}-1", "yara", candidate.body, "suspicious")
                )
    return records


@pytest.fixture(scope="module")
def facts_ruleset(corpus: Path) -> Ruleset:
    records = koodous_records(corpus)
    everything = compile_ruleset(records)
    readers = everything.yara_byte_readers
    facts_only = [r for i, r in enumerate(everything.records) if i not in readers]
    ruleset = compile_ruleset([*facts_only, *corner_records(len(records) + 1)])
    assert ruleset.yara_facts_only
    assert not ruleset.errors, ruleset.errors[:3]
    return ruleset


@pytest.fixture(scope="module")
def corpus_features(corpus: Path) -> list[AppFeatures]:
    found = []
    for path in sorted((corpus / "apks").iterdir()):
        try:
            features, _ = analyze_with_content(path)
        except AnalysisError:
            continue
        found.append(features)
    assert len(found) >= 30
    return found


@pytest.fixture(scope="module")
def corpus_facts(corpus_features: list[AppFeatures]) -> list[dict[str, Any]]:
    return [android_globals(f)[androguard.FACTS_FIELD] for f in corpus_features]


def example(regex: str) -> str:
    """A string the pattern probably matches (its text less the syntax); a guess either way."""
    body = regex[1 : regex.rfind("/")]
    body = re.sub(r"\\[dw]", "7", body)
    body = re.sub(r"\[([^\]\\])[^\]]*\]", r"\1", body)
    body = re.sub(r"[\^$()?*+|]|\{[\d,]*\}", "", body)
    return re.sub(r"\\(.)", r"\1", body)


def synthetic_facts(batch: FactsBatch, count: int) -> list[dict[str, Any] | None]:
    """Fact sets built from the rules' own arguments, in mixed case, with the corners."""
    rng = random.Random(13)
    values: dict[str, list[str]] = {}
    for pred in batch.preds:
        if pred.kind == "string":
            text = androguard.unquote(pred.token)
            guesses = [text, text.upper(), text.title(), text + "x"]
        else:
            text = example(pred.token)
            guesses = [text, text.upper(), f"a{text}z", text[1:]]
        values.setdefault(pred.fact, []).extend(g for g in guesses if g)
    for fact in ("app_name", "package_name", "displayed_version", "main_activity"):
        values.setdefault(fact, []).extend(["café", "CAFÉ", "cafe", "caf\u00e9 x", "com.x.Main"])
    values["urls"] += ["https://evil.example/gate", "https://evil.example/gate\n", "http://x"]
    values["filters"] += ["A\nB", "AxB"]
    values["cert_issuer"] += ["/C=UK/CN=Evil", "/cn=evil"]
    # yara-x folds case beyond ASCII: the Kelvin sign is a K, the long s an S, sigmas
    values["services"] += ["\u212aelvinSvc", "ab\u017fSvc", "\u00c0bcSvc"]
    values["app_name"] += ["\u212a", "\u03a3\u03a3", "\u03c3\u03c2", "MIXED NAME", "mixed name "]
    out: list[dict[str, Any] | None] = [None, androguard.default_facts()]
    # a list whose count says empty although it holds a value: the count rules
    hidden = androguard.default_facts()
    hidden["activities"] = ["com.evil.Activity"]
    out.append(hidden)
    integers = [0, 1, 9, 16, 19, 20, 21, 23, 28, 29, 33]
    for _ in range(count):
        facts = androguard.default_facts()
        for fact in ("package_name", "app_name", "displayed_version", "main_activity"):
            if rng.random() < 0.6:
                facts[fact] = rng.choice(values[fact])
        for fact, count_name in androguard._COUNT.items():
            if fact.startswith("cert_") and fact != "cert_sha1":
                continue
            pool = values.get(fact, [""])
            chosen = [rng.choice(pool) for _ in range(rng.randint(0, 4))]
            chosen = [v for v in chosen if v]
            facts[fact] = chosen or [""]
            facts[count_name] = len(chosen)
        certs = facts["cert_sha1_count"]
        facts["cert_sha1"] = [v.lower() for v in facts["cert_sha1"]]
        for fact in ("cert_issuer", "cert_subject", "cert_not_before", "cert_not_after"):
            pool = values.get(fact, ["/CN=x"])
            facts[fact] = [rng.choice(pool) for _ in range(certs)] or [""]
        for name in androguard.INTEGERS:
            facts[name] = rng.choice(integers)
        out.append(facts)
    return out


def scanner_hits(
    ruleset: Ruleset, facts: list[dict[str, Any] | None], wanted: set[int]
) -> list[set[tuple[int, tuple[str, ...]]]]:
    scanner = FactsScanner(ruleset)
    base = yara_kind.default_globals()
    out = []
    for one in facts:
        android = dict(base) if one is None else {**base, androguard.FACTS_FIELD: one}
        if one is None:
            android.pop(androguard.FACTS_FIELD, None)  # a pack without facts
        matches = scanner.match(android)
        out.append({(m.signature_id, m.evidence) for m in matches if m.signature_id in wanted})
    return out


def batch_hits(batch: FactsBatch, facts: list[dict[str, Any] | None]) -> list[set[Any]]:
    found: list[list[Match]] = []
    for start in range(0, len(facts), 97):  # several batches: the value cache carries over
        found += batch.match(facts[start : start + 97])
    return [{(m.signature_id, m.evidence) for m in matches} for matches in found]


def test_most_corpus_koodous_facts_rules_run_in_the_batch(facts_ruleset: Ruleset) -> None:
    batch = FactsBatch(facts_ruleset.records, facts_ruleset.yara_namespaces.values())
    assert len(batch.rules) >= 210  # of 221 corpus rules + the corners
    corner_ids = {r.id for r in facts_ruleset.records if ".Corner-" in r.name}
    assert corner_ids <= {facts_ruleset.records[r.index].id for r in batch.rules}
    # what stays on yara-x does so for a reason the parser names (``them``, byte patterns…)
    assert len(batch.rest) <= 30


def test_batch_and_yara_x_agree_on_every_sample_and_rule(
    facts_ruleset: Ruleset, corpus_facts: list[dict[str, Any]]
) -> None:
    batch = FactsBatch(facts_ruleset.records, facts_ruleset.yara_namespaces.values())
    wanted = {facts_ruleset.records[r.index].id for r in batch.rules}
    facts = [*corpus_facts, *synthetic_facts(batch, 1500)]
    want = scanner_hits(facts_ruleset, facts, wanted)
    got = batch_hits(batch, facts)
    differences = [
        (n, sorted(w ^ g)) for n, (w, g) in enumerate(zip(want, got, strict=True)) if w != g
    ]
    assert differences == []
    hits = sum(len(w) for w in want)
    rules_hit = {sid for w in want for sid, _ in w}
    # the synthetic apps make most rules fire (else the comparison would prove little)
    assert hits > 1000
    assert len(rules_hit) >= 150
    corner_ids = {r.id for r in facts_ruleset.records if ".Corner-" in r.name}
    assert len(corner_ids & rules_hit) >= len(CORNERS) - 2


def test_rules_left_to_yara_x_are_not_answered_by_the_batch(facts_ruleset: Ruleset) -> None:
    body = 'import "androguard"\nrule a { condition: androguard.url(/api.\\mono\\.ir/) }\n'
    other = RuleRecord(1, 1, "Andr.T.Rest-1-1", "yara", body, "suspicious")
    ruleset = compile_ruleset([other])
    batch = FactsBatch(ruleset.records, ruleset.yara_namespaces.values())
    assert len(batch.rules) == 1  # yara-x answers its one pattern, per distinct value
    assert batch.match([{**androguard.default_facts(), "urls": ["api.mono.ir"], "urls_count": 1}])
    assert batch.match([androguard.default_facts()]) == [[]]


@pytest.mark.parametrize(
    ("regex", "python"),
    [
        (r"/com\.evil/", rb"com\.evil"),
        ("/a$/i", rb"a\Z"),
        (r"/[a-z]{2,}\d/", rb"[a-z]{2,}\d"),
        (r"/\x41(?:b|c)+?/s", rb"\x41(?:b|c)+?"),
    ],
)
def test_patterns_translate_to_the_same_meaning(regex: str, python: bytes) -> None:
    pattern = python_regex(regex)
    assert pattern is not None
    assert pattern.pattern == python


@pytest.mark.parametrize(
    "regex",
    [
        r"/\mono/",
        "/[[:alpha:]]/",
        "/(?i)a/",
        "/a{,3}/",
        "/a*+/",
        "/é/",
        "/[a&&b]/",
        "/[]a]/",
        "/a]/",
        "/a}/",
    ],
)
def test_patterns_outside_the_subset_stay_on_yara_x(regex: str) -> None:
    assert python_regex(regex) is None


def summary(data: dict[str, Any]) -> dict[str, Any]:
    """What ``Sample.features`` keeps (``scans.storage.features_summary``): no DEX tables."""
    out = {k: v for k, v in data.items() if k not in ("strings", "types", "methods")}
    out["parts"] = [summary(p) for p in data.get("parts") or ()]
    return out


def test_summary_facts_are_the_features_facts(corpus_features: list[AppFeatures]) -> None:
    for features in corpus_features:
        assert summary_facts(summary(features.to_dict())) == androguard.facts(features)


def test_a_rule_with_anonymous_strings_reads_bytes() -> None:
    # given a Koodous-style rule whose only strings are anonymous, then it reads the bytes
    # (it was taken for a facts rule and hunted over no bytes, so it never hit)
    assert reads_bytes('rule a { strings: $ = "cosmetiq" condition: 1 of them }')
    assert reads_bytes('rule a { strings: $ = "x" condition: $ and androguard_ok }')
    assert not reads_bytes('rule a { condition: android.package == "com.themes" }')


def as_stored(facts: dict[str, Any] | None) -> dict[str, Any] | None:
    """The compact form as a row gives it back (through JSON, as ``Sample.facts`` is)."""
    return None if facts is None else json.loads(json.dumps(compact_facts(facts)))


def test_the_stored_facts_of_a_summary_are_its_facts(corpus_features: list[AppFeatures]) -> None:
    # given each corpus app's stored summary, when its compact facts are stored and read back
    for features in corpus_features:
        facts = summary_facts(summary(features.to_dict()))
        stored = json.loads(json.dumps(stored_facts(summary(features.to_dict()))))
        # then they are current, smaller than the summary, and expand to the facts exactly
        assert facts_current(stored)
        assert len(json.dumps(stored)) < len(json.dumps(summary(features.to_dict())))
        assert expand_facts(stored) == facts == androguard.facts(features)


def test_the_batch_reads_the_compact_form_as_the_full_facts(
    facts_ruleset: Ruleset, corpus_facts: list[dict[str, Any]]
) -> None:
    # given the corpus facts and synthetic ones (a count of 0 over a non-empty list, missing
    # and empty values, unknown apps), each also in its compact stored form
    batch = FactsBatch(facts_ruleset.records, facts_ruleset.yara_namespaces.values())
    facts = [*corpus_facts, *synthetic_facts(batch, 600)]
    stored = [as_stored(f) for f in facts]
    # then the compact form expands back exactly, and the batch finds the same hits in both
    assert [None if f is None else expand_facts(f) for f in stored] == facts
    fresh = FactsBatch(facts_ruleset.records, facts_ruleset.yara_namespaces.values())
    assert batch_hits(fresh, stored) == batch_hits(batch, facts)
    assert sum(len(h) for h in batch_hits(batch, facts)) > 300


def test_stored_facts_of_another_format_or_engine_are_not_current() -> None:
    stored = compact_facts(androguard.default_facts())
    assert facts_current(stored)
    assert not facts_current({**stored, "_format": [FACTS_FORMAT + 1, ENGINE_VERSION]})
    assert not facts_current({**stored, "_format": [FACTS_FORMAT, ENGINE_VERSION - 1]})
    assert not facts_current(androguard.default_facts())  # untagged: a summary, say
    assert not facts_current(None)
