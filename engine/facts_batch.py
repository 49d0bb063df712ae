"""Koodous facts rules over a whole chunk of apps at once, not one yara-x scan per app.

A rewritten Koodous rule that reads no bytes (``engine.ruleset.reads_bytes``) is a boolean
expression over ``androguard`` calls (``engine.androguard``). yara-x answers it per app
(``engine.ruleset.FactsScanner``): a scan of every rule, each list call a loop over the app's
values, ~1-2 ms per app for the corpus' 221 such rules. Here the same rules are answered for a
batch of apps together, in four modules:

- ``engine.facts_parse``: each rule's condition, as written, is parsed into calls, integer
  comparisons, ``and``/``or``/``not``, parentheses, ``true``/``false``. Anything else leaves
  the record to yara-x (``FactsBatch.rest``);
- here: a call is a predicate over one fact; predicates are shared across rules and answered
  once per distinct value of their fact, and what a value answers is remembered across
  batches (permissions, filters, library classes and URLs repeat from app to app);
- ``engine.facts_eval``: per predicate the apps it holds for form a bitset (a Python int),
  and each rule is its expression over those bitsets;
- ``engine.facts_summary``: the facts read from a stored summary dict (``summary_facts``,
  importable from here too).

The semantics are the rewrite's, i.e. yara-x's on the rewritten condition (``androguard.c``'s,
see ``engine.androguard``): a regular expression searches anywhere in a non-empty value, a
string compares case-insensitively for equality with a non-empty value, the
``certificate.sha1`` argument loses its colons, a missing value is no value (false) and a
missing integer 0. For an ASCII value, patterns run on Python's ``re`` over bytes (as yara-x
does: ``.`` is one byte, ``\\w``/``\\d``/``\\s`` and ``/i`` are ASCII), translated only from
a conservative subset of yara-x's syntax (``engine.facts_regex.python_regex``), and strings
compare in ASCII. Anything else (a value with other characters, a pattern outside the subset,
a non-ASCII string argument) is answered by yara-x itself on the test the rewrite compiles for
one value (``_yara_tests``): yara-x folds case beyond ASCII, bytes cannot. ``engine/tests/
test_facts_batch.py`` checks every corpus Koodous facts rule both ways.

Speed: a chunk's new values of a fact are answered together: one yara-x scan over all of them
finds each pattern's longest literal run (``engine.facts_regex.literal_atom``), and only the
patterns whose run occurs in a value are tried on it (``FactPreds.resolve``).
"""

from __future__ import annotations

import bisect
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import yara_x

from engine import androguard
from engine.androguard import _COUNT, _LISTS
from engine.facts_eval import evaluate, int_terms
from engine.facts_parse import Expr, Pred, parse_rule
from engine.facts_regex import literal_atom, python_regex

# the facts of a stored summary, importable from here as before the split
from engine.facts_summary import summary_facts as summary_facts
from engine.features import Match, RuleRecord

# cached answers per distinct value (per batch plan); cleared when it grows past this
VALUE_CACHE_MAX = 400_000

# fact -> what the facts dict calls its count (None: a single string value); the rewriter's own
# tables (engine.androguard), shared so that the batch reads each list as the rewrite does
LIST_FACTS = {name: _COUNT[name] for name in _LISTS}


