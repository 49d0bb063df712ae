"""Koodous' androguard rules on yara-x: the rewrite, its semantics, and the corpus's rules."""

from __future__ import annotations

import collections
import re
from pathlib import Path

import pytest

from engine import ENGINE_VERSION
from engine.androguard import facts, oneline_dn, qualified, rewrite
from engine.features import (
    AppContent,
    AppFeatures,
    Certificate,
    Component,
    IntentFilter,
    Manifest,
    RuleRecord,
)
from engine.importers import parse_path
from engine.kinds import _yara_source, get_kind
from engine.ruleset import compile_ruleset, match

YARA = get_kind("yara")
SHA1 = "d75a495c4d7897534cc9910a034820abd87d7f2f"


def app(**changes: object) -> AppFeatures:
    base = AppFeatures(
        engine_version=ENGINE_VERSION,
        file_type="apk",
        size=10,
        md5="1" * 32,
        sha1="2" * 40,
        sha256="3" * 64,
        manifest=Manifest(
            package="com.evil.app",
            version_name="2.0-beta",
            min_sdk=9,
            max_sdk=30,
            target_sdk=19,
            app_label="Flash Player",
            permissions=("android.permission.SEND_SMS",),
            declared_permissions=("com.evil.app.permission.C2D",),
            components=(
                Component(
                    "activity",
                    ".Main",
                    intent_filters=(
                        IntentFilter(
                            actions=("android.intent.action.MAIN",),
                            categories=("android.intent.category.LAUNCHER",),
                        ),
                    ),
                ),
                Component("service", "Sync"),
                Component(
                    "receiver",
                    "com.evil.app.Boot",
                    intent_filters=(
                        IntentFilter(actions=("android.intent.action.BOOT_COMPLETED",)),
                    ),
                ),
            ),
        ),
        certificates=(
            Certificate(
                sha256="5" * 64,
                sha1=SHA1,
                subject="CN=John Walker,O=Whiskey co,C=UK",
                issuer="CN=John Walker,O=Whiskey co,C=UK",
                serial="1",
                not_before="2016-01-01T00:00:00Z",
                not_after="2043-01-01T00:00:00Z",
                subject_dn="/C=UK/O=Whiskey co/CN=John Walker",
                issuer_dn="/C=UK/O=Whiskey co/CN=John Walker",
            ),
        ),
        url_strings=("http://10.0.0.2/gate.php", "https://pay.example.org/x"),
    )
    fields = {**{f: getattr(base, f) for f in base.__dataclass_fields__}, **changes}
    return AppFeatures(**fields)


def hits(condition: str, features: AppFeatures, tmp_path: Path) -> bool:
    """Whether a Koodous rule with ``condition`` matches ``features`` (compiled, matched)."""
    body = f'import "androguard"\nrule k {{ condition: {condition} }}'
    result = YARA.validate(body)
    assert result.errors == [], result.errors
    record = RuleRecord(1, 1, "Andr.T.F-1-1", "yara", result.body, "malicious")
    ruleset = compile_ruleset([record])
    assert ruleset.errors == []
    apk = tmp_path / "a.apk"
    apk.write_bytes(b"PK")
    return bool(match(features, ruleset, AppContent(path=str(apk))))


