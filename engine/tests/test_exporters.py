"""Exports round-trip through the importers; STIX output is deterministic."""

from engine.exporters import to_csv, to_stix, to_yara
from engine.features import RuleRecord
from engine.importers import parse_bytes
from engine.kinds import get_kind


def rec(sig_id, kind, body, severity="malicious"):
    normalised = get_kind(kind).validate(body).body
    assert normalised is not None
    return RuleRecord(sig_id, 1, f"Andr.Trojan.Fam{sig_id}-{sig_id}-1", kind, normalised, severity)


RECORDS = [
    rec(1, "hash", {"value": "A" * 64}),
    rec(2, "hash", {"value": "b" * 40, "target": "cert"}),
    rec(3, "indicator", "Evil.com"),
    rec(4, "indicator", "https://pay.evil.com:443/x"),
    rec(5, "indicator", "10.0.0.0/8"),
    rec(6, "indicator", "7132"),
    rec(7, "package_cert", {"package": "com.bank.app", "allowed_certs": ["c" * 64]}),
    rec(8, "behavior", {"permissions": ["SEND_SMS"], "score": 40, "label": "sms"}),
    rec(
        9,
        "yara",
        'import "math"\nprivate rule h { condition: math.entropy(0, filesize) > 7 }\n'
        "rule packed { condition: h }",
    ),
    rec(10, "yara", 'rule plain { strings: $a = "x\\"y" condition: $a }', "suspicious"),
    rec(
        11,
        "yara",
        'import "math"\nprivate rule h { condition: math.entropy(0, filesize) > 7 }\n'
        "rule packed_too { condition: h and filesize > 10 }",
    ),
]


def test_csv_round_trip_keeps_kinds_and_bodies():
    candidates = parse_bytes("export.csv", to_csv(RECORDS).encode())
    assert [c.error for c in candidates] == [None] * len(RECORDS)
    assert [(c.kind, c.body) for c in candidates] == [(r.kind, r.body) for r in RECORDS]
    assert [c.name for c in candidates] == [r.name for r in RECORDS]
    assert candidates[0].family_hint == "Fam1"


def test_yara_round_trip_keeps_bodies_and_writes_shared_helpers_once():
    yara_records = [r for r in RECORDS if r.kind == "yara"]
    text = to_yara(RECORDS)
    assert text.count("private rule h") == 1
    candidates = parse_bytes("export.yar", text.encode())
    assert [(c.kind, c.body) for c in candidates] == [(r.kind, r.body) for r in yara_records]


def test_stix_bundle_is_deterministic_and_uses_stix_patterns():
    bundle = to_stix(RECORDS)
    assert bundle == to_stix(RECORDS)
    assert bundle["type"] == "bundle"
    patterns = [o["pattern"] for o in bundle["objects"]]
    assert patterns[:5] == [
        f"[file:hashes.'SHA-256' = '{'a' * 64}']",
        f"[x509-certificate:hashes.'SHA-1' = '{'b' * 40}']",
        "[domain-name:value = 'evil.com']",
        "[url:value = 'https://pay.evil.com/x']",
        "[ipv4-addr:value = '10.0.0.0/8']",
    ]
    # short codes, package_cert and behaviour have no STIX pattern; YARA goes as yara
    assert [o["pattern_type"] for o in bundle["objects"]][5:] == ["yara", "yara", "yara"]
    assert all(o["id"].startswith("indicator--") for o in bundle["objects"])
    assert bundle["objects"][6]["indicator_types"] == ["anomalous-activity"]
