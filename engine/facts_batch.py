"""Koodous facts rules over a whole chunk of apps at once, not one yara-x scan per app.

A rewritten Koodous rule that reads no bytes (``engine.ruleset.reads_bytes``) is a boolean
expression over ``androguard`` calls (``engine.androguard``). yara-x answers it per app
(``engine.ruleset.FactsScanner``): a scan of every rule, each list call a loop over the app's
values, ~1-2 ms per app for the corpus' 221 such rules. Here the same rules are answered for a
batch of apps together:

- each rule's condition, as written, is parsed (``_Parser``) into calls, integer comparisons,
  ``and``/``or``/``not``, parentheses, ``true``/``false``. Anything else (another rule's name,
  ``android.*`` globals, ``them``, arithmetic, a ``for``, several rules in one body, a
  ``global`` or ``private`` rule) leaves the record to yara-x (``FactsBatch.rest``);
- a call is a predicate over one fact (which the rewriter's own tables name); predicates are
  shared across rules and answered once per distinct value of their fact, and what a value
  answers is remembered across batches (permissions, filters, library classes and URLs repeat
  from app to app);
- per predicate the apps it holds for form a bitset (a Python int), and each rule is its
  expression over those bitsets.

The semantics are the rewrite's, i.e. yara-x's on the rewritten condition (``androguard.c``'s,
see ``engine.androguard``): a regular expression searches anywhere in a non-empty value, a
string compares case-insensitively for equality with a non-empty value, the
``certificate.sha1`` argument loses its colons, a missing value is no value (false) and a
missing integer 0. For an ASCII value, patterns run on Python's ``re`` over bytes (as yara-x
does: ``.`` is one byte, ``\\w``/``\\d``/``\\s`` and ``/i`` are ASCII), translated only from
a conservative subset of yara-x's syntax (``_python_regex``), and strings compare in ASCII.
Anything else (a value with other characters, a pattern outside the subset, a non-ASCII
string argument) is answered by yara-x itself on the test the rewrite compiles for one value
(``_yara_tests``): yara-x folds case beyond ASCII, bytes cannot. ``engine/tests/
test_facts_batch.py`` checks every corpus Koodous facts rule both ways.

Speed: a chunk's new values of a fact are answered together: one yara-x scan over all of them
finds each pattern's longest literal run (``_atom``), and only the patterns whose run occurs
in a value are tried on it (``_FactPreds.resolve``).
"""

from __future__ import annotations

import bisect
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from re import _parser as _sre_parse  # type: ignore[attr-defined]
from typing import Any

import yara_x

from engine import androguard
from engine.features import Match, RuleRecord
from engine.kinds import _yara_source
from engine.kinds._yara_source import Token

# cached answers per distinct value (per batch plan); cleared when it grows past this
VALUE_CACHE_MAX = 400_000

# fact -> what the facts dict calls its count (None: a single string value)
_LIST_FACTS = {name: androguard._COUNT[name] for name in androguard._LISTS}

# --------------------------------------------------------------------------------------------
# regular expressions: yara-x's syntax, a safe subset, as Python ``re`` over bytes

_SIMPLE_ESCAPES = set("dwsDWS")
_CONTROL_ESCAPES = set("tnrfv")
_QUANT = re.compile(r"\{(\d+)(,(\d*))?\}")