# --------------------------------------------------------------------------------------------
# semantics (androguard.c)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        # a regular expression searches anywhere; a string compares whole, any case
        ("androguard.package_name(/evil/)", True),
        ('androguard.package_name("COM.EVIL.APP")', True),
        ('androguard.package_name("com.evil")', False),
        ("androguard.app_name(/flash player/i)", True),
        ("androguard.app_name(/flash player/)", False),
        ('androguard.displayed_version("2.0-BETA")', True),
        # components are package-qualified as Android resolves them
        ('androguard.activity("com.evil.app.Main")', True),
        ("androguard.main_activity(/app\\.Main$/)", True),
        ('androguard.service("com.evil.app.sync")', True),
        ("androguard.receiver(/Boot/)", True),
        ('androguard.filter("android.intent.action.BOOT_COMPLETED")', True),
        ("androguard.filter(/LAUNCHER/)", True),
        ("androguard.filter(/SMS_RECEIVED/)", False),
        # URLs whatever their host
        ("androguard.url(/10\\.0\\.0\\.2/)", True),
        ('androguard.url("HTTPS://pay.example.org/x")', True),
        # permissions: requested and declared ("new") ones; the number counts both
        ("androguard.permission(/SEND_SMS/)", True),
        ("androguard.permission(/C2D/)", True),
        ("androguard.permission(/READ_SMS/)", False),
        ("androguard.permissions_number == 2", True),
        ("androguard.min_sdk == 9 and androguard.max_sdk == 30", True),
        ("androguard.target_sdk < 21", True),
        # certificate: sha1 with or without colons, any case; names in OpenSSL's form
        (
            'androguard.certificate.sha1("D7:5A:49:5C:4D:78:97:53:4C:C9:91:0A:03:48:20:AB:D8:7D:7F:2F")',
            True,
        ),
        (f'androguard.certificate.sha1("{SHA1.upper()}")', True),
        ('androguard.certificate.sha1("D7:5A")', False),
        ("androguard.certificate.issuer(/\\/C=UK\\/O=Whiskey co\\/CN=John Walker/)", True),
        ("androguard.certificate.subject(/Whiskey/)", True),
        ("androguard.certificate.not_after(/^2043/)", True),
        ('androguard.certificate.not_before("2016-01-01T00:00:00Z")', True),
    ],
)
def test_each_call_means_what_it_means_on_koodous(
    condition: str, expected: bool, tmp_path: Path
) -> None:
    assert hits(condition, app(), tmp_path) is expected


@pytest.mark.parametrize(
    "condition",
    [
        "androguard.package_name(/./)",
        'androguard.package_name("")',
        "androguard.app_name(/./)",
        "androguard.main_activity(/./)",
        "androguard.activity(/./)",
        "androguard.service(/./)",
        "androguard.receiver(/./)",
        "androguard.filter(/./)",
        "androguard.url(/./)",
        "androguard.permission(/./)",
        'androguard.certificate.sha1("")',
        "androguard.certificate.issuer(/./)",
        "androguard.displayed_version(/./)",
        "androguard.min_sdk != 0 or androguard.max_sdk != 0 or androguard.target_sdk != 0",
        "androguard.permissions_number != 0",
    ],
)
def test_what_an_app_lacks_is_false_or_zero(condition: str, tmp_path: Path) -> None:
    bare = AppFeatures(
        engine_version=ENGINE_VERSION, file_type="apk", size=1, md5="", sha1="", sha256=""
    )
    assert hits(condition, bare, tmp_path) is False
    assert hits(f"not ({condition})", bare, tmp_path) is True


def test_names_are_qualified_like_android_does() -> None:
    assert qualified(".Main", "a.b") == "a.b.Main"
    assert qualified("Main", "a.b") == "a.b.Main"
    assert qualified("x.y.Main", "a.b") == "x.y.Main"
    assert oneline_dn("CN=a\\, b,O=c,C=US") == "/C=US/O=c/CN=a, b"


def test_facts_of_a_bare_app_never_hold_an_empty_array() -> None:
    bare = AppFeatures(
        engine_version=ENGINE_VERSION, file_type="apk", size=1, md5="", sha1="", sha256=""
    )
    values = facts(bare)
    assert all(v != [] for v in values.values())
    assert values["activities"] == [""]
    assert values["activities_count"] == 0


# --------------------------------------------------------------------------------------------
# the rewrite works on tokens and keeps lines


def test_strings_comments_and_regexes_are_left_alone() -> None:
    source = (
        'import "androguard"\n'
        "rule r {\n"
        "  strings:\n"
        '    $s = "androguard.url(/x/) \\" /* not a comment"\n'
        "    $re = /androguard\\.url\\(\\/x\\/\\)/\n"
        "  condition:\n"
        "    // androguard.activity(/commented/)\n"
        "    /* androguard.service(/commented/) */\n"
        '    $s and $re and androguard.url(/a\\/b"c\\)/) and\n'
        "    androguard.package_name(\n"
        '      "x")\n'
        "}\n"
    )
    result = rewrite(source)
    assert result.problems == []
    assert result.calls == 2
    out = result.source
    assert out.count("\n") == source.count("\n")  # every line where it was
    assert 'import "androguard"' not in out
    assert '$s = "androguard.url(/x/) \\" /* not a comment"' in out
    assert "$re = /androguard\\.url\\(\\/x\\/\\)/" in out
    assert "// androguard.activity(/commented/)" in out
    assert "/* androguard.service(/commented/) */" in out
    assert 'android.androguard.urls[i] matches /a\\/b"c\\)/' in out
    assert 'android.androguard.package_name iequals "x"' in out
    assert YARA.validate(source).errors == []


