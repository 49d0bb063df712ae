"""Importers over the real corpus and over small hand-written inputs."""

import collections
import re
from pathlib import Path

import pytest

from engine.importers import parse_bytes, parse_path


def outcomes(folder: Path) -> dict[str, int]:
    counts: collections.Counter[str] = collections.Counter()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            for candidate in parse_path(path, root=folder):
                if candidate.ok:
                    counts[f"valid {candidate.kind}"] += 1
                else:
                    assert candidate.error is not None
                    counts[re.sub(r"^line \d+(, column \d+)?: ", "", candidate.error)] += 1
    return dict(counts)


def test_every_corpus_yara_file(corpus):
    # yara-x has dex, cuckoo and others; Koodous' androguard calls are rewritten
    # (engine/androguard.py), droidbox and the old file module are not there. Imports a rule
    # does not use are dropped.
    assert outcomes(corpus / "yara") == {
        "valid yara": 2254,
        # Koodous rules that need what only Koodous' sandbox or code analysis produced
        "needs the 'cuckoo' module: a sandbox report the engine does not produce": 8,
        "needs androguard.functionality, the results of Koodous' code analysis, which the "
        "engine does not produce": 8,
        # Koodous' module declares permission() for regular expressions only: these never
        # compiled on Koodous either
        "androguard.permission takes a regular expression": 7,
        "needs the 'droidbox' module, which yara-x does not have": 4,
        "needs the 'file' module, which yara-x does not have": 3,
        # random-adware (954) declares its string outside the rule
        "unknown pattern `$a`: this pattern is not declared in the `strings` section [E025]": 1,
        "no YARA rule found": 1,
        "unsupported file type": 1,  # Android_fake_mario_app has no extension
        # APKiD's dex rules use libyara's dex module fields that yara-x names differently
        "unknown field or method `class_defs_size`: this field or method doesn't exist [E008]": 1,
        "unknown field or method `data_offset`: this field or method doesn't exist [E008]": 2,
        "unknown field or method `field_ids_size`: this field or method doesn't exist [E008]": 4,
        "unknown field or method `link_offset`: this field or method doesn't exist [E008]": 1,
        "unknown field or method `map_item`: this field or method doesn't exist [E008]": 7,
        "unknown field or method `map_offset`: this field or method doesn't exist [E008]": 1,
        "unknown field or method `method_ids_size`: this field or method doesn't exist [E008]": 1,
        "unknown field or method `string_ids_size`: this field or method doesn't exist [E008]": 2,
    }


def test_every_corpus_clamav_file(corpus):
    assert outcomes(corpus / "clamav") == {
        "valid hash": 31,
        "valid yara": 7,
        "PE-specific target type 1 has no Android equivalent": 168,
        "Mach-O-specific target type 9 has no Android equivalent": 11,
        "ELF-specific target type 6 has no Android equivalent": 9,
        "ASCII text-specific target type 7 has no Android equivalent": 1,
        "PCRE subsignatures are not translated": 7,
        "ClamAV fuzzy image hashes cannot be translated": 3,
        "container constraint CL_TYPE_RTF cannot be translated": 3,
        "container constraint CL_TYPE_OOXML_XL cannot be translated": 2,
        "container constraint CL_TYPE_HTML cannot be translated": 1,
        "container constraint CL_TYPE_MAIL cannot be translated": 1,
        "counts apply only to a subsignature or an | group of them": 2,
        "mixing & and | without parentheses is ambiguous": 1,
        # the test CVDs hold one text (not hex) .ndb line each
        "'This ClamAV version has reached End of L' is not a hex signature": 2,
        # the manual's example line is cut short in the published page
        "'6576656e742e6' is not a hex signature": 1,
        "ClamAV incremental updates (.cdiff) are not imported; apply them with sigtool "
        "and import the resulting .cvd": 1,
    }


