"""Compile signature records into lookup structures and match apps against them.

``compile(records)`` builds one ``Ruleset``: each kind's records go into that kind's own index
(``Kind.new_index``, ``engine.kinds.base.KindIndex``): sets and dicts for hashes, indicators
and package/certificate pairs, an inverted index for behaviours, a single ``yara_x.Rules``
for every YARA record. This module never looks at a kind's name: it hands records to their
kind's index and asks each index for hits. ``match(features, ruleset, content)`` costs time
in proportion to what the app contains, not to the number of records (YARA excepted, which
scans bytes).

Records are expected to carry the normalised body their kind's ``validate`` returned; compile
trusts them, so that a release of a million records compiles in seconds. A record that still
cannot be used (unknown kind, a YARA rule this yara-x rejects) lands in ``Ruleset.errors`` and
never stops the others from compiling.

Verdict and score (``verdict``):

- only scoring matches count (noisy signatures are reported but never score);
- the verdict is ``malicious`` if any scoring match has severity ``malicious``, else
  ``suspicious`` if any has severity ``suspicious`` or ``riskware`` (riskware is software a
  user may want but should know about), else ``clean``;
- each scoring match has a weight: 100 for malicious, 60 for suspicious, 30 for riskware;
  a behaviour match scales its weight by its body's score / 100 (when the ruleset is given);
- the score combines the weights as independent evidence, ``100 * (1 - prod(1 - w/100))``,
  rounded: one malicious match gives 100, two suspicious ones give 84, and it never exceeds 100.
"""

from __future__ import annotations

import builtins
import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yara_x

from engine import ENGINE_VERSION, literal_split
from engine.features import AppContent, AppFeatures, Match, RuleRecord, Severity, Verdict
from engine.kinds import REGISTRY
from engine.kinds.base import MAX_EVIDENCE_PER_MATCH, Hits, KindIndex
from engine.kinds.yara_match import (
    YARA_SCAN_TIMEOUT_SECONDS,
    YaraIndex,
    android_globals,
    reads_bytes,
    reads_globals,
)

SEVERITY_WEIGHT: dict[str, int] = {"malicious": 100, "suspicious": 60, "riskware": 30}
_YARA = "yara"  # the kind whose index answers the yara_* attributes below


@dataclass(frozen=True, slots=True)
class CompileProblem:
    """A record that is in the ruleset's input but cannot be matched by this engine."""

    signature_id: int
    revision: int
    name: str
    message: str


@dataclass
class Ruleset:
    engine_version: int
    records: list[RuleRecord] = field(default_factory=list)
    skipped: int = 0
    errors: list[CompileProblem] = field(default_factory=list)
    # kind name -> that kind's index of its records (``KindIndex``), in the order met
    indexes: dict[str, KindIndex] = field(default_factory=dict)
    # the indexes ``match`` asks, worked out once by ``compile``
    feature_indexes: list[KindIndex] = field(default_factory=list)
    content_indexes: list[KindIndex] = field(default_factory=list)
    # (signature id, revision) -> position, for records whose kind scales its weight
    weighted: dict[tuple[int, int], int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)

    def __copy__(self) -> Ruleset:
        # each index is copied too, so that tuning a copy (``yara_split = None``) leaves the
        # original as it was
        indexes = {name: copy.copy(index) for name, index in self.indexes.items()}
        swap = {id(old): indexes[name] for name, old in self.indexes.items()}
        return Ruleset(
            engine_version=self.engine_version,
            records=self.records,
            skipped=self.skipped,
            errors=self.errors,
            indexes=indexes,
            feature_indexes=[swap[id(i)] for i in self.feature_indexes],
            content_indexes=[swap[id(i)] for i in self.content_indexes],
            weighted=self.weighted,
        )

    def index(self, kind: str) -> KindIndex | None:
        """The index of ``kind``'s records, or None when the ruleset has none."""
        return self.indexes.get(kind)

    def counts(self) -> dict[str, int]:
        """How many matchable records of each kind (for logs and the bench)."""
        result: dict[str, int] = {}
        for position, record in enumerate(self.records):
            index = self.indexes.get(record.kind)
            if index is not None and index.matchable(position):
                result[record.kind] = result.get(record.kind, 0) + 1
        return result

    # --- the YARA index's attributes, which retro-hunts, benches and tests read and tune ----

    @property
    def yara_index(self) -> YaraIndex:
        """The YARA kind's index (an empty one when the ruleset has no YARA records)."""
        index = self.indexes.get(_YARA)
        if not isinstance(index, YaraIndex):
            index = YaraIndex()  # no YARA records: an empty index answers
        return index

    @property
    def yara_rules(self) -> yara_x.Rules | None:
        return self.yara_index.yara_rules

    @property
    def yara_namespaces(self) -> dict[str, int]:
        return self.yara_index.yara_namespaces

    @property
    def yara_byte_readers(self) -> set[int]:
        return self.yara_index.yara_byte_readers

    @property
    def yara_global_readers(self) -> set[int]:
        return self.yara_index.yara_global_readers

    @property
    def yara_part_readers(self) -> set[int]:
        return self.yara_index.yara_part_readers

    @yara_part_readers.setter
    def yara_part_readers(self, value: set[int]) -> None:
        self._yara_to_tune().yara_part_readers = value

    @property
    def yara_split(self) -> literal_split.SplitPlan | None:
        return self.yara_index.yara_split

    @yara_split.setter
    def yara_split(self, value: literal_split.SplitPlan | None) -> None:
        self._yara_to_tune().yara_split = value

    def _yara_to_tune(self) -> YaraIndex:
        index = self.indexes.get(_YARA)
        if not isinstance(index, YaraIndex):
            raise ValueError("this ruleset has no YARA records to tune")
        return index

    @property
    def behavior_index(self) -> dict[str, list[int]]:
        """The behaviour kind's inverted index (empty without behaviours): non-empty means
        matching needs an app's methods."""
        return getattr(self.indexes.get("behavior"), "behavior_index", {})

    @property
    def yara_only(self) -> bool:
        """Only YARA records can match (``match_yara`` needs no features then)."""
        return self.yara_index.matches_content and not self.feature_indexes

    @property
    def yara_facts_only(self) -> bool:
        """Only YARA records, none of which reads bytes: ``match_facts`` answers from the
        app's stored facts alone, with no file, manifest or DEX to read."""
        return self.yara_only and not self.yara_byte_readers