def test_errors_point_at_the_line_people_wrote() -> None:
    source = 'import "androguard"\nrule r {\n condition:\n  androguard.url(/x/) and\n  nope\n}'
    (error,) = YARA.validate(source).errors
    assert error.line == 5
    assert "unknown identifier `nope`" in error.message


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ("androguard.functionality.socket.code(/x/)", "needs androguard.functionality"),
        ("androguard.number_of_receivers > 2", "androguard.number_of_receivers is not in"),
        ('androguard.permission("android.permission.SEND_SMS")', "takes a regular expression"),
        ('androguard.certificate.issuer("CN=x")', "takes a regular expression"),
        ("androguard.app_name(/x*/)", "also matches the empty string"),
        (
            "androguard.url(android.package)",
            "takes one regular expression or string in parentheses",
        ),
        ("androguard.certificate.serial(/1/)", "certificate.serial is not in"),
    ],
)
def test_what_cannot_run_here_is_refused_with_a_reason(condition: str, reason: str) -> None:
    result = YARA.validate(f'import "androguard"\nrule r {{ condition: {condition} }}')
    assert result.errors, condition
    assert reason in result.errors[0].message
    assert result.errors[0].line == 2


def test_sandbox_modules_make_a_koodous_rule_invalid() -> None:
    source = 'import "androguard"\nimport "cuckoo"\nrule r { condition: ' + (
        "androguard.url(/x/) or cuckoo.network.dns_lookup(/evil/) }"
    )
    (error,) = YARA.validate(source).errors
    assert (
        error.message == "needs the 'cuckoo' module: a sandbox report the engine does not produce"
    )


def test_the_body_stays_the_text_people_wrote() -> None:
    source = 'import "androguard"\n\nrule r { condition: androguard.url(/x/) }\n'
    result = YARA.validate(source)
    assert result.body == source
    assert YARA.summary(result.body) == "yara rule r"


# --------------------------------------------------------------------------------------------
# the corpus's Koodous rules


def _module_uses(text: str) -> set[str]:
    tokens = _yara_source.tokenize(text)
    used = set()
    for i, t in enumerate(tokens[:-1]):
        if (
            t.kind == "ident"
            and tokens[i + 1].text == "."
            and (i == 0 or tokens[i - 1].text != ".")
        ):
            used.add(t.text)
            if (
                t.text == "androguard"
                and i + 2 < len(tokens)
                and tokens[i + 2].text == "functionality"
            ):
                used.add("androguard.functionality")
    return used


def _androguard_files(corpus: Path) -> list[Path]:
    files = []
    for path in sorted((corpus / "yara").rglob("*")):
        # the importer reads .yar and .yara (Yara-Rules' Android_fake_mario_app has neither)
        if path.suffix in (".yar", ".yara"):
            parsed = _yara_source.parse(path.read_text(encoding="utf-8", errors="replace"))
            if any(m == "androguard" for m, _ in parsed.imports):
                files.append(path)
    return files


# Each reason, exactly; a new reason or a changed count is a behaviour change to look at.
KOODOUS_OUTCOMES = {
    "runs": 455,
    "needs the 'cuckoo' module: a sandbox report the engine does not produce": 8,
    "needs androguard.functionality, the results of Koodous' code analysis, which the engine "
    "does not produce": 8,
    # permission() takes a regular expression on Koodous too: these never compiled there
    "androguard.permission takes a regular expression": 7,
    "needs the 'file' module, which yara-x does not have": 3,
    "needs the 'droidbox' module, which yara-x does not have": 2,
    # random-adware (954) declares its string outside the rule
    "unknown pattern `$a`: this pattern is not declared in the `strings` section [E025]": 1,
}


def test_every_koodous_rule_runs_or_is_refused_for_a_named_reason(corpus: Path) -> None:
    # given every rule of every corpus file that imports androguard
    files = _androguard_files(corpus)
    assert len(files) == 371
    outcomes: collections.Counter[str] = collections.Counter()
    static_rules: dict[str, bool] = {}  # distinct static-only rule -> runs
    for path in files:
        static = not _module_uses(path.read_text(encoding="utf-8", errors="replace")) & {
            "cuckoo",
            "droidbox",
            "file",
            "androguard.functionality",
        }
        for candidate in parse_path(path, root=corpus / "yara"):
            assert candidate.kind == "yara", candidate
            assert candidate.text, candidate
            if candidate.ok:
                outcomes["runs"] += 1
            else:
                assert candidate.error is not None
                outcomes[re.sub(r"^line \d+(, column \d+)?: ", "", candidate.error)] += 1
            if static:
                key = YARA.dedup_key(candidate.text)
                static_rules[key] = static_rules.get(key, False) or candidate.ok
    # then each either runs or is refused for a named reason, counted exactly
    assert dict(outcomes) == KOODOUS_OUTCOMES
    # and the static-only ones (no sandbox, no code analysis) run but for a handful
    assert len(static_rules) == 434
    assert sum(static_rules.values()) >= 400
    assert sum(static_rules.values()) == 427