def _python_regex(token: str) -> re.Pattern[bytes] | None:
    """``/pattern/flags`` as a Python pattern with yara-x's meaning, or None when the pattern
    uses anything outside the subset this module is sure of (the rule then stays on yara-x)."""
    if not token.startswith("/"):
        return None
    end = token.rfind("/")
    if end <= 0:
        return None
    body, flags_text = token[1:end], token[end + 1 :]
    if not body.isascii() or set(flags_text) - {"i", "s"}:
        return None
    flags = (re.IGNORECASE if "i" in flags_text else 0) | (re.DOTALL if "s" in flags_text else 0)
    out: list[str] = []
    i, n = 0, len(body)
    in_class = False
    class_start = 0
    quantifiable = False  # the previous item can take a quantifier
    while i < n:
        c = body[i]
        if c == "\\":
            if i + 1 >= n:
                return None
            nxt = body[i + 1]
            if nxt in _SIMPLE_ESCAPES or nxt in _CONTROL_ESCAPES:
                out.append("\\" + nxt)
            elif nxt in "bB" and not in_class:
                out.append("\\" + nxt)
                quantifiable = False
                i += 2
                continue
            elif nxt == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", body[i + 2 : i + 4]):
                out.append(body[i : i + 4])
                i += 4
                quantifiable = True
                continue
            elif not nxt.isalnum() and nxt.isprintable() and nxt != " ":
                out.append("\\" + nxt)
            else:
                return None
            i += 2
            quantifiable = True
            continue
        if in_class:
            if c == "[" or body.startswith(("&&", "--", "~~"), i):
                return None  # nested classes, POSIX classes, set operations
            if c == "]":
                if i == class_start:
                    return None  # "[]…]": leave the corner cases to yara-x
                in_class = False
                quantifiable = True
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            i += 1
            if i < n and body[i] == "^":
                out.append("^")
                i += 1
            class_start = i
            continue
        if c in "*+?{":
            if not quantifiable:
                return None
            if c == "{":
                m = _QUANT.match(body, i)
                if m is None:
                    return None
                out.append(m.group(0))
                i = m.end()
            else:
                out.append(c)
                i += 1
            if i < n and body[i] == "?":
                out.append("?")  # lazy: the same answer for a search
                i += 1
            if i < n and body[i] in "*+?{":
                return None  # a quantifier of a quantifier (Python: possessive)
            quantifiable = False
            continue
        if c == "(":
            if body.startswith("(?", i):
                if not body.startswith("(?:", i):
                    return None
                out.append("(?:")
                i += 3
            else:
                out.append("(")
                i += 1
            quantifiable = False
            continue
        if c == "$":
            out.append(r"\Z")  # end of the value, never before a final newline
            quantifiable = False
        elif c in "^|":
            out.append(c)
            quantifiable = False
        elif c == ")":
            out.append(c)
            quantifiable = True
        elif c in "]}":
            return None  # a lone closer: dialects differ on it
        elif c.isprintable():
            out.append(re.escape(c) if c in "#&~-" or c.isspace() else c)
            quantifiable = True
        else:
            return None
        i += 1
    if in_class:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return re.compile("".join(out).encode("ascii"), flags)
    except (re.error, Warning):
        return None


def _atom(pattern: re.Pattern[bytes]) -> bytes | None:
    """The longest run of literal bytes every match contains (lower case), if 3 or more long:
    a value without it cannot match."""
    try:
        parsed = _sre_parse.parse(pattern.pattern, pattern.flags)
    except Exception:  # only a prefilter: without it every value is tried
        return None
    best: list[int] = []
    run: list[int] = []
    for op, arg in parsed:
        if op is _sre_parse.LITERAL and arg < 128:
            run.append(arg)
            if len(run) > len(best):
                best = list(run)
        else:
            run = []
    if len(best) < 3:
        return None
    return bytes(best).lower()


# --------------------------------------------------------------------------------------------
# predicates and expressions


@dataclass(frozen=True, slots=True)
class _Pred:
    fact: str
    kind: str  # "regex" or "string"
    token: str  # the argument as the rewrite gives it to yara-x (/…/flags or "…")


# expressions: ("pred", id) ("const", bool) ("not", e) ("and", [e]) ("or", [e])
# ("cmp", op, left, right) with terms ("int", fact) or ("num", value)
Expr = tuple[Any, ...]

_INT_OPS = ("==", "!=", "<", "<=", ">", ">=")


class _Unsupported(Exception):
    pass


