"""Koodous' ``androguard`` YARA module on yara-x: rules keep their text, conditions are rewritten.

Koodous runs its community rules on a YARA build with a module of its own
(Koodous/androguard-yara, ``androguard.c``) that answers questions about the app from a JSON
report: ``androguard.package_name(/re/)``, ``androguard.permission(/SEND_SMS/)``,
``androguard.certificate.sha1("AB:CD:…")``, ``androguard.min_sdk``… yara-x has no such module
and a module would need a yara-x build of our own (docs/decisions.md). Instead the body people
see, edit and export stays the rule as written, and what yara-x compiles is a rewritten copy
in which every ``androguard`` function call is a condition over the app's facts, passed in the
``android`` global as the structure ``android.androguard`` (``facts``):

==========================================  =====================================================
``androguard.package_name(x)``              ``package_name``
``androguard.app_name(x)``                  ``app_name`` (the resolved label)
``androguard.displayed_version(x)``         ``displayed_version`` (versionName)
``androguard.main_activity(/re/)``          ``main_activity`` (first MAIN + LAUNCHER activity)
``androguard.activity(x)``                  any of ``activities`` (class names, package-qualified)
``androguard.service(x)``                   any of ``services``
``androguard.receiver(x)``                  any of ``receivers``
``androguard.filter(x)``                    any of ``filters`` (intent-filter actions and
                                            categories of every component)
``androguard.url(x)``                       any of ``urls`` (URL-shaped DEX strings)
``androguard.permission(/re/)``             any of ``permissions`` (requested, then declared)
``androguard.certificate.sha1("h")``        any certificate's SHA-1
``androguard.certificate.issuer(/re/)``     any certificate's issuer, ``/C=../O=../CN=..``
``androguard.certificate.subject(/re/)``    any certificate's subject, same form
``androguard.certificate.not_before(x)``    any certificate's notBefore, ISO 8601 UTC
``androguard.certificate.not_after(x)``     any certificate's notAfter
``androguard.min_sdk`` / ``max_sdk`` /      integers, 0 when the manifest does not say
``target_sdk`` / ``permissions_number``
==========================================  =====================================================

Semantics are ``androguard.c``'s: a regular expression searches anywhere in the value and a
match of length zero counts as false (``yr_re_match(...) > 0``); a string compares for
equality without regard to case (``strcasecmp``); ``certificate.sha1`` drops the colons of its
argument first; a missing value is false for every test and 0 for an integer. yara-x refuses
empty arrays as globals, so each list is padded to one empty string and walked by index up to
its count. yara-x cannot express "a non-empty match" for a pattern that also matches the
empty string, so such a pattern is refused with that reason.

What cannot run here is refused with a reason naming it: ``androguard.functionality.*``
(results of Koodous' code analysis), names the module never had, and (in a Koodous rule) the
sandbox modules ``cuckoo`` and ``droidbox``.

The rewrite works on tokens (``engine.kinds._yara_source.tokenize``: strings, comments and
regular expressions with their escapes are single tokens), never on raw text, and keeps every
line where it was so that compile errors point at the line people wrote.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yara_x

from engine.features import AppFeatures, Certificate, Component, Manifest
from engine.kinds import _yara_source
from engine.kinds._yara_source import Token

MODULE = "androguard"
# where the facts live inside the ``android`` global
FACTS_FIELD = "androguard"
_PREFIX = f"android.{FACTS_FIELD}"

# function -> (fact, is a list, accepts a regex, accepts a string)
_FUNCTIONS: dict[str, tuple[str, bool, bool, bool]] = {
    "package_name": ("package_name", False, True, True),
    "app_name": ("app_name", False, True, True),
    "displayed_version": ("displayed_version", False, True, True),
    "main_activity": ("main_activity", False, True, False),
    "activity": ("activities", True, True, True),
    "service": ("services", True, True, True),
    "receiver": ("receivers", True, True, True),
    "filter": ("filters", True, True, True),
    "url": ("urls", True, True, True),
    "permission": ("permissions", True, True, False),
}
_CERTIFICATE: dict[str, tuple[str, bool, bool]] = {
    # function -> (fact, accepts a regex, accepts a string)
    "sha1": ("cert_sha1", False, True),
    "issuer": ("cert_issuer", True, False),
    "subject": ("cert_subject", True, False),
    "not_before": ("cert_not_before", True, True),
    "not_after": ("cert_not_after", True, True),
}
INTEGERS = ("min_sdk", "max_sdk", "target_sdk", "permissions_number")
_LISTS = (
    "activities",
    "services",
    "receivers",
    "filters",
    "urls",
    "permissions",
    "cert_sha1",
    "cert_issuer",
    "cert_subject",
    "cert_not_before",
    "cert_not_after",
)
_COUNT = {name: f"{name}_count" for name in _LISTS}
for _name in ("cert_issuer", "cert_subject", "cert_not_before", "cert_not_after"):
    _COUNT[_name] = "cert_sha1_count"  # one entry per certificate in each
_SANDBOX_MODULES = ("cuckoo", "droidbox")

FUNCTIONALITY_REASON = (
    "needs androguard.functionality, the results of Koodous' code analysis, which the "
    "engine does not produce"
)
NULLABLE_REASON = (
    "the pattern {pattern} also matches the empty string: Koodous counts an empty match as "
    "false, which yara-x cannot express; make the pattern match at least one character"
)


def sandbox_reason(module: str) -> str:
    return f"needs the '{module}' module: a sandbox report the engine does not produce"


def default_facts() -> dict[str, Any]:
    """``android.androguard`` of an app about which nothing is known."""
    facts: dict[str, Any] = {
        "package_name": "",
        "app_name": "",
        "displayed_version": "",
        "main_activity": "",
    }
    for name in _LISTS:
        facts[name] = [""]
        facts[_COUNT[name]] = 0
    for name in INTEGERS:
        facts[name] = 0
    return facts


# --------------------------------------------------------------------------------------------
# the facts of one app


def qualified(name: str, package: str | None) -> str:
    """A component's class name as Android (and androguard) resolves it: ``.Main`` and
    ``Main`` are in the app's package."""
    if not name or not package:
        return name
    if name.startswith("."):
        return package + name
    if "." not in name:
        return f"{package}.{name}"
    return name


