"""yara: compilation through yara-x, positions of errors, one rule per signature."""

import time

from engine.kinds import get_kind

YARA = get_kind("yara")


def test_valid_rule_using_app_globals():
    src = 'rule r { condition: android.package == "com.x" and android.min_sdk > 20 }'
    result = YARA.validate(src)
    assert result.errors == []
    assert result.body == src + "\n"
    assert YARA.summary(result.body) == "yara rule r"


def test_error_carries_line_and_column():
    result = YARA.validate("rule r {\n  condition:\n    nope\n}")
    (error,) = result.errors
    assert (error.line, error.column) == (3, 5)
    assert "unknown identifier `nope`" in error.message


def test_missing_module_is_named():
    result = YARA.validate('import "droidbox"\nrule r { condition: droidbox.sendsms(/./) }')
    assert result.errors[0].message == "needs the 'droidbox' module, which yara-x does not have"
    assert result.errors[0].line == 1


def test_two_rules_are_two_signatures():
    result = YARA.validate("rule a { condition: true }\nrule b { condition: true }")
    assert result.errors[0].message.startswith("one rule per signature: found 2 rules (a, b)")


def test_private_helpers_may_travel_with_the_rule():
    src = "private rule h { condition: filesize > 10 }\nrule a { condition: h }"
    assert YARA.validate(src).errors == []


def test_include_is_refused():
    result = YARA.validate('include "other.yar"\nrule a { condition: true }')
    assert "include" in result.errors[0].message


def test_slow_pattern_is_a_warning():
    result = YARA.validate("rule a { strings: $a = { 00 } condition: $a }")
    assert result.errors == []
    assert any("slow pattern" in w.message for w in result.warnings)


def test_cuckoo_rules_compile_with_a_warning():
    result = YARA.validate('import "cuckoo"\nrule a { condition: cuckoo.network.host(/x/) }')
    assert result.errors == []
    assert "never true" in result.warnings[0].message


def test_comments_and_layout_do_not_change_identity():
    a = YARA.validate('rule a { strings: $s = "x" condition: $s }').body
    b = YARA.validate('// note\nrule a {\n  strings: $s = "x" // why\n  condition: $s\n}').body
    assert YARA.dedup_key(a) == YARA.dedup_key(b)


def test_thousand_line_rule_validates_well_under_a_second():
    strings = "".join(f'    $s{i} = "marker string number {i}"\n' for i in range(995))
    src = "rule big {\n  strings:\n" + strings + "  condition:\n    any of them\n}\n"
    assert src.count("\n") >= 1000
    start = time.perf_counter()
    result = YARA.validate(src)
    elapsed = time.perf_counter() - start
    assert result.errors == []
    assert elapsed < 0.5