class _Parser:
    def __init__(self, tokens: list[Token], preds: dict[_Pred, int]) -> None:
        self.tokens = tokens
        self.i = 0
        self.preds = preds

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.tokens[j].text if j < len(self.tokens) else ""

    def take(self, text: str | None = None) -> Token:
        if self.i >= len(self.tokens):
            raise _Unsupported("end of condition")
        tok = self.tokens[self.i]
        if text is not None and tok.text != text:
            raise _Unsupported(f"expected {text!r}, got {tok.text!r}")
        self.i += 1
        return tok

    def parse(self) -> Expr:
        expr = self.or_()
        if self.i != len(self.tokens):
            raise _Unsupported(f"unexpected {self.peek()!r}")
        return expr

    def or_(self) -> Expr:
        items = [self.and_()]
        while self.peek() == "or":
            self.take()
            items.append(self.and_())
        return items[0] if len(items) == 1 else ("or", items)

    def and_(self) -> Expr:
        items = [self.not_()]
        while self.peek() == "and":
            self.take()
            items.append(self.not_())
        return items[0] if len(items) == 1 else ("and", items)

    def not_(self) -> Expr:
        if self.peek() == "not":
            self.take()
            return ("not", self.not_())
        return self.primary()

    def primary(self) -> Expr:
        text = self.peek()
        if text == "(":
            self.take()
            inner = self.or_()
            self.take(")")
            return inner
        if text in ("true", "false"):
            self.take()
            return ("const", text == "true")
        if text == androguard.MODULE:
            if self.peek(1) == "." and self.peek(2) in androguard.INTEGERS:
                return self.comparison()
            return self.call()
        if self.tokens[self.i].kind == "number":
            return self.comparison()
        raise _Unsupported(f"{text!r}")

    def term(self) -> Expr:
        tok = self.take()
        if tok.text == androguard.MODULE:
            self.take(".")
            name = self.take().text
            if name not in androguard.INTEGERS:
                raise _Unsupported(f"androguard.{name} as an integer")
            return ("int", name)
        if tok.kind == "number" and re.fullmatch(r"\d+|0x[0-9a-fA-F]+", tok.text):
            return ("num", int(tok.text, 0))
        raise _Unsupported(f"integer {tok.text!r}")

    def comparison(self) -> Expr:
        left = self.term()
        op = self.peek()
        if op not in _INT_OPS:
            raise _Unsupported("an integer outside a comparison")
        self.take()
        right = self.term()
        if self.peek() in _INT_OPS:
            raise _Unsupported("chained comparison")
        return ("cmp", op, left, right)

    def call(self) -> Expr:
        self.take(androguard.MODULE)
        self.take(".")
        name = self.take().text
        if name == "certificate":
            self.take(".")
            sub = self.take().text
            if sub not in androguard._CERTIFICATE:
                raise _Unsupported(f"certificate.{sub}")
            fact, takes_regex, takes_string = androguard._CERTIFICATE[sub]
        elif name in androguard._FUNCTIONS:
            fact, _, takes_regex, takes_string = androguard._FUNCTIONS[name]
        else:
            raise _Unsupported(f"androguard.{name}")
        self.take("(")
        arg = self.take()
        self.take(")")
        if arg.kind == "regex" and takes_regex:
            pred = _Pred(fact, "regex", arg.text)
        elif arg.kind == "string" and takes_string:
            if fact == "cert_sha1":
                arg = androguard._sha1_argument(arg)
            if not androguard.unquote(arg.text):
                return ("const", False)  # `v != "" and v iequals ""` never holds
            pred = _Pred(fact, "string", arg.text)
        else:
            raise _Unsupported(f"{name} argument")
        pid = self.preds.setdefault(pred, len(self.preds))
        return ("pred", pid)


def _condition_tokens(body: str) -> tuple[str, list[Token]] | None:
    """The rule name and its condition's tokens, if ``body`` is one plain rule."""
    parsed = _yara_source.parse(body)
    if len(parsed.rules) != 1 or parsed.problems or parsed.includes:
        return None
    rule = parsed.rules[0]
    if rule.private or rule.is_global:
        return None
    if any(m != androguard.MODULE for m, _ in parsed.imports):
        return None
    tokens = _yara_source.tokenize(rule.text)
    for k, tok in enumerate(tokens):
        if tok.text == "condition" and k + 1 < len(tokens) and tokens[k + 1].text == ":":
            rest = tokens[k + 2 :]
            if not rest or rest[-1].text != "}":
                return None
            inner = rest[:-1]
            if any(t.text == "condition" for t in inner):
                return None
            return rule.name, inner
    return None


