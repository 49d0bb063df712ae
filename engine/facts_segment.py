"""An inverted index of the ``androguard`` facts of a block of apps (a *segment*), and Koodous
facts rules answered over it without reading a row per app.

A segment holds, for the apps of one block of sample ids, per fact: its distinct values (each
once, however many apps hold it) and, per value, the apps holding it (their positions in the
block); per integer fact, the apps holding each number. ``segment_encode`` makes one from the
apps' facts (the compact form a row keeps, ``engine.facts_summary``), ``Segment.decode`` reads
one back: a few contiguous arrays and one text per fact, so decoding costs next to nothing per
app.

``segment_match`` answers a ``FactsBatch`` over a segment:

- per fact, its values are one text, a newline before and after each; one yara-x scan of that
  text (lower-cased) finds every pattern's literal run (``engine.facts_regex.literal_atom``)
  and every string argument (``\\n<string>\\n``: case-insensitive equality); only the values a
  run was found in are tried with the pattern;
- a pattern with no literal run searches the text from value to value (``_searched``: an
  unanchored pattern's match inside a value is a match of the text at the same offset);
  the predicates ``FactsBatch`` leaves to yara-x are answered by yara-x on the values its
  own scan of the text points at (``_yara_candidates``), or on every value when one is a
  string or anchored; the values that are not plain ASCII on one line are answered one by
  one, as the batch answers them (``FactPreds.answer``);
- a predicate's apps are the union of its values' postings, as a bitset; the rules are their
  expressions over those bitsets (``engine.facts_eval``), as in ``FactsBatch.match``.

So a value many apps share (a permission, a filter) is answered once per segment and a value
no predicate reads costs its share of one C scan. Same matches and evidence as
``FactsBatch.match`` (``engine/tests/test_facts_segment.py`` compares them).
"""

from __future__ import annotations

import bisect
import json
import re
import struct
import sys
import zlib
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import yara_x

from engine import ENGINE_VERSION, androguard
from engine.facts_batch import (
    LIST_FACTS,
    MAX_MATCHES,
    FactPreds,
    FactsBatch,
    bitset,
    literal_scanner,
    set_bits,
)
from engine.facts_summary import FACTS_FORMAT
from engine.features import Match

# sample ids per segment: a segment covers ids [block * SEGMENT_IDS, (block + 1) * SEGMENT_IDS)
SEGMENT_IDS = 4096
# the form's version: a segment of another is built again, never read
SEGMENT_FORMAT = 1
# what a stored segment must carry to be read: its form's, the facts form's and the engine's
SEGMENT_VERSION = f"{SEGMENT_FORMAT}:{FACTS_FORMAT}:{ENGINE_VERSION}"

_STRING_FACTS = (
    "package_name",
    "app_name",
    "displayed_version",
    "main_activity",
    *LIST_FACTS,
)
_INT_FACTS = tuple(androguard.INTEGERS)
_HEADER = struct.Struct("<I")


class _Refused(ValueError):
    """A stored segment that cannot be read as it is."""


@dataclass
class _Column:
    text: bytes  # b"\n" + plain values joined by b"\n" + b"\n" (ASCII, no newline)
    starts: array[int]  # offset of each plain value in ``text``, then len(text) + 1
    odd: list[str]  # values that are not plain: answered one by one
    bounds: array[int]  # per value (plain first, then odd), its postings' start, then the end
    postings: array[int]  # positions in the block

    def plain(self, k: int) -> bytes:
        return self.text[self.starts[k] : self.starts[k + 1] - 1]

    def holders(self, k: int) -> array[int]:
        return self.postings[self.bounds[k] : self.bounds[k + 1]]