class FactPreds:
    """The predicates on one fact, and what each distinct value answers.

    An ASCII value is answered in Python: a dict for strings, a trigram prefilter then ``re``
    for patterns. A value with other characters, and the predicates Python does not answer
    exactly (a pattern outside ``python_regex``'s subset, a string with non-ASCII
    characters), are answered by yara-x itself on the very test the rewrite compiles
    (``v matches /re/``, ``v != "" and v iequals "s"``): yara-x folds case beyond ASCII
    (``iequals``, and ``/k/i`` matches the Kelvin sign), which bytes cannot tell.
    """

    def __init__(self, fact: str, preds: list[tuple[int, Pred]]) -> None:
        self.fact = fact
        self.equals: dict[bytes, list[int]] = {}
        self.trigrams: dict[bytes, list[tuple[bytes, int, re.Pattern[bytes]]]] = {}
        self.always: list[tuple[int, re.Pattern[bytes]]] = []
        self.by_yara: set[int] = set()  # answered by yara-x even for ASCII values
        self.by_atom: dict[bytes, list[tuple[int, re.Pattern[bytes]]]] = {}
        self.answers: dict[str, tuple[int, ...]] = {}
        for pid, pred in preds:
            if pred.kind == "string":
                text = androguard.unquote(pred.token)
                if text.isascii() and "\\x" not in pred.token:
                    self.equals.setdefault(text.lower().encode("ascii"), []).append(pid)
                else:
                    self.by_yara.add(pid)
                continue
            pattern = python_regex(pred.token)
            if pattern is None:
                self.by_yara.add(pid)
                continue
            atom = literal_atom(pattern)
            if atom is None or b"\n" in atom:
                self.always.append((pid, pattern))
            else:
                self.trigrams.setdefault(atom[:3], []).append((atom, pid, pattern))
                self.by_atom.setdefault(atom, []).append((pid, pattern))
        self.atoms = list(self.by_atom)
        self._atom_scanner: yara_x.Scanner | None = None  # built when ``resolve`` first needs it
        self.preds = preds
        self._scanner: yara_x.Scanner | None = None  # built at the first non-ASCII value
        self.few = _yara_tests([(pid, p) for pid, p in preds if pid in self.by_yara])

    def answer(self, value: str) -> tuple[int, ...]:
        """The predicates ``value`` (non-empty) satisfies."""
        if not value.isascii():
            return tuple(sorted(self._yara(value)))
        data = value.encode("ascii")
        lowered = data.lower()
        hit: list[int] = list(self.equals.get(lowered, ()))
        if self.trigrams:
            seen: set[int] = set()
            trigrams = self.trigrams
            for k in range(len(lowered) - 2):
                found = trigrams.get(lowered[k : k + 3])
                if found is None:
                    continue
                for atom, pid, pattern in found:
                    if pid not in seen and atom in lowered:
                        seen.add(pid)
                        if pattern.search(data) is not None:
                            hit.append(pid)
        for pid, pattern in self.always:
            if pattern.search(data) is not None:
                hit.append(pid)
        if self.by_yara:
            hit.extend(self._yara(value, self.few))
        return tuple(sorted(set(hit)))

    def resolve(self, values: list[str]) -> None:
        """``answer`` for many new distinct values at once, into ``answers``: the patterns'
        literal runs are found by one yara-x scan over all the values (one after the other,
        a newline apart; no run holds a newline), then only the candidates are tried."""
        if not self.atoms or len(values) < 8:
            for value in values:
                self.answers[value] = self.answer(value)
            return
        texts: list[str] = []
        for value in values:
            if value.isascii():
                texts.append(value)
            else:
                self.answers[value] = tuple(sorted(self._yara(value)))
        datas = [t.encode("ascii") for t in texts]
        lowered = [d.lower() for d in datas]
        candidates = self._candidates(lowered)
        if candidates is None:
            for text in texts:  # the scan may have stopped counting: one by one
                self.answers[text] = self.answer(text)
            return
        equals, always, few = self.equals, self.always, self.by_yara
        for k, text in enumerate(texts):
            hit: list[int] = list(equals.get(lowered[k], ()))
            for atom in candidates.get(k, ()):
                for pid, regex in self.by_atom[self.atoms[atom]]:
                    if regex.search(datas[k]) is not None:
                        hit.append(pid)
            for pid, regex in always:
                if regex.search(datas[k]) is not None:
                    hit.append(pid)
            if few:
                hit.extend(self._yara(text, self.few))
            self.answers[text] = tuple(sorted(set(hit)))

    def _candidates(self, lowered: list[bytes]) -> dict[int, set[int]] | None:
        """{value index: the literal runs it contains}, by one scan of all the (lower-case)
        values a newline apart; None when a run matched too often to be counted."""
        if self._atom_scanner is None:
            self._atom_scanner = literal_scanner(self.atoms)
        starts: list[int] = []
        at = 0
        for data in lowered:
            starts.append(at)
            at += len(data) + 1
        results = self._atom_scanner.scan(b"\n".join(lowered))
        candidates: dict[int, set[int]] = {}
        for rule in results.matching_rules:
            atom = int(rule.identifier[1:])
            for pattern in rule.patterns:
                if len(pattern.matches) >= MAX_MATCHES:
                    return None
                for found in pattern.matches:
                    k = bisect.bisect_right(starts, found.offset) - 1
                    candidates.setdefault(k, set()).add(atom)
        return candidates

    def answer_left_to_yara(self, value: str) -> set[int]:
        """The predicates ``by_yara`` that ``value`` satisfies."""
        return self._yara(value, self.few)

    def _yara(self, value: str, scanner: yara_x.Scanner | None = None) -> set[int]:
        if scanner is None:
            if self._scanner is None:
                self._scanner = _yara_tests(self.preds)
            scanner = self._scanner
        scanner.set_global("v", value)
        return {int(rule.identifier[1:]) for rule in scanner.scan(b"").matching_rules}