def test_every_corpus_quark_file(corpus):
    assert outcomes(corpus / "quark") == {
        "valid behavior": 238,
        "a signature CSV needs a header with 'kind' and 'body'": 1,  # label_desc.csv
    }


def test_apkid_rule_carries_included_helper_as_private(corpus):
    root = corpus / "yara" / "APKiD"
    candidates = parse_path(root / "apk" / "packers.yara", root=root)
    (appguard,) = [c for c in candidates if c.name == "appguard"]
    assert appguard.ok
    assert appguard.body is not None
    assert appguard.source.endswith("packers.yara:appguard")
    assert appguard.body.startswith("private rule is_apk : file_type")
    assert appguard.body.count("\nrule ") == 1


def test_include_outside_the_root_is_refused(corpus):
    folder = corpus / "yara" / "APKiD" / "elf"
    candidates = parse_path(folder / "packers.yara")  # root defaults to elf/
    assert candidates
    assert all(c.error and "leaves the import folder" in c.error for c in candidates)


def test_upload_with_include_is_invalid_per_rule():
    data = b'include "common.yara"\nrule a { condition: is_apk }\nrule b { condition: true }'
    candidates = parse_bytes("up.yar", data)
    assert [c.name for c in candidates] == ["a", "b"]
    assert all("cannot be resolved in an upload" in (c.error or "") for c in candidates)


def test_yara_file_split_into_rules_with_globals_and_helpers():
    data = (
        b'import "math"\nimport "androguard"\n'
        b"global private rule small { condition: filesize < 10MB }\n"
        b"private rule h { condition: math.entropy(0, filesize) > 7 }\n"
        b"rule one { condition: h }\n"
        b"rule two { condition: androguard.package_name(/x/) }\n"
    )
    one, two = parse_bytes("x.yar", data)
    assert one.ok
    assert one.body is not None
    assert one.body.startswith('import "math"\n\nglobal private rule small')
    assert "androguard" not in one.body
    assert two.ok  # Koodous' androguard calls are rewritten
    assert two.body is not None
    assert two.body.startswith('import "androguard"\n\nglobal private rule small')
    assert two.body.endswith("rule two { condition: androguard.package_name(/x/) }\n")


def test_an_invalid_rule_keeps_its_own_text():
    # given a file whose second rule needs a module yara-x lacks and whose third is broken
    data = (
        b'import "droidbox"\nimport "androguard"\n'
        b"rule ok { condition: androguard.url(/evil\\.example/) }\n"
        b"rule sandbox { condition: droidbox.sendsms(/./) }\n"
        b'rule broken { strings: $a = "x" condition: $b }\n'
    )
    ok, sandbox, broken = parse_bytes("k.yar", data)
    # then every rule is its own candidate with its own text, valid or not
    assert ok.ok
    assert ok.text == ok.body
    assert sandbox.error is not None
    assert "droidbox" in sandbox.error
    assert sandbox.body is None
    assert (
        sandbox.text == 'import "droidbox"\n\nrule sandbox { condition: droidbox.sendsms(/./) }\n'
    )
    assert broken.error is not None
    assert "unknown pattern `$b`" in broken.error
    assert broken.text == 'rule broken { strings: $a = "x" condition: $b }\n'


def test_sources_are_relative_to_what_was_imported(corpus):
    root = corpus / "yara"
    path = root / "koodous_social_rulesets" / "dvmap (2955).yara"
    candidates = parse_path(path, root=root)
    assert {c.source.rsplit(":", 1)[0] for c in candidates} == {
        "koodous_social_rulesets/dvmap (2955).yara"
    }
    assert all(c.source.rsplit(":", 1)[0] == "dvmap (2955).yara" for c in parse_path(path))


