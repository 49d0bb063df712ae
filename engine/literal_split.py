"""A regex-heavy YARA rule hunted at the speed of its literals, with yara-x's own answers.

yara-x finds patterns through their atoms. It expands a regex such as ``/;.Sk/`` into 255
four-byte atoms (";", any byte but a newline, "Sk"), and a rule set of more than 64 atoms
leaves yara-x's SIMD searcher (Teddy) for a plain Aho-Corasick automaton: over DEX that
single pattern makes the whole rule ten times slower than its literals
(docs/retrohunts.md, "The regex-heavy hunt: measured").

For a rule whose answer needs only *where each pattern first matches*, ``plan`` builds two
small rule sets instead, from the rule's own text, compiled as the ruleset compiles:

- the *literal* rule: the rule's text strings verbatim, plus for each regex the longest
  run of known bytes every match of it contains (for ``/;.Sk/``: "Sk", two bytes after the
  match's start); few atoms, so Teddy;
- one *verifier* per regex: that regex alone, run on the few bytes a match would occupy
  around each occurrence of its literal.

The shape (anything else gets no plan and is matched the usual way):

- one rule, not private or global, no imports;
- strings: text strings or regexes, without modifiers or regex flags; a regex is a fixed
  sequence of single bytes (plain characters, ``.``, a backslash before punctuation), with
  a run of at least two known bytes;
- condition: ``any of them``, ``any of (...)``, ``1 of ...`` or ``$a``, joined by ``or``,
  naming every string between them;
- and worth it: a regex without a run of SLOW_RUN known bytes, which yara-x would expand.
  A regex's literal found too often in a buffer (``max_windows``) makes that app go the
  usual way, having lost only the literal rule's scan.

Then the rule matches a buffer exactly when one of its strings does, and the first match of
each string is what the hunt's evidence shows: a text string's from the literal rule (the
same pattern, the same yara-x), a regex's at the first occurrence of its literal whose window
the verifier accepts (a match of a fixed-length regex without anchors lies entirely in it).
Only hunts use it (``engine.ruleset.match(..., first_hit=True)`` with one YARA record);
scans, which keep every part's evidence, scan the whole rule.
"""

from __future__ import annotations

import functools
import os
import string
from dataclasses import dataclass

import yara_x

from engine.kinds import _yara_source
from engine.kinds import yara as yara_kind

__all__ = ["SplitPlan", "plan"]

# yara-x's DESIRED_ATOM_SIZE: a regex with a run of plain bytes this long gets it as its atom
# and stays fast; one without is expanded over its wildcards into many atoms
SLOW_RUN = 4
_PLAIN = frozenset(string.ascii_letters + string.digits + " _;:,<>=!@#%&'~-")
_ESCAPABLE = frozenset(".^$|?*+()[]{}/\\-")
_KEY = "$split_literal_"


@dataclass(frozen=True, slots=True)
class _Regex:
    identifier: str
    length: int  # bytes in every match
    offset: int  # where the literal starts in every match
    verifier: str  # a rule of this regex alone


@dataclass(frozen=True, slots=True)
class SplitPlan:
    """How to hunt one rule through its literals (``plan``); plain text, so it pickles."""

    identifiers: tuple[str, ...]  # the rule's strings, in the order yara-x lists them
    literal_rule: str
    regexes: tuple[_Regex, ...]

    def first_matches(
        self, data: bytes | None, path: str, timeout: int
    ) -> list[tuple[str, int]] | None:
        """(identifier, offset of its first match) of each string that matches ``data``
        (``None``: the file at ``path``), in declaration order; empty when the rule does not
        match; ``None`` when the regexes' literals occur more often than ``max_windows``
        allows for this size (then scan the usual way)."""
        scanner = yara_x.Scanner(_compiled(self.literal_rule))
        scanner.set_timeout(timeout)
        results = scanner.scan(data) if data is not None else scanner.scan_file(path)
        first: dict[str, int] = {}
        regexes = {f"{_KEY}{n}": regex for n, regex in enumerate(self.regexes)}
        candidates: list[tuple[_Regex, list[int]]] = []
        for rule in results.matching_rules:
            for pattern in rule.patterns:
                if not pattern.matches:
                    continue
                regex = regexes.get(pattern.identifier)
                if regex is None:
                    first[pattern.identifier] = pattern.matches[0].offset
                else:
                    candidates.append((regex, sorted(m.offset for m in pattern.matches)))
        size = len(data) if data is not None else os.path.getsize(path)
        if sum(len(offsets) for _, offsets in candidates) > max_windows(size):
            return None
        for regex, offsets in candidates:
            start = _first_verified(regex, offsets, data, path, timeout)
            if start is not None:
                first[regex.identifier] = start
        return [(i, first[i]) for i in self.identifiers if i in first]


