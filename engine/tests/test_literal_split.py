"""A regex-heavy rule hunted through its literals (engine.literal_split) finds the same apps,
with the same evidence, as yara-x over the whole rule: over every corpus app and part."""

from __future__ import annotations

import copy
import pickle
from dataclasses import replace
from pathlib import Path

import pytest

from engine.analyze import analyze_with_content
from engine.errors import AnalysisError
from engine.features import AppContent, RuleRecord
from engine.kinds import get_kind
from engine.literal_split import max_windows, plan
from engine.ruleset import Ruleset, android_globals, compile_ruleset, match_yara


def _meterpreter(corpus: Path) -> str:
    text = (corpus / "yara" / "Yara-Rules" / "Android" / "Android_Metasploit.yar").read_text()
    return text[: text.index("rule android_metasploit")]


@pytest.fixture(scope="module")
def contents(corpus: Path) -> list[AppContent]:
    out = []
    for path in sorted((corpus / "apks").iterdir()):
        try:
            features, content = analyze_with_content(path)
        except AnalysisError:
            continue  # not an app: a hunt scans nothing of it
        out.append(replace(content, facts=android_globals(features)))
    return out


def _yara(source: str, sig_id: int = 1) -> RuleRecord:
    result = get_kind("yara").validate(source)
    assert result.errors == [], result.errors
    return RuleRecord(sig_id, 1, f"Andr.Test.Fam-{sig_id}-1", "yara", result.body, "malicious")


def _without_plan(ruleset: Ruleset) -> Ruleset:
    whole = copy.copy(ruleset)
    whole.yara_split = None
    return whole


# rules of the shape; the first ones have a regex yara-x expands, and get a plan by default
SLOW = {
    "/;.Sk/ alone": "rule r { strings: $a = /;.Sk/ condition: $a }",
    "two regexes, or": "rule r : android { strings: $a = /ma.n/ $b = /Lj.va/ condition: $a or $b }",
    "never there": "rule r { strings: $a = /qz.xjw/ condition: $a }",
}
RULES = {
    **SLOW,
    "regex and literal": 'rule r { strings: $a = /andr.id/ $b = "eval" condition: any of them }',
    "escaped slash": r"rule r { strings: $a = /Landroid\/app\/Act.vity/ condition: $a }",
    "literal at the end": "rule r { strings: $a = /..ctivity/ condition: $a }",
    "1 of a set": 'rule r { strings: $x1 = /b.se64/ $x2 = "zzqqzz" condition: 1 of ($x*) }',
    "in the ZIP only": r"rule r { strings: $a = /META-INF\/MAN.FEST/ condition: $a }",
}


@pytest.mark.parametrize("name", ["android_meterpreter", *RULES])
def test_a_hunt_through_the_literals_finds_what_yara_x_finds(
    corpus: Path, contents: list[AppContent], name: str
) -> None:
    # given a lone rule of the shape, compiled with its plan, and the same without it
    source = _meterpreter(corpus) if name == "android_meterpreter" else RULES[name]
    ruleset = compile_ruleset([_yara(source)])
    assert (ruleset.yara_split is not None) == (name == "android_meterpreter" or name in SLOW)
    ruleset.yara_split = plan(source, only_if_slow=False)
    assert ruleset.yara_split is not None
    whole = _without_plan(ruleset)

    # when every corpus app is hunted both ways
    split = [match_yara(c, ruleset, first_hit=True) for c in contents]
    usual = [match_yara(c, whole, first_hit=True) for c in contents]

    # then the same apps match, with the same evidence (strings, offsets, part)
    assert split == usual
    if name == "android_meterpreter":  # docs/retrohunts.md: the 9 benign APKs and the XAPK
        assert sum(1 for m in split if m) == 10
    if name == "never there":
        assert not any(split)


def test_a_literal_found_too_often_falls_back_to_the_whole_rule(
    contents: list[AppContent],
) -> None:
    # given a DEX with more "Sk" than worth verifying, /;.Sk/ matching only at the end
    ruleset = compile_ruleset([_yara("rule r { strings: $a = /;.Sk/ condition: $a }")])
    assert ruleset.yara_split is not None
    data = b"Sk" * 100 + b";xSk"
    assert max_windows(len(data)) < 101
    content = replace(contents[0], dex=(("classes.dex", data),))

    # then the plan gives up on it, and the hunt still finds the match the usual way
    assert ruleset.yara_split.first_matches(data, content.path, 60) is None
    found = match_yara(content, ruleset, first_hit=True)
    assert found == match_yara(content, _without_plan(ruleset), first_hit=True)
    assert found
    assert found[0].evidence == (f"yara: $a at {len(data) - 4:#x} in classes.dex",)


@pytest.mark.parametrize(
    "source",
    [
        'rule r { strings: $a = /;.Sk/ $b = "eval" nocase condition: any of them }',
        'rule r { strings: $a = /;.Sk/ $b = "eval" wide condition: any of them }',
        "rule r { strings: $a = /;.Sk/i condition: $a }",
        "rule r { strings: $a = /;.Sk/s condition: $a }",
        'rule r { strings: $a = /;.Sk/ $b = "eval" condition: all of them }',
        "rule r { strings: $a = /;.Sk/ condition: #a > 2 }",
        "rule r { strings: $a = /;.Sk/ condition: $a and filesize < 1000 }",
        "rule r { strings: $a = /;.Sk/ condition: not $a }",
        "rule r { strings: $a = /;.Sk/ condition: $a at 0 }",
        'rule r { strings: $a = /;.Sk/ condition: $a or android.package == "x" }',
        "rule r { strings: $a = /;.+Sk/ condition: $a }",
        "rule r { strings: $a = /;[a-z]Sk/ condition: $a }",
        "rule r { strings: $a = /(ab|cd)ef/ condition: $a }",
        "rule r { strings: $a = /^evil/ condition: $a }",
        r"rule r { strings: $a = /\bevil/ condition: $a }",
        "rule r { strings: $a = /;.S/ condition: $a }",  # no run of two known bytes
        "rule r { strings: $a = /andr.id/ condition: $a }",  # "andr": yara-x is fast on it
        "rule r { strings: $a = { 3B ?? 53 6B } condition: $a }",
        'rule r { strings: $a = "eval" condition: $a }',  # literals only: yara-x is fast
        'import "math"\nrule r { strings: $a = /;.Sk/ condition: $a }',
        "private rule r { strings: $a = /;.Sk/ condition: $a }",
        "rule r { strings: $a = /;.Sk/ condition: $a }\nrule q { condition: r }",
    ],
)
def test_other_shapes_get_no_plan(source: str) -> None:
    assert plan(source) is None


def test_the_plan_is_only_for_a_lone_yara_record_and_pickles(corpus: Path) -> None:
    meterpreter = _yara(_meterpreter(corpus))
    other = _yara('rule s { strings: $a = "eval" condition: $a }', 2)
    alone = compile_ruleset([meterpreter])
    assert alone.yara_split is not None
    assert compile_ruleset([meterpreter, other]).yara_split is None
    assert pickle.loads(pickle.dumps(alone)).yara_split == alone.yara_split  # noqa: S301
