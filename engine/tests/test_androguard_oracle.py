"""Every androguard call of the corpus's Koodous rules, run both ways over every corpus APK.

One way is ours: the call rewritten (engine/androguard.py), compiled by yara-x and matched
against the facts our own analysis extracts. The other is an evaluator written here from
``androguard.c``'s semantics in plain Python (``re`` for the patterns), over the facts
androguard's own parser reads from the same APK. Both must give the same hits.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.analyze import analyze_with_content
from engine.errors import AnalysisError
from engine.features import RuleRecord
from engine.kinds import _yara_source, get_kind
from engine.ruleset import compile_ruleset, match

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
YARA = get_kind("yara")


@dataclass(frozen=True)
class Call:
    text: str  # as written, e.g. androguard.permission(/SEND_SMS/)
    function: str  # "permission", "certificate.sha1"
    argument: str  # the regex or string token as written


def corpus_calls() -> list[Call]:
    """Each distinct ``androguard.f(arg)`` call of the corpus, found on tokens."""
    calls: dict[str, Call] = {}
    for path in sorted((CORPUS / "yara").rglob("*.yar*")):
        tokens = _yara_source.tokenize(path.read_text(encoding="utf-8", errors="replace"))
        for i, tok in enumerate(tokens):
            if tok.text != "androguard" or (i and tokens[i - 1].text == "."):
                continue
            j, name = i + 1, []
            while j + 1 < len(tokens) and tokens[j].text == "." and tokens[j + 1].kind == "ident":
                name.append(tokens[j + 1].text)
                j += 2
            if j + 2 < len(tokens) and tokens[j].text == "(" and tokens[j + 2].text == ")":
                arg = tokens[j + 1]
                if arg.kind in ("regex", "string") and name[0] != "functionality":
                    text = f"androguard.{'.'.join(name)}({arg.text})"
                    calls.setdefault(text, Call(text, ".".join(name), arg.text))
    return sorted(calls.values(), key=lambda c: c.text)


# --------------------------------------------------------------------------------------------
# the oracle: androguard's parse, androguard.c's semantics


_DN_NAMES = {
    "country_name": "C",
    "state_or_province_name": "ST",
    "locality_name": "L",
    "organization_name": "O",
    "organizational_unit_name": "OU",
    "common_name": "CN",
    "email_address": "emailAddress",
    "serial_number": "serialNumber",
}
ANDROID_NAME = "{http://schemas.android.com/apk/res/android}name"
_URL = re.compile(r"\b(?:https?|ftp|wss?)://[^\s\"'<>\\^`{|}]+", re.IGNORECASE)


def _dn(name: Any) -> str:
    out = []
    for rdn in name.chosen:
        for attr in rdn:
            key = attr["type"].native
            out.append(f"/{_DN_NAMES.get(key, key)}={attr['value'].native}")
    return "".join(out)


def _int(value: Any) -> int:
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def androguard_facts(path: Path) -> dict[str, Any] | None:
    from androguard.core.apk import APK
    from androguard.core.dex import DEX
    from loguru import logger

    logger.disable("androguard")
    try:
        apk = APK(str(path))
        if not apk.get_package():
            return None
        filters: list[str] = []
        for kind in ("activity", "service", "receiver"):
            names = {
                "activity": apk.get_activities,
                "service": apk.get_services,
                "receiver": apk.get_receivers,
            }[kind]()
            for name in names:
                found = apk.get_intent_filters(kind, name)
                filters += found.get("action", []) + found.get("category", [])
        strings: list[str] = []
        for dex in apk.get_all_dex():
            strings += [str(s) for s in DEX(dex).get_strings()]
        urls = {m.group(0).rstrip(".,;:!?)]}'\"") for s in strings for m in _URL.finditer(s)}
        certs = apk.get_certificates()
        label = apk.get_app_name() or ""
        # androguard lists <uses-permission-sdk-23> apart; we count them as requested (they
        # are: on Android 6 and later), a difference docs/signatures.md names
        sdk23 = [
            e.get(ANDROID_NAME)
            for tag in ("uses-permission-sdk-23", "uses-permission-sdk-m")
            for e in apk.get_android_manifest_xml().iter(tag)
            if e.get(ANDROID_NAME)
        ]
        # androguard.c: permissions then new_permissions, counted apart (one may be both)
        requested = list(dict.fromkeys([*apk.get_permissions(), *sdk23]))
        permissions = requested + list(apk.get_declared_permissions())
        return {
            "package_name": [apk.get_package()],
            "app_name": [label] if label and not label.startswith("@") else [],
            "displayed_version": [apk.get_androidversion_name() or ""],
            "main_activity": [apk.get_main_activity() or ""],
            "activity": apk.get_activities(),
            "service": apk.get_services(),
            "receiver": apk.get_receivers(),
            "filter": filters,
            "url": sorted(urls),
            "permission": permissions,
            "certificate.sha1": [c.sha1.hex() for c in certs],
            "certificate.issuer": [_dn(c.issuer) for c in certs],
            "certificate.subject": [_dn(c.subject) for c in certs],
            "certificate.not_before": [
                c["tbs_certificate"]["validity"]["not_before"].native.strftime("%Y-%m-%dT%H:%M:%SZ")
                for c in certs
            ],
            "certificate.not_after": [
                c["tbs_certificate"]["validity"]["not_after"].native.strftime("%Y-%m-%dT%H:%M:%SZ")
                for c in certs
            ],
            "integers": {
                "min_sdk": _int(apk.get_min_sdk_version()),
                "max_sdk": _int(apk.get_max_sdk_version()),
                "target_sdk": _int(apk.get_target_sdk_version()),
                "permissions_number": len(permissions),
            },
        }
    except Exception:
        return None  # androguard cannot read it (test_oracle_androguard covers these files)


def python_pattern(token: str) -> re.Pattern[str] | None:
    body, _, flags = token[1:].rpartition("/")
    try:
        return re.compile(
            body,
            (re.IGNORECASE if "i" in flags else 0) | (re.DOTALL if "s" in flags else 0) | re.ASCII,
        )
    except re.error:
        return None


def yara_string(token: str) -> str:
    return re.sub(r"\\(x[0-9a-fA-F]{2}|.)", _escape, token[1:-1])


def _escape(m: re.Match[str]) -> str:
    e = m.group(1)
    if e.startswith("x") and len(e) == 3:
        return chr(int(e[1:], 16))
    return {"n": "\n", "t": "\t", "r": "\r"}.get(e, e)


def oracle(call: Call) -> Callable[[dict[str, Any]], bool] | None:
    """``androguard.c`` for one call: a regex must find a non-empty match somewhere in a
    value; a string must equal a value ignoring case (sha1: its colons dropped first)."""
    if call.argument.startswith("/"):
        pattern = python_pattern(call.argument)
        if pattern is None:
            return None

        def regex_test(facts: dict[str, Any]) -> bool:
            for value in facts[call.function]:
                m = pattern.search(value)
                if m is not None and m.end() > m.start():
                    return True
            return False

        return regex_test
    wanted = yara_string(call.argument)
    if call.function == "certificate.sha1":
        wanted = wanted.replace(":", "")

    def string_test(facts: dict[str, Any]) -> bool:
        return any(v and v.lower() == wanted.lower() for v in facts[call.function])

    return string_test


# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def apks() -> dict[str, dict[str, Any]]:
    if not CORPUS.is_dir():
        pytest.fail(f"the test corpus is missing: {CORPUS}")
    found = {}
    for path in sorted((CORPUS / "apks").glob("*")):
        facts = androguard_facts(path)
        if facts is not None:
            found[path.name] = facts
    assert len(found) >= 30  # a comparison over most of the corpus, or none worth having
    return found


def test_every_corpus_call_gives_androguards_answer_on_every_corpus_apk(
    apks: dict[str, dict[str, Any]],
) -> None:
    # given every distinct call of the corpus that runs here and that Python's re can read
    calls = corpus_calls()
    runnable: list[tuple[Call, Callable[[dict[str, Any]], bool]]] = []
    records: list[RuleRecord] = []
    refused: list[str] = []
    unreadable: list[str] = []
    for call in calls:
        result = YARA.validate(f'import "androguard"\nrule c {{ condition: {call.text} }}')
        test = oracle(call)
        if result.errors:
            refused.append(f"{call.function}: {result.errors[0].message}")
            continue
        if test is None:
            unreadable.append(call.text)
            continue
        runnable.append((call, test))
        n = len(records) + 1
        records.append(RuleRecord(n, 1, f"Andr.C.F-{n}-1", "yara", result.body, "suspicious"))
    assert len(calls) == 1342
    # refused here as on Koodous: permission() and main_activity() take regular expressions
    # only, and the module has no provider()
    assert sorted(set(refused)) == [
        "main_activity: androguard.main_activity takes a regular expression",
        "permission: androguard.permission takes a regular expression",
        "provider: androguard.provider is not in Koodous' androguard module",
    ]
    assert len(refused) == 44
    # /api.\mono\.ir/: "\m" is no escape Python's re knows (yara-x reads it as "m")
    assert unreadable == ["androguard.url(/api.\\mono\\.ir/)"]
    ruleset = compile_ruleset(records)
    assert ruleset.errors == []
    # when each is run both ways over every APK androguard reads
    ours: set[tuple[str, str]] = set()
    theirs: set[tuple[str, str]] = set()
    for name, facts in apks.items():
        try:
            features, content = analyze_with_content(CORPUS / "apks" / name)
        except AnalysisError as exc:
            pytest.fail(f"androguard reads {name} but we refuse it: {exc}")
        for m in match(features, ruleset, content):
            ours.add((runnable[m.signature_id - 1][0].text, name))
        for call, test in runnable:
            if test(facts):
                theirs.add((call.text, name))
    # then the hits are the same, and there are hits to compare
    assert sorted(ours - theirs) == []
    assert sorted(theirs - ours) == []
    assert len(theirs) >= 200
    assert {c.split("(")[0] for c, _ in theirs} >= {
        "androguard.filter",
        "androguard.package_name",
        "androguard.permission",
        "androguard.receiver",
    }


def test_the_integers_are_androguards(apks: dict[str, dict[str, Any]]) -> None:
    from engine.androguard import INTEGERS, facts

    for name, reference in apks.items():
        ours = facts(analyze_with_content(CORPUS / "apks" / name)[0])
        assert {k: ours[k] for k in INTEGERS} == reference["integers"], name