def max_windows(size: int) -> int:
    """Windows worth verifying in a buffer of ``size`` bytes: one costs a few µs, about what
    yara-x's slow path spends on 4 KB; half that, so the plan never loses much."""
    return 16 + size // 8192


def _first_verified(
    regex: _Regex, offsets: list[int], data: bytes | None, path: str, timeout: int
) -> int | None:
    scanner = yara_x.Scanner(_compiled(regex.verifier))
    scanner.set_timeout(timeout)
    fh = open(path, "rb") if data is None else None  # noqa: SIM115 - closed below
    try:
        for found in offsets:
            start = found - regex.offset
            if start < 0:
                continue
            if fh is None:
                assert data is not None
                window = data[start : start + regex.length]
            else:
                fh.seek(start)
                window = fh.read(regex.length)
            if len(window) == regex.length and scanner.scan(window).matching_rules:
                return start
        return None
    finally:
        if fh is not None:
            fh.close()


@functools.lru_cache(maxsize=64)
def _compiled(source: str) -> yara_x.Rules:
    compiler = yara_kind.new_compiler()
    compiler.add_source(source)
    return compiler.build()


# each early None is one shape the split does not apply to
def plan(source: str, *, only_if_slow: bool = True) -> SplitPlan | None:  # noqa: C901, PLR0911, PLR0912
    """The plan for a compiled YARA source of the shape in the module docstring, with a
    regex yara-x would expand (no run of SLOW_RUN plain bytes; ``only_if_slow=False``: any
    regex, for tests); otherwise None (yara-x is fast on the rule as it is)."""
    parsed = _yara_source.parse(source)
    if parsed.imports or parsed.includes or parsed.problems or len(parsed.rules) != 1:
        return None
    rule = parsed.rules[0]
    if rule.private or rule.is_global:
        return None
    tokens = _yara_source.tokenize(rule.text)
    texts = [t.text for t in tokens]
    try:
        s = next(i for i in range(len(texts) - 1) if texts[i : i + 2] == ["strings", ":"])
        c = next(i for i in range(len(texts) - 1) if texts[i : i + 2] == ["condition", ":"])
    except StopIteration:
        return None
    if texts[-1] != "}" or not s < c:
        return None
    strings_ = tokens[s + 2 : c]
    if len(strings_) % 3:
        return None
    identifiers: list[str] = []
    literals: list[str] = []
    regexes: list[_Regex] = []
    required: list[str] = []
    slow = not only_if_slow
    for ident, equals, value in zip(strings_[0::3], strings_[1::3], strings_[2::3], strict=True):
        if ident.kind != "var" or not ident.text.startswith("$") or equals.text != "=":
            return None
        if ident.text.startswith(_KEY) or ident.text.endswith("*"):
            return None
        identifiers.append(ident.text)
        if value.kind == "string":
            literals.append(f"{ident.text} = {value.text}")
        elif value.kind == "regex":
            shape = _regex_shape(value.text)
            if shape is None:
                return None
            length, offset, literal = shape
            slow = slow or len(literal) < SLOW_RUN
            verifier = f"rule split_verify {{ strings: $r = {value.text} condition: $r }}"
            regexes.append(_Regex(ident.text, length, offset, verifier))
            required.append(literal)
        else:
            return None
    if not regexes or not slow or len(set(identifiers)) != len(identifiers):
        return None
    if _condition_names(tokens[c + 2 : -1], identifiers) != set(identifiers):
        return None
    keyed = [f'{_KEY}{n} = "{_quoted(literal)}"' for n, literal in enumerate(required)]
    literal_rule = (
        f"rule split_literals {{ strings: {' '.join(literals + keyed)} condition: any of them }}"
    )
    result = SplitPlan(tuple(identifiers), literal_rule, tuple(regexes))
    try:  # what the ruleset compiled must compile here too; if not, no plan
        for text in (literal_rule, *(r.verifier for r in regexes)):
            _compiled(text)
    except yara_x.CompileError:
        return None
    return result