def parse_rule(body: str, preds: dict[_Pred, int]) -> tuple[str, Expr] | None:
    """``(rule name, expression)`` for a Koodous body this module evaluates, else None."""
    if not isinstance(body, str) or not androguard.imports_module(body):
        return None
    found = _condition_tokens(body)
    if found is None:
        return None
    name, tokens = found
    trial = dict(preds)
    try:
        expr = _Parser(tokens, trial).parse()
    except _Unsupported:
        return None
    preds.update(trial)
    return name, expr


# --------------------------------------------------------------------------------------------
# the batch


class _FactPreds:
    """The predicates on one fact, and what each distinct value answers.

    An ASCII value is answered in Python: a dict for strings, a trigram prefilter then ``re``
    for patterns. A value with other characters, and the predicates Python does not answer
    exactly (a pattern outside ``_python_regex``'s subset, a string with non-ASCII
    characters), are answered by yara-x itself on the very test the rewrite compiles
    (``v matches /re/``, ``v != "" and v iequals "s"``): yara-x folds case beyond ASCII
    (``iequals``, and ``/k/i`` matches the Kelvin sign), which bytes cannot tell.
    """

    def __init__(self, fact: str, preds: list[tuple[int, _Pred]]) -> None:
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
            pattern = _python_regex(pred.token)
            if pattern is None:
                self.by_yara.add(pid)
                continue
            atom = _atom(pattern)
            if atom is None or b"\n" in atom:
                self.always.append((pid, pattern))
            else:
                self.trigrams.setdefault(atom[:3], []).append((atom, pid, pattern))
                self.by_atom.setdefault(atom, []).append((pid, pattern))
        self.atoms = list(self.by_atom)
        self.atom_scanner = _atom_scanner(self.atoms) if self.atoms else None
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
        if self.atom_scanner is None or len(values) < 8:
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
        starts: list[int] = []
        at = 0
        for data in lowered:
            starts.append(at)
            at += len(data) + 1
        results = self.atom_scanner.scan(b"\n".join(lowered))
        candidates: dict[int, set[int]] = {}
        for rule in results.matching_rules:
            atom = int(rule.identifier[1:])
            for pattern in rule.patterns:
                if len(pattern.matches) >= _MAX_MATCHES:
                    for text in texts:  # the scan may have stopped counting: one by one
                        self.answers[text] = self.answer(text)
                    return
                for found in pattern.matches:
                    k = bisect.bisect_right(starts, found.offset) - 1
                    candidates.setdefault(k, set()).add(atom)
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

    def _yara(self, value: str, scanner: yara_x.Scanner | None = None) -> set[int]:
        if scanner is None:
            if self._scanner is None:
                self._scanner = _yara_tests(self.preds)
            scanner = self._scanner
        scanner.set_global("v", value)
        return {int(rule.identifier[1:]) for rule in scanner.scan(b"").matching_rules}


_MAX_MATCHES = 1_000_000


def _atom_scanner(atoms: list[bytes]) -> yara_x.Scanner:
    """A rule ``a<n>`` per literal run, as exact bytes."""
    compiler = yara_x.Compiler()
    for n, atom in enumerate(atoms):
        hexed = " ".join(f"{b:02x}" for b in atom)
        compiler.add_source(f"rule a{n} {{ strings: $a = {{ {hexed} }} condition: $a }}\n")
    scanner = yara_x.Scanner(compiler.build())
    scanner.max_matches_per_pattern(_MAX_MATCHES)
    return scanner


