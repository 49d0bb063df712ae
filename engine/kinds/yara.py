"""``yara``: one YARA rule, compiled with yara-x, over the APK, its manifest and each DEX.

The body is the rule's source text. A body holds exactly one rule that is not ``private``;
``private`` (and ``private global``) helper rules it needs may come with it, so that the body
compiles on its own. ``include`` is not allowed (a body cannot reach files). Koodous'
``androguard`` module is rewritten (``compiled_source``, ``engine.androguard``); imports of
modules that yara-x lacks (``droidbox``, the old ``file`` module) make the body invalid.

App facts as yara-x globals
---------------------------
Conditions can use one structure global, ``android``, set before every scan:

==========================  ========  =====================================================
``android.package``         string    manifest package name ("" if unknown)
``android.app_label``       string    application label ("" if unknown or a resource id)
``android.version_name``    string    versionName ("" if unknown)
``android.version_code``    integer   versionCode (0 if unknown)
``android.min_sdk``         integer   minSdkVersion (0 if unknown)
``android.target_sdk``      integer   targetSdkVersion (0 if unknown)
``android.permissions``     array     requested permission names (strings)
``android.permission_count``integer   how many permissions are requested
``android.cert_sha256``     array     SHA-256 of each signing certificate (lower-case hex)
``android.cert_count``      integer   how many signing certificates
``android.sha256``          string    SHA-256 of the whole APK/XAPK file
``android.file_kind``       string    what this scan looks at: "apk", "dex" or "manifest"
``android.file_name``       string    the DEX entry name ("classes2.dex"), the manifest
                                      entry name, or "" for the whole file
``android.androguard``      struct    the facts Koodous' androguard calls are rewritten to
                                      (``engine.androguard``)
==========================  ========  =====================================================

yara-x cannot hold an empty array, so an app without permissions (or certificates) has a
one-element array holding the empty string; test membership with
``for any p in android.permissions : (p == "android.permission.SEND_SMS")`` (the empty string
never equals a real name) and use the ``*_count`` fields for "has none".

Regular expressions are compiled with ``relaxed_re_syntax`` so that rules written for classic
YARA (which accepts ``\\R`` or a bare ``{``) keep working.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import yara_x

from engine import androguard
from engine.kinds import _yara_source
from engine.kinds.base import Issue, Kind, KindIndex, ValidationResult

GLOBAL_NAME = "android"
MAX_BODY_CHARS = 1_000_000
# modules yara-x has, but whose data only a sandbox or VirusTotal provides
NO_DATA_MODULES = {"cuckoo", "vt"}


def default_globals() -> dict[str, Any]:
    """The ``android`` structure with every field at its "unknown" value."""
    return {
        "package": "",
        "app_label": "",
        "version_name": "",
        "version_code": 0,
        "min_sdk": 0,
        "target_sdk": 0,
        "permissions": [""],
        "permission_count": 0,
        "cert_sha256": [""],
        "cert_count": 0,
        "sha256": "",
        "file_kind": "apk",
        "file_name": "",
        androguard.FACTS_FIELD: androguard.default_facts(),
    }


@cache
def available_modules() -> frozenset[str]:
    # module_names() exists at runtime but is missing from yara-x 1.23's type stubs
    return frozenset(yara_x.module_names())  # type: ignore[attr-defined]


def new_compiler() -> yara_x.Compiler:
    """A compiler set up exactly as the ruleset's, so that validation predicts compilation."""
    compiler = yara_x.Compiler(relaxed_re_syntax=True, includes_enabled=False)
    compiler.define_global(GLOBAL_NAME, default_globals())
    return compiler


def missing_module_message(module: str) -> str:
    return f"needs the '{module}' module, which yara-x does not have"


def compile_issues(compiler: yara_x.Compiler) -> tuple[list[Issue], list[Issue]]:
    """Errors and warnings collected by ``compiler``, as Issues with line and column."""
    return (
        [_issue(e) for e in compiler.errors()],
        [_issue(w) for w in compiler.warnings()],
    )


def _issue(report: dict[str, Any]) -> Issue:
    message = str(report.get("title") or report.get("text") or "yara-x error")
    labels = report.get("labels") or []
    label_text = labels[0].get("text") if labels else None
    if label_text and label_text not in message:
        message = f"{message}: {label_text}"
    code = report.get("code")
    if code:
        message = f"{message} [{code}]"
    line, column = report.get("line"), report.get("column")
    if line is None and labels:
        line, column = labels[0].get("line"), labels[0].get("column")
    return Issue(message, line, column)


_COMPILE_ERROR_AT = re.compile(r"-->\s*[^\n]*?:(\d+):(\d+)")


def _issue_from_exception(exc: Exception) -> Issue:
    text = str(exc)
    m = _COMPILE_ERROR_AT.search(text)
    first = text.splitlines()[0] if text else "yara-x error"
    return Issue(first, int(m.group(1)) if m else None, int(m.group(2)) if m else None)