def main_activity(manifest: Manifest) -> str:
    """The first activity with a MAIN action and a LAUNCHER category, or ""."""
    for comp in manifest.components:
        if comp.kind != "activity":
            continue
        for f in comp.intent_filters:
            if (
                "android.intent.action.MAIN" in f.actions
                and "android.intent.category.LAUNCHER" in f.categories
            ):
                return qualified(comp.name, manifest.package)
    return ""


def _names(components: Iterable[Component], kind: str, package: str | None) -> list[str]:
    return list(
        dict.fromkeys(qualified(c.name, package) for c in components if c.kind == kind and c.name)
    )


def _filters(components: Iterable[Component]) -> list[str]:
    found: dict[str, None] = {}
    for comp in components:
        for f in comp.intent_filters:
            for value in (*f.actions, *f.categories):
                found.setdefault(value)
    return list(found)


def oneline_dn(rfc4514: str) -> str:
    """``CN=a,O=b,C=c`` (RFC 4514, last attribute first) as OpenSSL's one-line form that
    Koodous' reports use, ``/C=c/O=b/CN=a``. Escaped commas stay inside their value."""
    if not rfc4514:
        return ""
    parts = re.split(r"(?<!\\),", rfc4514)
    return "".join("/" + p.replace("\\,", ",") for p in reversed(parts))


def _set(facts: dict[str, Any], name: str, values: list[str]) -> None:
    values = [v for v in values if v]
    facts[name] = values or [""]
    facts[_COUNT[name]] = len(values)


def facts(features: AppFeatures) -> dict[str, Any]:
    """``android.androguard`` for one app, from its features (an XAPK: its base part)."""
    manifest = features.manifest
    certificates: tuple[Certificate, ...] = features.certificates
    # stored features older than url_strings: the URLs with real hosts are what there is
    urls = list(features.url_strings or features.indicators.urls)
    if manifest.package is None:
        manifest = next((p.manifest for p in features.parts if p.manifest.package), manifest)
    if not certificates:
        certificates = tuple(c for p in features.parts for c in p.certificates)
    out = default_facts()
    package = manifest.package
    label = manifest.app_label or ""
    out.update(
        package_name=package or "",
        app_name="" if label.startswith("@") else label,
        displayed_version=manifest.version_name or "",
        main_activity=main_activity(manifest),
        min_sdk=manifest.min_sdk or 0,
        max_sdk=manifest.max_sdk or 0,
        target_sdk=manifest.target_sdk or 0,
        permissions_number=len(manifest.permissions) + len(manifest.declared_permissions),
    )
    _set(out, "activities", _names(manifest.components, "activity", package))
    _set(out, "services", _names(manifest.components, "service", package))
    _set(out, "receivers", _names(manifest.components, "receiver", package))
    _set(out, "filters", _filters(manifest.components))
    _set(out, "urls", urls)
    _set(out, "permissions", [*manifest.permissions, *manifest.declared_permissions])
    # one entry per certificate in every cert_* list, so index i is one certificate
    certs = [c for c in certificates if c.sha1]
    out["cert_sha1"] = [c.sha1.lower() for c in certs] or [""]
    out["cert_issuer"] = [c.issuer_dn or oneline_dn(c.issuer) for c in certs] or [""]
    out["cert_subject"] = [c.subject_dn or oneline_dn(c.subject) for c in certs] or [""]
    out["cert_not_before"] = [c.not_before for c in certs] or [""]
    out["cert_not_after"] = [c.not_after for c in certs] or [""]
    out["cert_sha1_count"] = len(certs)
    return out