MAX_MATCHES = 1_000_000


def literal_scanner(atoms: list[bytes]) -> yara_x.Scanner:
    """A rule ``a<n>`` per literal run, as exact bytes (one source: one compile)."""
    compiler = yara_x.Compiler()
    rules = []
    for n, atom in enumerate(atoms):
        hexed = " ".join(f"{b:02x}" for b in atom)
        rules.append(f"rule a{n} {{ strings: $a = {{ {hexed} }} condition: $a }}\n")
    compiler.add_source("".join(rules))
    scanner = yara_x.Scanner(compiler.build())
    scanner.max_matches_per_pattern(MAX_MATCHES)
    return scanner


def _yara_tests(preds: list[tuple[int, Pred]]) -> yara_x.Scanner:
    """One yara-x rule per predicate, ``p<id>``, over the global string ``v``: each the test
    ``engine.androguard`` writes for one value."""
    compiler = yara_x.Compiler(relaxed_re_syntax=True)
    compiler.define_global("v", "")
    rules = []
    for pid, pred in preds:
        if pred.kind == "regex":
            condition = f"v matches {pred.token}"
        else:
            condition = f'v != "" and v iequals {pred.token}'
        rules.append(f"rule p{pid} {{ condition: {condition} }}\n")
    compiler.add_source("".join(rules))  # each compiled in the rule it came from: no error
    return yara_x.Scanner(compiler.build())


@dataclass
class _BatchRule:
    index: int  # the record's index in the ruleset
    name: str  # the YARA rule's identifier
    expr: Expr