@dataclass
class Segment:
    block: int
    positions: array[int]  # the apps it holds, as positions in the block (id - base)
    columns: dict[str, _Column]
    ints: dict[str, dict[int, array[int]]]
    # ids that were looked at when it was built but had no facts to read (their samples are
    # matched one by one): not a reason to build it again
    skipped: list[int]

    @property
    def base(self) -> int:
        return self.block * SEGMENT_IDS

    def ids(self) -> list[int]:
        base = self.base
        return [base + p for p in self.positions]

    @classmethod
    def decode(cls, data: bytes) -> Segment:
        """The segment ``segment_encode`` made; ValueError for one of another format, or
        damaged (to be built again)."""
        try:
            return cls._decode(data)
        except _Refused:
            raise
        except (zlib.error, struct.error, KeyError, TypeError, IndexError, ValueError) as exc:
            raise _Refused(f"a damaged segment: {exc}") from exc

    @classmethod
    def _decode(cls, data: bytes) -> Segment:
        raw = zlib.decompress(data)
        (size,) = _HEADER.unpack_from(raw)
        head = json.loads(raw[_HEADER.size : _HEADER.size + size])
        if head.get("format") != SEGMENT_FORMAT:
            raise _Refused("a segment of another format")
        at = _HEADER.size + size

        def take(n: int) -> bytes:
            nonlocal at
            chunk = raw[at : at + n]
            at += n
            return chunk

        swap = head["order"] != sys.byteorder  # written by a machine of the other order

        def ints(code: str, n: int) -> array[int]:
            out = array(code)
            out.frombytes(take(n * out.itemsize))
            if swap:
                out.byteswap()
            return out

        positions = ints("H", head["apps"])
        columns: dict[str, _Column] = {}
        for fact, (text_len, plain, odd, posting_count) in head["columns"].items():
            text = take(text_len)
            starts = ints("I", plain + 1)
            bounds = ints("I", plain + len(odd) + 1)
            columns[fact] = _Column(text, starts, odd, bounds, ints("H", posting_count))
        numbers: dict[str, dict[int, array[int]]] = {}
        for fact, values in head["ints"].items():
            numbers[fact] = {int(v): ints("H", n) for v, n in values}
        if at != len(raw):
            raise _Refused("a damaged segment: its sections do not add up")
        base = head["block"] * SEGMENT_IDS
        skipped = [base + p for p in head["skipped"]]
        return cls(head["block"], positions, columns, numbers, skipped)


def block_of(sample_id: int) -> int:
    return sample_id // SEGMENT_IDS


def positions_mask(positions: list[int]) -> int:
    """The bitset of these positions in a block (``segment_match``'s ``everyone``)."""
    return bitset(positions, SEGMENT_IDS)


def _plain(value: str) -> bool:
    return value.isascii() and "\n" not in value


def segment_encode(
    block: int,
    ids: Sequence[int],
    facts: Sequence[dict[str, Any]],
    skipped: Sequence[int] = (),
) -> bytes:
    """The segment of the apps ``ids`` (ascending, all in ``block``) with these facts (each a
    compact or full ``androguard`` facts dict: a missing entry reads as its default);
    ``skipped``: the block's ids that had no facts to read."""
    base = block * SEGMENT_IDS
    if any(not 0 <= pk - base < SEGMENT_IDS for pk in (*ids, *skipped)):
        raise ValueError("an id outside the segment's block")
    positions = array("H", (pk - base for pk in ids))
    sections: list[bytes] = [positions.tobytes()]
    columns: dict[str, list[Any]] = {}
    for fact in _STRING_FACTS:
        holders = _holders(fact, positions, facts)
        if not holders:
            continue
        plain = [v for v in holders if _plain(v)]
        odd = [v for v in holders if not _plain(v)]
        text = b"\n" + b"".join(v.encode("ascii") + b"\n" for v in plain)
        starts = array("I")
        at = 1
        for v in plain:
            starts.append(at)
            at += len(v) + 1
        starts.append(at)
        bounds = array("I", [0])
        postings = array("H")
        for v in (*plain, *odd):
            postings.extend(holders[v])
            bounds.append(len(postings))
        sections += [text, starts.tobytes(), bounds.tobytes(), postings.tobytes()]
        columns[fact] = [len(text), len(plain), odd, len(postings)]
    numbers: dict[str, list[list[int]]] = {}
    for fact in _INT_FACTS:
        by_value: dict[int, array[int]] = {}
        for position, app in zip(positions, facts, strict=True):
            by_value.setdefault(int(app.get(fact) or 0), array("H")).append(position)
        numbers[fact] = [[v, len(p)] for v, p in by_value.items()]
        sections += [p.tobytes() for p in by_value.values()]
    head = json.dumps(
        {
            "format": SEGMENT_FORMAT,
            "order": sys.byteorder,
            "block": block,
            "apps": len(positions),
            "skipped": [pk - base for pk in skipped],
            "columns": columns,
            "ints": numbers,
        }
    ).encode()
    return zlib.compress(_HEADER.pack(len(head)) + head + b"".join(sections), 1)