# shadows the builtin inside this module only; callers import compile_ruleset
def compile(records: Iterable[RuleRecord], *, engine_version: int = ENGINE_VERSION) -> Ruleset:
    """Build a ``Ruleset`` from records; see the module docstring for what goes where."""
    ruleset = Ruleset(engine_version=engine_version)
    for record in records:
        kind = REGISTRY.get(record.kind)
        if record.min_engine > engine_version or (kind and kind.min_engine > engine_version):
            ruleset.skipped += 1
            continue
        if kind is None:
            ruleset.errors.append(_problem(record, f"unknown signature kind {record.kind!r}"))
            continue
        index = ruleset.indexes.get(kind.name)
        if index is None:
            index = ruleset.indexes[kind.name] = kind.new_index()
        position = len(ruleset.records)
        try:
            index.add(record, position)
        except (KeyError, TypeError, ValueError) as exc:
            ruleset.errors.append(_problem(record, f"malformed body: {exc!r}"))
            continue
        ruleset.records.append(record)
        if kind.scales_weight:
            ruleset.weighted[(record.id, record.revision)] = position
    for index in ruleset.indexes.values():
        for position, message in index.finish(ruleset.records):
            ruleset.errors.append(_problem(ruleset.records[position], message))
    ruleset.feature_indexes = [i for i in ruleset.indexes.values() if i.matches_features]
    ruleset.content_indexes = [i for i in ruleset.indexes.values() if i.matches_content]
    return ruleset


compile_ruleset = compile


def _problem(record: RuleRecord, message: str) -> CompileProblem:
    return CompileProblem(record.id, record.revision, record.name, message)


# --------------------------------------------------------------------------------------------
# matching


def match(
    features: AppFeatures,
    ruleset: Ruleset,
    content: AppContent | None = None,
    *,
    first_hit: bool = False,
) -> list[Match]:
    """The records ``features`` matches, one ``Match`` per record, with evidence for people.

    Hash, indicator, package_cert and behaviour records are matched from ``features`` alone
    (for an XAPK also from each part). YARA records need the bytes: pass ``content`` (from
    ``engine.analyze.analyze_with_content``) and they run over the whole file, the binary
    manifest and each DEX. Without ``content`` YARA records are not evaluated at all, so a
    match list computed without content says nothing about them.

    ``first_hit`` is for retro-hunts, which ask *which* samples each rule hits, not every
    place it hits: the DEX files are scanned first (where Android rules usually hit), then the
    manifest, then the whole file, and scanning stops once every YARA record has hit; the
    evidence is then that of the first part hit. Which records match is the same either way.

    Raises ``yara_x.TimeoutError`` if a YARA scan exceeds YARA_SCAN_TIMEOUT_SECONDS rather
    than returning a result that silently misses rules.
    """
    hits = Hits()
    indexes = ruleset.feature_indexes
    if indexes:
        for index in indexes:
            index.match_features(features, hits, "")
        for n, part in enumerate(features.parts, 1):
            where = f" (part {n}: {part.manifest.package or part.sha256[:12]})"
            for index in indexes:
                index.match_features(part, hits, where)
    if content is not None:
        for index in ruleset.content_indexes:
            index.match_content(features, content, hits, first_hit=first_hit)
    return _matches(ruleset, hits)