class FactsBatch:
    """The records of a facts-only ruleset (``Ruleset.yara_facts_only``) this module can answer,
    answered for many apps at once; ``rest`` are the record indexes left to yara-x."""

    def __init__(self, records: Sequence[RuleRecord], indexes: Iterable[int]) -> None:
        self.records = list(records)
        preds: dict[Pred, int] = {}
        self.rules: list[_BatchRule] = []
        self.rest: list[int] = []
        for index in sorted(indexes):
            parsed = parse_rule(self.records[index].body, preds)
            if parsed is None:
                self.rest.append(index)
            else:
                self.rules.append(_BatchRule(index, parsed[0], parsed[1]))
        self.preds = [p for p, _ in sorted(preds.items(), key=lambda kv: kv[1])]
        grouped: dict[str, list[tuple[int, Pred]]] = {}
        for pid, pred in enumerate(self.preds):
            grouped.setdefault(pred.fact, []).append((pid, pred))
        self.by_fact = {fact: FactPreds(fact, group) for fact, group in grouped.items()}
        self.integers = sorted({t[1] for r in self.rules for t in int_terms(r.expr)})

    def match(self, facts: Sequence[dict[str, Any] | None]) -> list[list[Match]]:
        """Per app (its ``android.androguard`` facts, None for unknown), the batched records
        it matches, in record order, with the evidence ``FactsScanner`` gives."""
        n = len(facts)
        everyone = (1 << n) - 1
        masks = [0] * len(self.preds)
        for fact, entry in self.by_fact.items():
            _fact_masks(fact, entry, facts, masks)
        ints: dict[str, dict[int, int]] = {}
        for name in self.integers:
            holders: defaultdict[int, list[int]] = defaultdict(list)
            for position, app in enumerate(facts):
                holders[(app or {}).get(name) or 0].append(position)
            ints[name] = {value: bitset(positions, n) for value, positions in holders.items()}
        out: list[list[Match]] = [[] for _ in range(n)]
        for match, mask in self.rule_hits(masks, ints, everyone):
            for position in set_bits(mask):
                out[position].append(match)
        return out

    def rule_hits(
        self, masks: list[int], ints: dict[str, dict[int, int]], everyone: int
    ) -> Iterator[tuple[Match, int]]:
        """Per batched rule that holds for some app of ``everyone``: its match (the evidence
        ``FactsScanner`` gives) and the bitset of those apps."""
        for rule in self.rules:
            mask = evaluate(rule.expr, masks, ints, everyone) & everyone
            if not mask:
                continue
            record = self.records[rule.index]
            match = Match(
                signature_id=record.id,
                revision=record.revision,
                name=record.name,
                kind=record.kind,
                severity=record.severity,
                scoring=not record.noisy,
                evidence=(f"yara: rule {rule.name} condition on the app's facts",),
            )
            yield match, mask


def set_bits(mask: int) -> Iterator[int]:
    """The positions of ``mask``'s set bits, lowest first (one pass over the digits, not one
    per hit)."""
    for position, bit in enumerate(bin(mask)[:1:-1]):
        if bit == "1":
            yield position


def _fact_masks(
    fact: str, entry: FactPreds, facts: Sequence[dict[str, Any] | None], masks: list[int]
) -> None:
    """Set in ``masks``, per predicate on ``fact``, the bits of the apps it holds for; the
    fact's values not answered before are answered together first. The apps holding each
    distinct value are gathered first, so a value many apps share (a permission, a filter)
    costs one pass over its predicates, and a value no predicate holds for costs nothing."""
    count_name = LIST_FACTS.get(fact)
    answers = entry.answers
    if len(answers) > VALUE_CACHE_MAX:
        answers.clear()
    holders: defaultdict[str, list[int]] = defaultdict(list)
    for position, app in enumerate(facts):
        if app is None:
            continue
        if count_name is None:
            value = app.get(fact)
            if value:
                holders[value].append(position)
            continue
        values = app.get(fact)
        if values:
            for value in values[: app.get(count_name, 0)]:
                if value:
                    holders[value].append(position)
    new = [value for value in holders if value not in answers]
    if new:
        entry.resolve(new)
    # per predicate, the positions of the apps it holds for, made a bitset once (OR-ing one
    # bit at a time into a bitset as wide as the batch costs the batch's width per bit)
    held: defaultdict[int, list[int]] = defaultdict(list)
    for value, positions in holders.items():
        for pid in answers[value]:
            held[pid] += positions
    n = len(facts)
    for pid, positions in held.items():
        masks[pid] |= bitset(positions, n)


def bitset(positions: list[int], n: int) -> int:
    """The bitset of ``positions`` (each below ``n``, any order, repeats allowed)."""
    raw = bytearray((n >> 3) + 1)
    for position in positions:
        raw[position >> 3] |= 1 << (position & 7)
    return int.from_bytes(raw, "little")