def test_every_running_koodous_rule_compiles_into_one_ruleset(corpus: Path) -> None:
    records: list[RuleRecord] = []
    for path in _androguard_files(corpus):
        for candidate in parse_path(path, root=corpus / "yara"):
            if candidate.ok:
                n = len(records) + 1
                records.append(
                    RuleRecord(n, 1, f"Andr.K.F-{n}-1", "yara", candidate.body, "suspicious")
                )
    ruleset = compile_ruleset(records)
    assert ruleset.errors == []
    assert ruleset.counts() == {"yara": 455}


def test_export_gives_back_the_text_as_written() -> None:
    from engine.exporters import to_yara
    from engine.importers import parse_bytes

    source = (
        'import "androguard"\n\nrule fake_bank\n{\n\tcondition:\n'
        '\t\tandroguard.app_name(/bank/i) and not androguard.certificate.sha1("AB:CD")\n}\n'
    )
    body = YARA.validate(source).body
    assert body == source
    exported = to_yara([RuleRecord(1, 1, "Andr.B.F-1-1", "yara", body, "malicious")])
    assert 'import "androguard"' in exported
    assert 'androguard.app_name(/bank/i) and not androguard.certificate.sha1("AB:CD")' in exported
    (again,) = parse_bytes("export.yar", exported.encode())
    assert again.ok
    assert YARA.dedup_key(again.body) == YARA.dedup_key(body)


@pytest.mark.parametrize(
    ("condition", "reads"),
    [
        ("androguard.url(/x/) and androguard.min_sdk < 9", False),
        ('android.package == "x"', False),
        ('android.file_kind == "dex" and androguard.url(/x/)', True),
        ("filesize < 10 and androguard.url(/x/)", True),
        ("uint16(0) == 0x4b50", True),
    ],
)
def test_which_rules_read_bytes(condition: str, reads: bool) -> None:
    from engine.kinds.yara import compiled_source
    from engine.ruleset import reads_bytes

    body = YARA.validate(f'import "androguard"\nrule r {{ condition: {condition} }}').body
    assert body is not None
    assert reads_bytes(compiled_source(body)[0]) is reads
    with_strings = YARA.validate('rule s { strings: $a = "x" condition: $a }').body
    assert with_strings is not None
    assert reads_bytes(with_strings) is True


def test_facts_only_rules_answer_from_stored_facts_as_from_the_bytes(corpus: Path) -> None:
    from engine.analyze import analyze_with_content
    from engine.errors import AnalysisError
    from engine.ruleset import FactsScanner, android_globals

    # given the corpus's Koodous rules that read no bytes
    records: list[RuleRecord] = []
    for path in _androguard_files(corpus):
        for candidate in parse_path(path, root=corpus / "yara"):
            if candidate.ok:
                n = len(records) + 1
                records.append(
                    RuleRecord(n, 1, f"Andr.K.F-{n}-1", "yara", candidate.body, "suspicious")
                )
    everything = compile_ruleset(records)
    facts_only = [r for i, r in enumerate(records) if i not in everything.yara_byte_readers]
    # (the 21 rules with anonymous strings, `$ = "…"` … `1 of them`, read bytes)
    assert len(facts_only) == 221
    ruleset = compile_ruleset(facts_only)
    assert ruleset.yara_facts_only
    scanner = FactsScanner(ruleset)
    # then every corpus APK gets the same matches from its facts as from its bytes
    compared = 0
    for apk in sorted((corpus / "apks").glob("*")):
        try:
            features, content = analyze_with_content(apk)
        except AnalysisError:
            continue
        from_bytes = {m.signature_id for m in match(features, ruleset, content)}
        assert {m.signature_id for m in scanner.match(android_globals(features))} == from_bytes
        compared += 1
    assert compared >= 35