# --------------------------------------------------------------------------------------------
# the rewrite


@dataclass(frozen=True, slots=True)
class Problem:
    message: str
    line: int
    column: int


@dataclass(slots=True)
class Rewrite:
    """``source`` as yara-x compiles it, or the problems that stop it from running here."""

    source: str
    problems: list[Problem] = field(default_factory=list)
    calls: int = 0  # androguard function calls rewritten


def imports_module(source: str) -> bool:
    if MODULE not in source:
        return False
    return any(m == MODULE for m, _ in _yara_source.parse(source).imports)


def _column(source: str, offset: int) -> int:
    return offset - source.rfind("\n", 0, offset)


def _same_lines(original: str, replacement: str) -> str:
    """``replacement`` followed by the newlines ``original`` spanned, so lines stay put."""
    return replacement + "\n" * original.count("\n")


def unquote(token: str) -> str:
    """The value of a YARA string literal (``\\"``, ``\\\\``, ``\\t``, ``\\n``, ``\\xNN``)."""
    body = token[1:-1] if len(token) >= 2 and token.endswith('"') else token[1:]
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", body[i + 2 : i + 4]):
                out.append(chr(int(body[i + 2 : i + 4], 16)))
                i += 4
                continue
            out.append({"n": "\n", "t": "\t", "r": "\r"}.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def quote(value: str) -> str:
    out = []
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


_EMPTY_CACHE: dict[str, bool] = {}
_EMPTY_CACHE_MAX = 16384


def matches_empty(regexes: Iterable[str]) -> set[str]:
    """Which of ``regexes`` yara-x finds a match for in the empty string (patterns that can
    match nothing at all). yara-x itself is asked, so that its dialect decides; one compile
    for all the patterns of a rule, and answers are remembered."""
    wanted = set(regexes)
    todo = sorted(r for r in wanted if r not in _EMPTY_CACHE)
    if todo:
        if len(_EMPTY_CACHE) > _EMPTY_CACHE_MAX:
            _EMPTY_CACHE.clear()
        _EMPTY_CACHE.update(_ask_yara(todo))
    return {r for r in wanted if _EMPTY_CACHE.get(r)}


def prepare(sources: Iterable[str]) -> None:
    """Ask yara-x about the call patterns of many rules at once (``matches_empty``), before
    rewriting them one by one: one compile instead of one per rule (a ruleset's start)."""
    regexes: set[str] = set()
    for source in sources:
        if not isinstance(source, str) or MODULE not in source:
            continue
        tokens = _yara_source.tokenize(source)
        regexes.update(
            t.text
            for k, t in enumerate(tokens)
            if t.kind == "regex" and k >= 3 and tokens[k - 1].text == "("
        )
    if regexes:
        matches_empty(regexes)


def _ask_yara(regexes: list[str]) -> dict[str, bool]:
    compiler = yara_x.Compiler(relaxed_re_syntax=True)
    source = "".join(f'rule e{n} {{ condition: "" matches {r} }}\n' for n, r in enumerate(regexes))
    try:
        compiler.add_source(source)
    except yara_x.CompileError:
        if len(regexes) == 1:
            return {regexes[0]: False}  # the rule's own compile reports the pattern's error
        half = len(regexes) // 2  # the bad pattern is in one half: ask each apart
        return {**_ask_yara(regexes[:half]), **_ask_yara(regexes[half:])}
    hits = {m.identifier for m in yara_x.Scanner(compiler.build()).scan(b"").matching_rules}
    return {regex: f"e{n}" in hits for n, regex in enumerate(regexes)}


def _test(fact: str, is_list: bool, arg: Token) -> str:
    """The yara-x condition for one call on ``fact`` with a literal ``arg``."""
    if arg.kind == "regex":

        def one(value: str) -> str:
            return f"{value} matches {arg.text}"
    else:
        literal = arg.text

        def one(value: str) -> str:
            return f'({value} != "" and {value} iequals {literal})'

    if not is_list:
        return f"({one(f'{_PREFIX}.{fact}')})"
    count = f"{_PREFIX}.{_COUNT[fact]}"
    return f"(for any i in (0..{count} - 1) : ({one(f'{_PREFIX}.{fact}[i]')}))"


# one pass over the tokens, one branch per construct of the androguard module: a rewriter
def rewrite(source: str) -> Rewrite:  # noqa: C901, PLR0912, PLR0915
    """The compiled form of a rule that imports ``androguard`` (see the module docstring)."""
    tokens = _yara_source.tokenize(source)
    out: list[str] = []
    problems: list[Problem] = []
    calls = 0
    pos = 0
    i, n = 0, len(tokens)

    def problem(message: str, tok: Token) -> None:
        problems.append(Problem(message, tok.line, _column(source, tok.start)))

    def emit(start: int, end: int, text: str) -> None:
        nonlocal pos
        out.append(source[pos:start])
        out.append(_same_lines(source[start:end], text))
        pos = end

    nullable = matches_empty(
        t.text
        for k, t in enumerate(tokens)
        if t.kind == "regex" and k >= 3 and tokens[k - 1].text == "("
    )
    while i < n:
        tok = tokens[i]
        prev = tokens[i - 1].text if i else ""
        if (
            tok.text == "import"
            and i + 1 < n
            and tokens[i + 1].kind == "string"
            and unquote(tokens[i + 1].text) == MODULE
        ):
            # the module's facts come from the ``android`` global: no import any more
            emit(tok.start, tokens[i + 1].end, "")
            i += 2
            continue
        if tok.kind == "ident" and tok.text in _SANDBOX_MODULES and prev != ".":
            if i + 1 < n and tokens[i + 1].text == ".":
                problem(sandbox_reason(tok.text), tok)
            i += 1
            continue
        if tok.kind != "ident" or tok.text != MODULE or prev == ".":
            i += 1
            continue
        # androguard . name [ . sub ] [ ( arg ) ]
        if i + 2 >= n or tokens[i + 1].text != "." or tokens[i + 2].kind != "ident":
            problem("'androguard' must be followed by '.' and a name", tok)
            i += 1
            continue
        name = tokens[i + 2].text
        j = i + 3
        if name == "functionality":
            problem(FUNCTIONALITY_REASON, tok)
            i = j
            continue
        if name in INTEGERS:
            emit(tok.start, tokens[i + 2].end, f"{_PREFIX}.{name}")
            i = j
            continue
        if name == "certificate":
            if j + 1 >= n or tokens[j].text != "." or tokens[j + 1].kind != "ident":
                problem("androguard.certificate is not a value; call one of its functions", tok)
                i = j
                continue
            sub = tokens[j + 1].text
            if sub not in _CERTIFICATE:
                problem(f"androguard.certificate.{sub} is not in Koodous' androguard module", tok)
                i = j + 2
                continue
            fact, takes_regex, takes_string = _CERTIFICATE[sub]
            is_list, label, j = True, f"androguard.certificate.{sub}", j + 2
        elif name in _FUNCTIONS:
            fact, is_list, takes_regex, takes_string = _FUNCTIONS[name]
            label = f"androguard.{name}"
        else:
            problem(f"androguard.{name} is not in Koodous' androguard module", tok)
            i = j
            continue
        if j + 2 >= n or tokens[j].text != "(" or tokens[j + 2].text != ")":
            problem(f"{label} takes one regular expression or string in parentheses", tok)
            i = j
            continue
        arg = tokens[j + 1]
        if arg.kind == "regex" and takes_regex:
            if arg.text in nullable:
                problem(NULLABLE_REASON.format(pattern=arg.text), arg)
        elif arg.kind == "string" and takes_string:
            if fact == "cert_sha1":
                arg = _sha1_argument(arg)
        else:
            wanted = " or ".join(
                w
                for w, ok in (("a regular expression", takes_regex), ("a string", takes_string))
                if ok
            )
            problem(f"{label} takes {wanted}", arg)
            i = j + 3
            continue
        calls += 1
        emit(tok.start, tokens[j + 2].end, _test(fact, is_list, arg))
        i = j + 3
    out.append(source[pos:])
    return Rewrite("".join(out), problems, calls)


def _sha1_argument(arg: Token) -> Token:
    value = unquote(arg.text).replace(":", "")
    return Token(quote(value), arg.start, arg.end, arg.line, "string")
