"""Unit packs: what a hunt reads back equals what the app gives, and a damaged or foreign
pack is refused with UnitsError (the caller then reads the app), never used half-read."""

from __future__ import annotations

import io
import json
import struct
from dataclasses import replace
from pathlib import Path

import pytest

from engine.analyze import DEFAULT_LIMITS, Limits, analyze_with_content, read_content
from engine.errors import AnalysisError
from engine.features import AppContent
from engine.ruleset import android_globals, compile_ruleset, match, match_yara
from engine.tests.test_ruleset import record
from engine.units import UnitsError, read_units, write_units

OWNER = bytes(range(32))
OTHER = bytes(32)


def _pack(content: AppContent, owner: bytes = OWNER) -> bytes:
    buf = io.BytesIO()
    assert write_units(buf, owner, content) == len(buf.getvalue())
    return buf.getvalue()


def _read(blob: bytes, owner: bytes = OWNER, limits: Limits = DEFAULT_LIMITS) -> AppContent:
    return read_units(io.BytesIO(blob), owner, "/the/app.apk", limits)


@pytest.mark.parametrize("name", ["android.apk", "android_xapk.xapk", "dynamic_dex.apk"])
def test_a_pack_gives_back_the_manifest_and_every_dex(corpus: Path, name: str) -> None:
    content = read_content(corpus / "apks" / name)
    assert content.dex  # every one of these has DEX (the XAPK's come from its parts)

    back = _read(_pack(content))

    assert back.path == "/the/app.apk"
    assert back.manifest == content.manifest
    assert back.dex == content.dex


def test_a_pack_is_refused_when_damaged_or_foreign(corpus: Path) -> None:
    blob = _pack(read_content(corpus / "apks" / "dynamic_dex.apk"))
    head = 8 + 32 + 2

    with pytest.raises(UnitsError, match="another file"):
        _read(blob, owner=OTHER)
    with pytest.raises(UnitsError, match="not a unit pack"):
        _read(b"PK\x03\x04" + blob[4:])
    with pytest.raises(UnitsError, match="trailing"):
        _read(blob + b"\0")
    for cut in (0, 5, head - 1, head + 3, head + 20, len(blob) // 2, len(blob) - 1):
        with pytest.raises(UnitsError, match="truncated"):
            _read(blob[:cut])
    # a unit kind we do not know, and a length over the engine's DEX limit
    with pytest.raises(UnitsError, match="unknown or oversized"):
        _read(blob[:head] + b"\x09" + blob[head + 1 :])
    small = Limits(max_dex_size=16, max_manifest_size=16)
    with pytest.raises(UnitsError, match="unknown or oversized"):
        _read(blob, limits=small)
    # a count far over what any app has
    with pytest.raises(UnitsError, match="claims"):
        _read(blob[:40] + struct.pack("<H", 65535) + blob[head:])


def test_a_pack_keeps_the_android_facts_and_refuses_broken_ones(corpus: Path) -> None:
    features, content = analyze_with_content(corpus / "apks" / "android.apk")
    facts = android_globals(features)
    blob = _pack(replace(content, facts=facts))

    assert _read(blob).facts == facts
    assert _read(_pack(content)).facts is None  # a pack may have none: features serve then
    broken = blob.replace(json.dumps(facts, separators=(",", ":")).encode()[:8], b"\xff" * 8)
    with pytest.raises(UnitsError, match="facts are not JSON"):
        _read(broken)


def test_yara_matches_the_same_from_a_pack_as_from_the_app(corpus: Path) -> None:
    features, content = analyze_with_content(corpus / "apks" / "android.apk")
    rules = compile_ruleset(
        [
            record(1, "yara", 'rule dex { strings: $a = "jakhar/aseem/diva" condition: $a }'),
            record(
                2,
                "yara",
                'rule m { strings: $a = "android" wide condition: android.file_kind == "manifest"'
                " and $a }",
            ),
        ]
    )

    direct = match(features, rules, content)
    pack = io.BytesIO(_pack(content))
    from_pack = match(features, rules, read_units(pack, OWNER, content.path, DEFAULT_LIMITS))

    assert {m.signature_id for m in direct} == {1, 2}
    assert [(m.signature_id, m.evidence) for m in from_pack] == [
        (m.signature_id, m.evidence) for m in direct
    ]
    # yara alone, from the facts the pack keeps, without the features
    pack = io.BytesIO(_pack(replace(content, facts=android_globals(features))))
    alone = match_yara(read_units(pack, OWNER, content.path, DEFAULT_LIMITS), rules)
    assert [(m.signature_id, m.evidence) for m in alone] == [
        (m.signature_id, m.evidence) for m in direct
    ]
    assert rules.yara_only
    mixed = [*rules.records, record(3, "indicator", "evil.example")]
    assert not compile_ruleset(mixed).yara_only  # the other kinds need the features
    with pytest.raises(ValueError, match="facts"):
        match_yara(content, rules)


def test_first_hit_finds_the_same_records_as_a_full_scan(corpus: Path) -> None:
    """Retro-hunts stop scanning a sample once every rule hit: never a different answer."""
    metasploit = (corpus / "yara" / "Yara-Rules" / "Android" / "Android_Metasploit.yar").read_text()
    split = metasploit.index("rule android_metasploit")
    bodies = [
        metasploit[:split],  # hits the DEX of most corpus apps, the raw file of some
        metasploit[split:],
        'rule raw { strings: $a = "META-INF/MANIFEST.MF" condition: android.file_kind == "apk"'
        " and $a }",
        'rule m { strings: $a = "android" wide condition: android.file_kind == "manifest" and $a }',
        'rule diva { strings: $a = "jakhar/aseem/diva" condition: $a }',
    ]
    records = [record(n, "yara", body) for n, body in enumerate(bodies, 1)]
    seen: set[int] = set()
    for path in sorted((corpus / "apks").iterdir()):
        try:
            features, content = analyze_with_content(path)
        except AnalysisError:
            continue  # not an app: nothing to match
        for chosen in (records, records[:1], records[2:4]):
            rules = compile_ruleset(chosen)
            full = {m.signature_id for m in match(features, rules, content)}
            first = {m.signature_id for m in match(features, rules, content, first_hit=True)}
            assert first == full, path.name
            seen |= full
    assert seen == {1, 3, 4, 5}  # the test covers rules that hit the raw file, manifest, DEX
