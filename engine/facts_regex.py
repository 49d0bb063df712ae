"""yara-x regular expressions as Python ``re`` patterns over bytes, for the facts batch.

``python_regex`` translates ``/pattern/flags`` only from a conservative subset of yara-x's
syntax whose meaning it is sure of (as yara-x does: ``.`` is one byte, ``\\w``/``\\d``/``\\s``
and ``/i`` are ASCII); anything else gives None and the predicate is answered by yara-x.
``literal_atom`` is a pattern's longest literal run, the prefilter of ``engine.facts_batch``.
"""

from __future__ import annotations

import re
import warnings

# the regular-expression parser of the standard library, to find a pattern's literal runs
from re import _parser as _sre_parse  # type: ignore[attr-defined, unused-ignore]

_SIMPLE_ESCAPES = set("dwsDWS")
_CONTROL_ESCAPES = set("tnrfv")
_QUANT = re.compile(r"\{(\d+)(,(\d*))?\}")


# A tokenizer: one loop over the pattern, one branch per construct, each refusing early.
def python_regex(token: str) -> re.Pattern[bytes] | None:  # noqa: C901, PLR0911, PLR0912, PLR0915
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


def literal_atom(pattern: re.Pattern[bytes]) -> bytes | None:
    """The longest run of literal bytes every match contains (lower case), if 3 or more long:
    a value without it cannot match (the batch's prefilter)."""
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