def _yara_tests(preds: list[tuple[int, _Pred]]) -> yara_x.Scanner:
    """One yara-x rule per predicate, ``p<id>``, over the global string ``v``: each the test
    ``engine.androguard`` writes for one value."""
    compiler = yara_x.Compiler(relaxed_re_syntax=True)
    compiler.define_global("v", "")
    for pid, pred in preds:
        if pred.kind == "regex":
            condition = f"v matches {pred.token}"
        else:
            condition = f'v != "" and v iequals {pred.token}'
        compiler.add_source(f"rule p{pid} {{ condition: {condition} }}\n")
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
        preds: dict[_Pred, int] = {}
        self.rules: list[_BatchRule] = []
        self.rest: list[int] = []
        for index in sorted(indexes):
            parsed = parse_rule(self.records[index].body, preds)
            if parsed is None:
                self.rest.append(index)
            else:
                self.rules.append(_BatchRule(index, parsed[0], parsed[1]))
        self.preds = [p for p, _ in sorted(preds.items(), key=lambda kv: kv[1])]
        grouped: dict[str, list[tuple[int, _Pred]]] = {}
        for pid, pred in enumerate(self.preds):
            grouped.setdefault(pred.fact, []).append((pid, pred))
        self.by_fact = {fact: _FactPreds(fact, group) for fact, group in grouped.items()}
        self.integers = sorted({t[1] for r in self.rules for t in _int_terms(r.expr)})

    def match(self, facts: Sequence[dict[str, Any] | None]) -> list[list[Match]]:
        """Per app (its ``android.androguard`` facts, None for unknown), the batched records
        it matches, in record order, with the evidence ``FactsScanner`` gives."""
        n = len(facts)
        everyone = (1 << n) - 1
        masks = [0] * len(self.preds)
        for fact, entry in self.by_fact.items():
            count_name = _LIST_FACTS.get(fact)
            answers = entry.answers
            if len(answers) > VALUE_CACHE_MAX:
                answers.clear()
            rows: list[tuple[int, Sequence[str]]] = []
            new: dict[str, None] = {}
            for position, app in enumerate(facts):
                if app is None:
                    continue
                if count_name is None:
                    value = app.get(fact) or ""
                    values: Sequence[str] = (value,) if value else ()
                else:
                    values = app.get(fact) or ()
                    values = values[: app.get(count_name, 0)]
                if values:
                    rows.append((position, values))
                    for value in values:
                        if value and value not in answers:
                            new[value] = None
            if new:
                entry.resolve(list(new))
            for position, values in rows:
                bit = 1 << position
                for value in values:
                    if value:
                        for pid in answers[value]:
                            masks[pid] |= bit
        ints: dict[str, dict[int, int]] = {}
        for name in self.integers:
            by_value: dict[int, int] = {}
            for position, app in enumerate(facts):
                value = (app or {}).get(name) or 0
                by_value[value] = by_value.get(value, 0) | 1 << position
            ints[name] = by_value
        out: list[list[Match]] = [[] for _ in range(n)]
        for rule in self.rules:
            mask = _eval(rule.expr, masks, ints, everyone)
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
            while mask:
                low = mask & -mask
                out[low.bit_length() - 1].append(match)
                mask ^= low
        return out


def _int_terms(expr: Expr) -> Iterable[Expr]:
    op = expr[0]
    if op == "cmp":
        yield from (t for t in expr[2:] if t[0] == "int")
    elif op == "not":
        yield from _int_terms(expr[1])
    elif op in ("and", "or"):
        for item in expr[1]:
            yield from _int_terms(item)


_COMPARE = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _eval(expr: Expr, masks: list[int], ints: dict[str, dict[int, int]], everyone: int) -> int:
    op = expr[0]
    if op == "pred":
        return masks[expr[1]]
    if op == "and":
        mask = everyone
        for item in expr[1]:
            mask &= _eval(item, masks, ints, everyone)
            if not mask:
                break
        return mask
    if op == "or":
        mask = 0
        for item in expr[1]:
            mask |= _eval(item, masks, ints, everyone)
        return mask
    if op == "not":
        return everyone & ~_eval(expr[1], masks, ints, everyone)
    if op == "const":
        return everyone if expr[1] else 0
    assert op == "cmp"
    compare = _COMPARE[expr[1]]
    left, right = expr[2], expr[3]
    if left[0] == "num" and right[0] == "num":
        return everyone if compare(left[1], right[1]) else 0
    if left[0] == "int" and right[0] == "int":
        mask = 0
        for a, ma in ints[left[1]].items():
            for b, mb in ints[right[1]].items():
                if compare(a, b):
                    mask |= ma & mb
        return mask
    mask = 0
    if left[0] == "int":
        for value, m in ints[left[1]].items():
            if compare(value, right[1]):
                mask |= m
    else:
        for value, m in ints[right[1]].items():
            if compare(left[1], value):
                mask |= m
    return mask