def _quoted(literal: str) -> str:
    """A literal's bytes as the inside of a YARA text string (plain, or escaped punctuation:
    only a backslash needs escaping again)."""
    return literal.replace("\\", "\\\\")


def _regex_shape(token: str) -> tuple[int, int, str] | None:
    """(length, offset of the literal, literal) of a regex token ``/.../`` made of single
    bytes only, whose longest run of known bytes has at least two; else None."""
    if len(token) < 3 or not token.startswith("/") or not token.endswith("/"):
        return None  # flags (i, s) change what matches: not handled
    body = token[1:-1]
    plain: list[str | None] = []  # one entry per byte of a match: the character, or None
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            if i + 1 >= len(body) or body[i + 1] not in _ESCAPABLE:
                return None
            plain.append(body[i + 1])  # punctuation escaped is that byte
            i += 2
            continue
        if ch == ".":
            plain.append(None)
        elif ch in _PLAIN:
            plain.append(ch)
        else:
            return None
        i += 1
    best_start, best_len, run_start = 0, 0, 0
    for n, item in enumerate([*plain, None]):
        if item is None:
            if n - run_start > best_len:
                best_start, best_len = run_start, n - run_start
            run_start = n + 1
    if best_len < 2:
        return None
    literal = "".join(c for c in plain[best_start : best_start + best_len] if c is not None)
    return len(plain), best_start, literal


# a small recursive-descent parser of the condition: one branch per term form
def _condition_names(  # noqa: PLR0911, PLR0912
    tokens: list[_yara_source.Token], identifiers: list[str]
) -> set[str] | None:
    """The strings a condition of the form ``term or term ...`` names, where a term is
    ``$a``, ``any of them``, ``any of ($a, $b*)`` or ``1 of ...``; None for any other form."""
    names: set[str] = set()
    i, n = 0, len(tokens)
    while True:
        if i >= n:
            return None
        t = tokens[i]
        if t.kind == "var" and t.text.startswith("$") and not t.text.endswith("*"):
            if t.text not in identifiers:
                return None
            names.add(t.text)
            i += 1
        elif t.text in ("any", "1") and i + 2 < n and tokens[i + 1].text == "of":
            if tokens[i + 2].text == "them":
                names.update(identifiers)
                i += 3
            elif tokens[i + 2].text == "(":
                i += 3
                while True:
                    if i >= n or tokens[i].kind != "var" or not tokens[i].text.startswith("$"):
                        return None
                    text = tokens[i].text
                    chosen = (
                        [x for x in identifiers if x.startswith(text[:-1])]
                        if text.endswith("*")
                        else [x for x in identifiers if x == text]
                    )
                    if not chosen:
                        return None
                    names.update(chosen)
                    i += 1
                    if i < n and tokens[i].text == ",":
                        i += 1
                        continue
                    if i < n and tokens[i].text == ")":
                        i += 1
                        break
                    return None
            else:
                return None
        else:
            return None
        if i == n:
            return names
        if tokens[i].text != "or":
            return None
        i += 1