def _holders(
    fact: str, positions: Sequence[int], facts: Sequence[dict[str, Any]]
) -> dict[str, list[int]]:
    """{value: the positions of the apps holding it}, read as ``FactsBatch.match`` reads the
    fact (a list up to its count, empty values skipped)."""
    count_name = LIST_FACTS.get(fact)
    out: dict[str, list[int]] = {}
    for position, app in zip(positions, facts, strict=True):
        if count_name is None:
            value = app.get(fact)
            if value:
                out.setdefault(value, []).append(position)
            continue
        values = app.get(fact)
        if values:
            for value in dict.fromkeys(values[: app.get(count_name, 0)]):
                if value:
                    out.setdefault(value, []).append(position)
    return out


class SegmentPlan:
    """A ``FactsBatch`` made ready for segments: per fact, the yara-x scanners of its column's
    text (built once; keep the plan as long as the batch)."""

    def __init__(self, batch: FactsBatch) -> None:
        self.batch = batch
        self.facts = {fact: _FactPlan(entry) for fact, entry in batch.by_fact.items()}


class _FactPlan:
    def __init__(self, entry: FactPreds) -> None:
        self.entry = entry
        # the literal runs (rules a<n>), then each string argument between newlines
        equals = [e for e in entry.equals if b"\n" not in e]  # no plain value holds a newline
        self.equal_preds = [entry.equals[e] for e in equals]
        runs = [*entry.atoms, *(b"\n" + e + b"\n" for e in equals)]
        self.runs = literal_scanner(runs) if runs else None
        # the predicates left to yara-x: every plain value is tried when one of them is a
        # string or an anchored pattern, else only those yara-x finds one of their patterns in
        tokens = [pred.token for pid, pred in entry.preds if pid in entry.by_yara]
        every = any(not t.startswith("/") or not _unanchored(t) for t in tokens)
        self.yara_patterns = None if every or not tokens else _pattern_scanner(tokens)
        self.yara_every = bool(tokens) and self.yara_patterns is None


def _pattern_scanner(tokens: list[str]) -> yara_x.Scanner | None:
    """A rule ``y<n>`` per pattern, as a string of the rule; None if yara-x refuses one as a
    string (one it can run in ``matches`` only): then every value is tried."""
    compiler = yara_x.Compiler(relaxed_re_syntax=True)
    rules = [f"rule y{n} {{ strings: $a = {t} condition: $a }}\n" for n, t in enumerate(tokens)]
    try:
        compiler.add_source("".join(rules))
    except yara_x.CompileError:
        return None
    scanner = yara_x.Scanner(compiler.build())
    scanner.max_matches_per_pattern(MAX_MATCHES)
    return scanner


def segment_match(plan: SegmentPlan, segment: Segment, everyone: int) -> dict[int, list[Match]]:
    """The batched records' matches on the segment's apps in ``everyone`` (a bitset of
    positions in the block), by position; apps that match nothing are left out."""
    batch = plan.batch
    width = SEGMENT_IDS
    masks = [0] * len(batch.preds)
    for fact, fact_plan in plan.facts.items():
        column = segment.columns.get(fact)
        if column is not None:
            _column_masks(fact_plan, column, masks, width)
    ints: dict[str, dict[int, int]] = {}
    for name in batch.integers:
        held = segment.ints.get(name, {})
        ints[name] = {value: bitset(list(p), width) for value, p in held.items()}
    out: dict[int, list[Match]] = {}
    for match, mask in batch.rule_hits(masks, ints, everyone):
        for position in set_bits(mask):
            out.setdefault(position, []).append(match)
    return out


def _column_masks(plan: _FactPlan, column: _Column, masks: list[int], width: int) -> None:
    """OR into ``masks``, per predicate on the column's fact, the apps it holds for."""
    entry = plan.entry
    held: dict[int, set[int]] = {}  # predicate -> value indexes
    plain = len(column.starts) - 1
    if plain:
        for pid, values in _plain_answers(plan, column).items():
            held.setdefault(pid, set()).update(values)
    for j, value in enumerate(column.odd):
        answers = entry.answers.get(value)
        if answers is None:
            answers = entry.answers[value] = entry.answer(value)
        for pid in answers:
            held.setdefault(pid, set()).add(plain + j)
    for pid, ks in held.items():
        positions: list[int] = []
        for k in ks:
            positions.extend(column.holders(k))
        masks[pid] |= bitset(positions, width)


