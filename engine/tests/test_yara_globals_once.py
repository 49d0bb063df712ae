"""The ``android`` facts are handed to yara-x once per app, not per part, when no rule can
tell the parts apart (engine.ruleset.reads_globals): the same matches either way."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import pytest

from engine.analyze import analyze_with_content
from engine.errors import AnalysisError
from engine.features import AppContent
from engine.ruleset import android_globals, compile_ruleset, match_yara, reads_globals
from engine.tests.test_literal_split import _yara


@pytest.mark.parametrize(
    ("source", "reads"),
    [
        ('rule r { condition: android.package == "x" }', (True, False)),
        ("rule r { condition: for any i in (0..android.cert_count): (true) }", (True, False)),
        ('rule r { condition: android.file_kind == "dex" }', (True, True)),
        ('rule r { condition: android . file_name == "classes2.dex" }', (True, True)),
        ('rule r { strings: $a = "eval" condition: $a }', (False, False)),
        ('rule r : android { strings: $a = "eval" condition: $a }', (True, False)),  # a tag
        ('rule android_x { strings: $a = "eval" condition: $a }', (False, False)),
    ],
)
def test_what_a_rule_may_read_of_the_android_global(source: str, reads: tuple[bool, bool]) -> None:
    assert reads_globals(source) == reads


def test_facts_once_per_app_match_as_facts_per_part(corpus: Path) -> None:
    # given a rule on strings and facts (no part names), and the same handed facts per part
    source = (
        'rule r { strings: $a = "Landroid/app/Activity" condition: $a and '
        'android.package != "" and android.permission_count > 1 }'
    )
    ruleset = compile_ruleset([_yara(source)])
    assert ruleset.yara_global_readers == {0}
    assert not ruleset.yara_part_readers
    per_part = copy.copy(ruleset)
    per_part.yara_part_readers = {0}

    # when every corpus app is matched both ways, hunt-style and scan-style
    contents: list[AppContent] = []
    for path in sorted((corpus / "apks").iterdir()):
        try:
            features, content = analyze_with_content(path)
        except AnalysisError:
            continue
        contents.append(replace(content, facts=android_globals(features)))
    for first_hit in (True, False):
        once = [match_yara(c, ruleset, first_hit=first_hit) for c in contents]
        each = [match_yara(c, per_part, first_hit=first_hit) for c in contents]

        # then they agree, and the facts really decide some apps
        assert once == each
        assert 0 < sum(1 for m in once if m) < len(contents)
