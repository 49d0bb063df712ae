"""Just enough of a YARA lexer to split a file into rules and see what each rule refers to.

yara-x compiles and reports errors; this module only answers questions yara-x's Python API
does not: where does each rule start and end, which other rules does its condition name, which
modules and files does the source import. It never rejects input: text it cannot make sense
of is left for the compiler to report.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9][A-Za-z0-9_.]*")
_MULTI = ("==", "!=", "<=", ">=", "<<", ">>", "..")
# A "/" divides after an operand (a number, a variable, an identifier that is not an
# operator keyword, a closing bracket or a string); anywhere else it opens a regular
# expression: ``$a = /x/``, ``s matches /x/``, ``androguard.url(/x/)``, ``f(a, /x/)``.
_OPERATOR_WORDS = {
    "and",
    "or",
    "not",
    "matches",
    "contains",
    "icontains",
    "startswith",
    "istartswith",
    "endswith",
    "iendswith",
    "iequals",
    "defined",
    "condition",
    "strings",
    "meta",
}


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    start: int
    end: int
    line: int
    kind: str  # "ident", "string", "regex", "number", "var", "punct"


def tokenize(source: str) -> list[Token]:
    """The tokens of ``source`` (a new list; the tokens are frozen). A rule's source is read
    by several passes as a ruleset compiles (structure, rewrite, reads_bytes, the facts
    batch): the tokens of the last few hundred sources (of a rule's usual size) are kept."""
    if len(source) > _CACHED_SOURCE_MAX:
        return _tokenize(source)
    return list(_tokenize_cached(source))


_CACHED_SOURCE_MAX = 16_384


@functools.lru_cache(maxsize=512)
def _tokenize_cached(source: str) -> tuple[Token, ...]:
    return tuple(_tokenize(source))


# a hand-written lexer: one branch per token class
def _tokenize(source: str) -> list[Token]:  # noqa: C901, PLR0912, PLR0915
    tokens: list[Token] = []
    i, line, n = 0, 1, len(source)
    while i < n:
        c = source[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif source.startswith("//", i):
            j = source.find("\n", i)
            i = n if j < 0 else j
        elif source.startswith("/*", i):
            j = source.find("*/", i + 2)
            j = n if j < 0 else j + 2
            line += source.count("\n", i, j)
            i = j
        elif c == '"':
            j = i + 1
            while j < n and source[j] != '"' and source[j] != "\n":
                j += 2 if source[j] == "\\" else 1
            j = min(j + 1, n)
            tokens.append(Token(source[i:j], i, j, line, "string"))
            i = j
        elif c == "/" and _regex_may_start(tokens):
            j, in_class = i + 1, False
            while j < n and source[j] != "\n":
                ch = source[j]
                if ch == "\\":
                    j += 2
                    continue
                if ch == "[":
                    in_class = True
                elif ch == "]":
                    in_class = False
                elif ch == "/" and not in_class:
                    break
                j += 1
            j += 1
            while j < n and source[j].isalpha():
                j += 1
            tokens.append(Token(source[i:j], i, j, line, "regex"))
            i = j
        elif c in "$#@!" and i + 1 < n and (source[i + 1].isalnum() or source[i + 1] in "_*"):
            m = _IDENT.match(source, i + 1)
            j = m.end() if m else i + 1
            if j < n and source[j] == "*":
                j += 1
            tokens.append(Token(source[i:j], i, j, line, "var"))
            i = j
        elif (m := _IDENT.match(source, i)) is not None:
            tokens.append(Token(m.group(), i, m.end(), line, "ident"))
            i = m.end()
        elif (m := _NUMBER.match(source, i)) is not None:
            tokens.append(Token(m.group(), i, m.end(), line, "number"))
            i = m.end()
        else:
            two = source[i : i + 2]
            width = 2 if two in _MULTI else 1
            tokens.append(Token(source[i : i + width], i, i + width, line, "punct"))
            i += width
    return tokens


def _regex_may_start(tokens: list[Token]) -> bool:
    if not tokens:
        return False
    last = tokens[-1]
    if last.kind in ("number", "var", "string", "regex"):
        return False
    if last.kind == "ident":
        return last.text in _OPERATOR_WORDS
    return last.text not in (")", "]", "}")


@dataclass(frozen=True, slots=True)
class RuleSource:
    name: str
    text: str
    line: int
    private: bool
    is_global: bool
    references: frozenset[str]  # identifiers in the condition that may name other rules
    prefixes: frozenset[str]  # ``name*`` rule sets, e.g. ``any of (is_*)``

    def as_private(self) -> str:
        """The rule's text marked private, so that a helper never reports on its own."""
        return self.text if self.private else "private " + self.text


@dataclass(slots=True)
class SourceFile:
    imports: list[tuple[str, int]] = field(default_factory=list)  # (module, line)
    includes: list[tuple[str, int]] = field(default_factory=list)  # (path, line)
    rules: list[RuleSource] = field(default_factory=list)
    problems: list[tuple[str, int]] = field(default_factory=list)  # (message, line)


def _unquote(token: Token) -> str:
    text = token.text[1:-1] if token.text.endswith('"') and len(token.text) >= 2 else ""
    return text.replace('\\"', '"').replace("\\\\", "\\")


def parse(source: str) -> SourceFile:
    tokens = tokenize(source)
    result = SourceFile()
    i, n = 0, len(tokens)
    while i < n:
        tok = tokens[i]
        if tok.text in ("import", "include") and i + 1 < n and tokens[i + 1].kind == "string":
            target = result.imports if tok.text == "import" else result.includes
            target.append((_unquote(tokens[i + 1]), tok.line))
            i += 2
            continue
        start = i
        private = is_global = False
        while i < n and tokens[i].text in ("private", "global"):
            private |= tokens[i].text == "private"
            is_global |= tokens[i].text == "global"
            i += 1
        if i + 1 < n and tokens[i].text == "rule" and tokens[i + 1].kind == "ident":
            name = tokens[i + 1].text
            j = i + 2
            while j < n and tokens[j].text != "{":
                j += 1
            depth, k = 0, j
            in_condition = False
            refs: set[str] = set()
            prefixes: set[str] = set()
            while k < n:
                t = tokens[k]
                if t.text == "{":
                    depth += 1
                elif t.text == "}":
                    depth -= 1
                    if depth == 0:
                        break
                elif t.text == "condition" and k + 1 < n and tokens[k + 1].text == ":":
                    in_condition = True
                elif in_condition and t.kind == "ident" and tokens[k - 1].text != ".":
                    if k + 1 < n and tokens[k + 1].text == "*" and tokens[k + 1].start == t.end:
                        prefixes.add(t.text)
                    else:
                        refs.add(t.text)
                k += 1
            if k >= n:
                result.problems.append((f"rule {name} has no closing brace", tokens[start].line))
                return result
            text = source[tokens[start].start : tokens[k].end]
            result.rules.append(
                RuleSource(
                    name,
                    text,
                    tokens[start].line,
                    private,
                    is_global,
                    frozenset(refs),
                    frozenset(prefixes),
                )
            )
            i = k + 1
            continue
        result.problems.append((f"unexpected {tokens[start].text!r}", tokens[start].line))
        i = start + 1
    return result


def canonical_text(source: str) -> str:
    """The source without comments or layout: equal for rules that differ only in those."""
    return " ".join(t.text for t in tokenize(source))


def dependencies(rule: RuleSource, available: dict[str, RuleSource]) -> list[RuleSource]:
    """The rules ``rule`` needs (transitively), in an order where each comes before its user."""
    ordered: list[RuleSource] = []
    seen: set[str] = {rule.name}

    def visit(current: RuleSource) -> None:
        names = set(current.references)
        for prefix in current.prefixes:
            names.update(k for k in available if k.startswith(prefix))
        for ref in sorted(names, key=lambda k: available[k].line if k in available else 0):
            if ref in seen or ref not in available:
                continue
            seen.add(ref)
            visit(available[ref])
            ordered.append(available[ref])

    visit(rule)
    return ordered


def assemble(
    rule: RuleSource,
    available: dict[str, RuleSource],
    globals_: list[RuleSource],
    imports: list[str],
) -> str:
    """The canonical text of a one-rule body: the imports it uses (sorted), the global rules
    of its namespace and the helpers it needs (all made private), then the rule itself."""
    helpers: list[RuleSource] = []
    seen = {rule.name}
    for head in [*(g for g in globals_ if g.name != rule.name), rule]:
        for dep in dependencies(head, available):
            if dep.name not in seen:
                seen.add(dep.name)
                helpers.append(dep)
        if head is not rule and head.name not in seen:
            seen.add(head.name)
            helpers.append(head)
    used: set[str] = set()
    for r in [*helpers, rule]:
        used |= r.references
    parts = [f'import "{m}"' for m in sorted(set(imports)) if m in used]
    if parts:
        parts.append("")
    parts += [h.as_private() + "\n" for h in helpers]
    parts.append(rule.text)
    return "\n".join(parts) + "\n"
