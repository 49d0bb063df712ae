"""A Koodous facts rule's condition, as written, parsed into an expression the batch evaluates.

``parse_rule`` takes calls (``androguard.<call>(arg)``, each a predicate ``Pred`` over one fact
that the rewriter's own tables name), integer comparisons, ``and``/``or``/``not``, parentheses
and ``true``/``false``. Anything else (another rule's name, ``android.*`` globals, ``them``,
arithmetic, a ``for``, several rules in one body, a ``global`` or ``private`` rule) gives None:
the record stays on yara-x (``engine.facts_batch.FactsBatch.rest``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from engine import androguard

# The rewriter's own tables and its certificate-argument rule (engine.androguard): the batch
# must read each call exactly as the rewrite does, so it shares them rather than copy them.
from engine.androguard import _CERTIFICATE, _FUNCTIONS, _sha1_argument
from engine.kinds import _yara_source
from engine.kinds._yara_source import Token


@dataclass(frozen=True, slots=True)
class Pred:
    fact: str
    kind: str  # "regex" or "string"
    token: str  # the argument as the rewrite gives it to yara-x (/…/flags or "…")


# expressions: ("pred", id) ("const", bool) ("not", e) ("and", [e]) ("or", [e])
# ("cmp", op, left, right) with terms ("int", fact) or ("num", value)
Expr = tuple[Any, ...]

_INT_OPS = ("==", "!=", "<", "<=", ">", ">=")


class _Unsupported(Exception):
    """A condition this module does not evaluate: the record stays on yara-x."""


class _Parser:
    def __init__(self, tokens: list[Token], preds: dict[Pred, int]) -> None:
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
            if sub not in _CERTIFICATE:
                raise _Unsupported(f"certificate.{sub}")
            fact, takes_regex, takes_string = _CERTIFICATE[sub]
        elif name in _FUNCTIONS:
            fact, _, takes_regex, takes_string = _FUNCTIONS[name]
        else:
            raise _Unsupported(f"androguard.{name}")
        self.take("(")
        arg = self.take()
        self.take(")")
        if arg.kind == "regex" and takes_regex:
            pred = Pred(fact, "regex", arg.text)
        elif arg.kind == "string" and takes_string:
            if fact == "cert_sha1":
                arg = _sha1_argument(arg)
            if not androguard.unquote(arg.text):
                return ("const", False)  # `v != "" and v iequals ""` never holds
            pred = Pred(fact, "string", arg.text)
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


def parse_rule(body: str, preds: dict[Pred, int]) -> tuple[str, Expr] | None:
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