def match_yara(content: AppContent, ruleset: Ruleset, *, first_hit: bool = False) -> list[Match]:
    """``match`` for a ruleset of YARA records only (``Ruleset.yara_only``), from bytes whose
    ``facts`` are known (a unit pack): no features needed. ``first_hit`` as in ``match``."""
    if content.facts is None:
        raise ValueError("match_yara needs content.facts")
    hits = Hits()
    for index in ruleset.content_indexes:
        index.match_content(None, content, hits, first_hit=first_hit)
    return _matches(ruleset, hits)


class FactsScanner:
    """``match_facts`` for many apps in a row, reusing one yara-x scanner (a hunt's loop)."""

    def __init__(self, ruleset: Ruleset) -> None:
        if not ruleset.yara_facts_only:
            raise ValueError("match_facts needs a ruleset of YARA records that read no bytes")
        assert ruleset.yara_rules is not None
        self.ruleset = ruleset
        self.index = ruleset.yara_index
        self.scanner = yara_x.Scanner(ruleset.yara_rules)
        self.scanner.set_timeout(YARA_SCAN_TIMEOUT_SECONDS)

    def match(self, facts: dict[str, Any]) -> list[Match]:
        """The records ``facts`` (``android_globals``, as unit packs and features keep them)
        matches: one evaluation over no bytes at all, the same answer ``match`` gives over
        the file, its manifest and every DEX."""
        hits = Hits()
        self.index.match_facts(self.scanner, facts, hits)
        return _matches(self.ruleset, hits)


def match_facts(facts: dict[str, Any], ruleset: Ruleset) -> list[Match]:
    """``match`` for a ruleset whose YARA records read no bytes (``Ruleset.yara_facts_only``):
    from the app's stored facts alone, no file read. Use ``FactsScanner`` for many apps."""
    return FactsScanner(ruleset).match(facts)


def _matches(ruleset: Ruleset, hits: Hits) -> list[Match]:
    matches = []
    for index, evidence in hits.evidence.items():
        record = ruleset.records[index]
        matches.append(
            Match(
                signature_id=record.id,
                revision=record.revision,
                name=record.name,
                kind=record.kind,
                severity=record.severity,
                scoring=not record.noisy,
                evidence=tuple(evidence),
            )
        )
    return matches


# --------------------------------------------------------------------------------------------
# verdict


def record_weight(record: RuleRecord) -> float:
    """The weight (0-1) a scoring match of ``record`` adds: its severity's, scaled by its
    kind's ``weight_factor`` (a behaviour's score; the rule is in the module docstring)."""
    weight = SEVERITY_WEIGHT.get(record.severity, 0) / 100
    kind = REGISTRY.get(record.kind)
    if kind is not None and kind.scales_weight:
        weight *= kind.weight_factor(record.body)
    return weight


def verdict_of(weighted: Iterable[tuple[Severity, float]]) -> tuple[Verdict, int]:
    """(verdict, score 0-100) from the (severity, weight) of each scoring match: how
    ``verdict`` decides, for callers that keep matches as rows (scans' current verdicts)."""
    severities: set[Severity] = set()
    remaining = 1.0
    for severity, weight in weighted:
        severities.add(severity)
        remaining *= 1 - weight
    score = min(100, builtins.round(100 * (1 - remaining)))
    if "malicious" in severities:
        return "malicious", score
    if severities & {"suspicious", "riskware"}:
        return "suspicious", score
    return "clean", score


def verdict(matches: Iterable[Match], ruleset: Ruleset | None = None) -> tuple[Verdict, int]:
    """(verdict, score 0-100) for a list of matches; the rule is in the module docstring.

    ``Match`` carries no score of its own, so behaviour scores (any kind that
    ``scales_weight``) are looked up in ``ruleset`` when it is given; without it such a match
    weighs as its severity says.
    """
    scaled = ruleset.weighted if ruleset is not None else {}

    def weighted() -> Iterable[tuple[Severity, float]]:
        for m in matches:
            if not m.scoring:
                continue
            position = scaled.get((m.signature_id, m.revision))
            if ruleset is not None and position is not None:
                yield m.severity, record_weight(ruleset.records[position])
            else:
                yield m.severity, SEVERITY_WEIGHT.get(m.severity, 0) / 100

    return verdict_of(weighted())


__all__ = [
    "MAX_EVIDENCE_PER_MATCH",
    "SEVERITY_WEIGHT",
    "YARA_SCAN_TIMEOUT_SECONDS",
    "CompileProblem",
    "FactsScanner",
    "Ruleset",
    "android_globals",
    "compile",
    "compile_ruleset",
    "match",
    "match_facts",
    "match_yara",
    "reads_bytes",
    "reads_globals",
    "record_weight",
    "verdict",
    "verdict_of",
]