def structure_issues(source: str) -> tuple[list[Issue], list[Issue], str | None]:
    """Checks yara-x cannot make: one public rule, no includes, known modules.

    Returns (errors, warnings, name of the public rule).
    """
    parsed = _yara_source.parse(source)
    errors: list[Issue] = []
    warnings: list[Issue] = []
    for path, line in parsed.includes:
        errors.append(
            Issue(f'include "{path}" is not allowed in a signature; import the file instead', line)
        )
    for module, line in parsed.imports:
        if module == androguard.MODULE:
            continue  # rewritten (compiled_source)
        if module not in available_modules():
            errors.append(Issue(missing_module_message(module), line, 1))
        elif module in NO_DATA_MODULES:
            warnings.append(
                Issue(
                    f"the '{module}' module reads reports the engine does not produce; "
                    "conditions on it are never true",
                    line,
                    1,
                )
            )
    public = [r for r in parsed.rules if not r.private]
    name = public[0].name if len(public) == 1 else None
    if len(public) > 1:
        names = ", ".join(r.name for r in public)
        errors.append(
            Issue(
                f"one rule per signature: found {len(public)} rules ({names}); "
                "mark helpers private or import the file to split it",
                public[1].line,
            )
        )
    elif not public and parsed.rules:
        errors.append(Issue("a signature needs one rule that is not private"))
    return errors, warnings, name


class YaraKind(Kind):
    name = "yara"
    label = "YARA rule"
    description = (
        "A YARA rule (yara-x dialect) run over the APK file, its binary manifest and each DEX. "
        "App facts such as android.package and android.permissions are available to "
        "conditions."
    )

    def validate(self, body: Any) -> ValidationResult:
        if not isinstance(body, str) or not body.strip():
            return ValidationResult.fail("a YARA body is the rule's source text")
        if len(body) > MAX_BODY_CHARS:
            return ValidationResult.fail(f"a YARA rule is limited to {MAX_BODY_CHARS} characters")
        source = normalise_source(body)
        errors, warnings, _ = structure_issues(source)
        if errors:
            return ValidationResult(body=None, errors=errors, warnings=warnings)
        compiled, errors = compiled_source(source)
        if errors:
            return ValidationResult(body=None, errors=errors, warnings=warnings)
        compiler = new_compiler()
        try:
            compiler.add_source(compiled, origin="signature")
        except yara_x.CompileError as exc:
            errors, more = compile_issues(compiler)
            return ValidationResult(
                body=None, errors=errors or [_issue_from_exception(exc)], warnings=warnings + more
            )
        errors, more = compile_issues(compiler)
        warnings += more
        if not errors and not _yara_source.parse(source).rules:
            errors.append(Issue("no rule found"))
        if errors:
            return ValidationResult(body=None, errors=errors, warnings=warnings)
        return ValidationResult(body=canonical_body(source), warnings=warnings)

    def dedup_key(self, normalised_body: Any) -> str:
        # comments and layout do not change what a rule matches
        return super().dedup_key(_yara_source.canonical_text(normalised_body))

    def new_index(self) -> KindIndex:
        # the index compiles and scans (engine.kinds.yara_match), which needs this module
        from engine.kinds.yara_match import YaraIndex

        return YaraIndex()

    def stix_pattern(self, body: Any) -> tuple[str, str] | None:
        return body, "yara"

    def csv_body(self, body: Any) -> str:
        return str(body)

    def yara_source(self, body: Any) -> str | None:
        return str(body)

    def summary(self, body: Any) -> str:
        parsed = _yara_source.parse(body)
        public = [r for r in parsed.rules if not r.private]
        name = public[0].name if public else "?"
        helpers = len(parsed.rules) - len(public)
        extra = f" (+{helpers} helper rule{'s' * (helpers != 1)})" if helpers else ""
        return f"yara rule {name}{extra}"


def compiled_source(source: str) -> tuple[str, list[Issue]]:
    """What yara-x compiles for a body, and what stops it from running here.

    A Koodous rule (one that imports ``androguard``) compiles as its rewritten form, in which
    each ``androguard`` call is a condition over ``android.androguard`` (``engine.androguard``);
    every other body compiles as written. Lines stay where they were, so yara-x's errors
    point at the line people wrote.
    """
    if not androguard.imports_module(source):
        return source, []
    result = androguard.rewrite(source)
    return result.source, [Issue(p.message, p.line, p.column) for p in result.problems]


def canonical_body(source: str) -> str:
    """Lay a valid body out as the importer does: used imports, helpers, then the rule.

    Comments outside rules and helpers nothing refers to are dropped; the layout of each
    rule's own text is kept as written.
    """
    parsed = _yara_source.parse(source)
    public = [r for r in parsed.rules if not r.private]
    if len(public) != 1:
        return source
    available = {r.name: r for r in parsed.rules}
    globals_ = [r for r in parsed.rules if r.is_global]
    imports = [m for m, _ in parsed.imports]
    return _yara_source.assemble(public[0], available, globals_, imports)


def normalise_source(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").strip() + "\n"


def rule_name(source: str) -> str | None:
    """The name of the body's public rule."""
    return structure_issues(source)[2]