def test_recursive_includes_do_not_loop(tmp_path):
    (tmp_path / "a.yar").write_text('include "b.yar"\nrule a { condition: b }\n')
    (tmp_path / "b.yar").write_text('include "a.yar"\nrule b { condition: true }\n')
    (candidate,) = parse_path(tmp_path / "a.yar")
    assert candidate.ok
    assert candidate.body is not None
    assert "private rule b" in candidate.body


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("x.yar", b"\xff\xfe rule", "cannot read the file as UTF-8 text"),
        ("x.json", b"{not json", "not a JSON file"),
        ("x.json", b'{"a": 1}', "not a Quark rule"),
        ("x.exe", b"MZ", "unsupported file type"),
        ("x.csv", b"\x00\x01", "cannot read the file as UTF-8 text"),
        ("x.cvd", b"garbage", "not a ClamAV database container"),
    ],
)
def test_unreadable_input_gives_one_invalid_candidate(name, data, reason):
    (candidate,) = parse_bytes(name, data)
    assert candidate.error is not None
    assert reason in candidate.error


def test_clamav_translations():
    ndb = b"Andr.Test.A-1:0:100,20:aabb??cc*dd{2-4}(ee|ff)1?\n"
    ldb = b"Andr.Test.B-1;Engine:51-255,Target:0;(0|1)>2,1&2;aabbcc;ddeeff;112233::i\n"
    hdb = b"44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n"
    (nd,) = parse_bytes("x.ndb", ndb)
    (ld,) = parse_bytes("x.ldb", ldb)
    (hd,) = parse_bytes("x.hdb", hdb)
    assert nd.ok
    assert nd.body is not None
    assert ld.body is not None
    assert "$a = { AA BB ?? CC [-] DD [2-4] ( EE | FF ) 1? }" in nd.body
    assert "$a in (100..120)" in nd.body
    assert ld.ok
    assert '$s2 = "\\x11\\x223" nocase' in ld.body
    assert "((#s0 + #s1) > 2 and 1 of ($s0, $s1)) and $s2" in ld.body
    assert hd.body == {
        "algorithm": "md5",
        "value": "44d88612fea8a8f36de82e1278abb02f",
        "target": "apk",
    }
    assert hd.name == "Eicar-Test-Signature"


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("x.hdb", "44d88612fea8a8f36de82e1278abb02f:\u00b3:Name"),
        ("x.ndb", "Andr.Test.A-1:\u00b3:0:aabbccdd"),
        ("x.ndb", "Andr.Test.A-1:0:\u00b3:aabbccdd"),
        ("x.ldb", "Andr.Test.B-1;Target:\u00b3;0;aabbcc"),
        ("x.ldb", "Andr.Test.B-1;Engine:51-255,FileSize:\u00b3-9;0;aabbcc"),
    ],
)
def test_unicode_digits_in_clamav_numbers_are_refused_with_a_reason(name, line):
    # given a rule whose number is a Unicode digit (str.isdigit says yes, int says no)
    (candidate,) = parse_bytes(name, line.encode())
    # then it is imported as invalid with a reason, not a crash
    assert not candidate.ok
    assert candidate.error


def test_cvd_is_unpacked(corpus):
    candidates = parse_path(corpus / "clamav" / "Cisco-Talos_clamav" / "test-1.cvd")
    assert [c.source.rsplit("/", 1)[1] for c in candidates] == ["test.ndb:2"]


def test_csv_rows():
    data = (
        b"kind,body,family,severity,name\n"
        b"indicator,evil.com,Joker,malicious,Andr.Trojan.Joker-1-1\n"
        b'hash,"{""value"": ""' + b"A" * 64 + b'""}",,suspicious,\n'
        b"behavior,{},,,\n"
        b"nope,x,,,\n"
    )
    a, b, c, d = parse_bytes("s.csv", data)
    assert (a.kind, a.body, a.family_hint, a.severity_hint) == (
        "indicator",
        {"type": "domain", "value": "evil.com"},
        "Joker",
        "malicious",
    )
    assert b.body is not None
    assert b.body["value"] == "a" * 64
    assert c.error == "a behaviour needs at least one permission or API call"
    assert d.error == "unknown signature kind 'nope'"
    assert d.source == "s.csv:5"