def _plain_answers(plan: _FactPlan, column: _Column) -> dict[int, list[int]]:
    """{predicate: the plain values it holds for}."""
    entry = plan.entry
    plain = len(column.starts) - 1
    found = _scan(plan, column)
    if found is None:  # a run matched too often to count: every value one by one
        found = {}
        for k in range(plain):
            for pid in entry.answer(column.plain(k).decode("ascii")):
                found.setdefault(pid, []).append(k)
        return found
    for pid, pattern in entry.always:
        found.setdefault(pid, []).extend(_searched(pattern, column))
    if entry.by_yara:
        for k in _yara_candidates(plan, column):
            for pid in entry.answer_left_to_yara(column.plain(k).decode("ascii")):
                found.setdefault(pid, []).append(k)
    return found


def _unanchored(source: str) -> bool:
    """Whether a pattern's matches inside one value are matches of the column's text at the same
    offsets: no anchor, no inline group (a conservative reading of its source)."""
    rest = source.replace("[^", "[")
    return not any(s in rest for s in ("^", "$", "\\A", "\\Z", "(?"))


def _searched(pattern: re.Pattern[bytes], column: _Column) -> list[int]:
    """The plain values ``pattern`` finds a match in. Unanchored, a match inside a value is a
    match of the text at the same offset: so the leftmost match of the text from a value on
    tells that no value before its own holds one, and only that value is tried alone; the
    search goes on from the next value. Anchored, each value is tried alone."""
    starts, text = column.starts, column.text
    plain = len(starts) - 1
    if not _unanchored(pattern.pattern.decode("latin-1")):
        return [k for k in range(plain) if pattern.search(column.plain(k)) is not None]
    out: list[int] = []
    at = 1
    while at < len(text):
        m = pattern.search(text, at)
        if m is None:
            break
        k = bisect.bisect_right(starts, m.start()) - 1
        if k >= plain:
            break
        end = starts[k + 1] - 1
        if m.end() <= end or pattern.search(text[starts[k] : end]) is not None:
            out.append(k)
        at = starts[k + 1]
    return out


def _yara_candidates(plan: _FactPlan, column: _Column) -> Iterable[int]:
    """The plain values the predicates left to yara-x may hold for: all of them, or those
    yara-x finds a match of one of their patterns in (scanning the column's text: a match
    inside a value is one of the text, the patterns being unanchored)."""
    plain = len(column.starts) - 1
    if plan.yara_every or plan.yara_patterns is None:
        return range(plain)
    results = plan.yara_patterns.scan(column.text)
    out: set[int] = set()
    for rule in results.matching_rules:
        for found_pattern in rule.patterns:
            if len(found_pattern.matches) >= MAX_MATCHES:
                return range(plain)
            for found in found_pattern.matches:
                out.add(bisect.bisect_right(column.starts, found.offset) - 1)
    return sorted(k for k in out if k < plain)


def _scan(plan: _FactPlan, column: _Column) -> dict[int, list[int]] | None:
    """{predicate: the plain values it holds for} for the string and literal-run predicates,
    from one scan of the column's lower-cased text; None when a run matched too often."""
    if plan.runs is None:
        return {}
    entry = plan.entry
    text = column.text
    results = plan.runs.scan(text.lower())
    starts = column.starts
    out: dict[int, list[int]] = {}
    n_atoms = len(entry.atoms)
    for rule in results.matching_rules:
        number = int(rule.identifier[1:])
        for pattern in rule.patterns:
            if len(pattern.matches) >= MAX_MATCHES:
                return None
            if number >= n_atoms:  # an equality: the match starts at the newline before
                pids = plan.equal_preds[number - n_atoms]
                for found in pattern.matches:
                    k = bisect.bisect_left(starts, found.offset + 1)
                    for pid in pids:
                        out.setdefault(pid, []).append(k)
                continue
            tried: set[int] = set()
            for found in pattern.matches:
                k = bisect.bisect_right(starts, found.offset) - 1
                if k in tried:
                    continue
                tried.add(k)
                data = text[starts[k] : starts[k + 1] - 1]
                for pid, regex in entry.by_atom[entry.atoms[number]]:
                    if regex.search(data) is not None:
                        out.setdefault(pid, []).append(k)
    return out