# --------------------------------------------------------------------------------------------
# facts from a stored summary


def summary_facts(summary: dict[str, Any]) -> dict[str, Any]:
    """``androguard.facts`` of the features a stored summary (``AppFeatures.to_dict`` less its
    DEX tables) holds, read from the dict itself: the same values without rebuilding the
    dataclasses (~0.3 ms an app, ten times this). ``engine/tests/test_facts_batch.py`` checks
    it equals ``androguard.facts`` on every corpus app."""
    manifest = summary.get("manifest") or {}
    certificates = summary.get("certificates") or ()
    parts = summary.get("parts") or ()
    indicators = summary.get("indicators") or {}
    urls = list(summary.get("url_strings") or indicators.get("urls") or ())
    if manifest.get("package") is None:
        manifest = next(
            (p["manifest"] for p in parts if (p.get("manifest") or {}).get("package")), manifest
        )
    if not certificates:
        certificates = [c for p in parts for c in p.get("certificates") or ()]
    out = androguard.default_facts()
    package = manifest.get("package")
    label = manifest.get("app_label") or ""
    components = manifest.get("components") or ()
    permissions = manifest.get("permissions") or ()
    declared = manifest.get("declared_permissions") or ()
    out.update(
        package_name=package or "",
        app_name="" if label.startswith("@") else label,
        displayed_version=manifest.get("version_name") or "",
        main_activity=_main_activity(components, package),
        min_sdk=manifest.get("min_sdk") or 0,
        max_sdk=manifest.get("max_sdk") or 0,
        target_sdk=manifest.get("target_sdk") or 0,
        permissions_number=len(permissions) + len(declared),
    )
    names: dict[str, dict[str, None]] = {"activity": {}, "service": {}, "receiver": {}}
    filters: dict[str, None] = {}
    for comp in components:
        found = names.get(comp.get("kind"))
        if found is not None and comp.get("name"):
            found.setdefault(androguard.qualified(comp["name"], package))
        for f in comp.get("intent_filters") or ():
            for value in (*(f.get("actions") or ()), *(f.get("categories") or ())):
                filters.setdefault(value)
    _put(out, "activities", list(names["activity"]))
    _put(out, "services", list(names["service"]))
    _put(out, "receivers", list(names["receiver"]))
    _put(out, "filters", list(filters))
    _put(out, "urls", urls)
    _put(out, "permissions", [*permissions, *declared])
    certs = [c for c in certificates if c.get("sha1")]
    out["cert_sha1"] = [c["sha1"].lower() for c in certs] or [""]
    out["cert_issuer"] = [
        c.get("issuer_dn") or androguard.oneline_dn(c.get("issuer") or "") for c in certs
    ] or [""]
    out["cert_subject"] = [
        c.get("subject_dn") or androguard.oneline_dn(c.get("subject") or "") for c in certs
    ] or [""]
    out["cert_not_before"] = [c.get("not_before") for c in certs] or [""]
    out["cert_not_after"] = [c.get("not_after") for c in certs] or [""]
    out["cert_sha1_count"] = len(certs)
    return out


def _main_activity(components: Iterable[dict[str, Any]], package: str | None) -> str:
    for comp in components:
        if comp.get("kind") != "activity":
            continue
        for f in comp.get("intent_filters") or ():
            if "android.intent.action.MAIN" in (f.get("actions") or ()) and (
                "android.intent.category.LAUNCHER" in (f.get("categories") or ())
            ):
                return androguard.qualified(comp.get("name") or "", package)
    return ""


def _put(out: dict[str, Any], name: str, values: list[str]) -> None:
    values = [v for v in values if v]
    out[name] = values or [""]
    out[androguard._COUNT[name]] = len(values)
