"""Compiling records and matching apps: each kind hit and missed, verdicts, YARA globals."""

import pickle
from dataclasses import replace

import pytest

from engine import ENGINE_VERSION
from engine.features import (
    AppContent,
    AppFeatures,
    Certificate,
    DexFile,
    Indicators,
    Manifest,
    MethodRef,
    RuleRecord,
)
from engine.kinds import get_kind
from engine.ruleset import compile_ruleset, match, verdict

BANK_CERT = "b" * 64
ROGUE_CERT = "d" * 64


def record(sig_id, kind, body, *, severity="malicious", noisy=False, min_engine=1):
    result = get_kind(kind).validate(body)
    assert result.errors == [], result.errors
    return RuleRecord(
        id=sig_id,
        revision=1,
        name=f"Andr.Test.Fam-{sig_id}-1",
        kind=kind,
        body=result.body,
        severity=severity,
        noisy=noisy,
        min_engine=min_engine,
    )


def cert(sha256):
    return Certificate(
        sha256=sha256,
        sha1=sha256[:40],
        subject="CN=x",
        issuer="CN=x",
        serial="1",
        not_before="2020-01-01T00:00:00Z",
        not_after="2050-01-01T00:00:00Z",
        schemes=("v2",),
    )


def app(**changes):
    base = AppFeatures(
        engine_version=ENGINE_VERSION,
        file_type="apk",
        size=1000,
        md5="1" * 32,
        sha1="2" * 40,
        sha256="3" * 64,
        manifest=Manifest(
            package="com.bank.app",
            min_sdk=21,
            permissions=("android.permission.SEND_SMS", "android.permission.INTERNET"),
        ),
        certificates=(cert(BANK_CERT),),
        dex=(DexFile(path="classes.dex", sha256="4" * 64, size=10),),
        methods=(
            MethodRef(
                "Landroid/telephony/SmsManager;",
                "sendTextMessage",
                "(Ljava/lang/String; Ljava/lang/String;)V",
            ),
        ),
        indicators=Indicators(
            urls=("http://pay.Example.org:80/x",),
            domains=("cdn.tracker.net",),
            ips=("192.168.10.20",),
            short_codes=("7132",),
        ),
    )
    return replace(base, **changes)


def names(matches):
    return sorted(m.name for m in matches)


def test_hashes_match_apk_dex_and_certificate():
    rs = compile_ruleset(
        [
            record(1, "hash", {"value": "3" * 64}),
            record(2, "hash", {"value": "1" * 32}),
            record(3, "hash", {"value": "4" * 64, "target": "dex"}),
            record(4, "hash", {"value": BANK_CERT, "target": "cert"}),
            record(5, "hash", {"value": "9" * 64}),
        ]
    )
    matches = {m.signature_id: m for m in match(app(), rs)}
    assert sorted(matches) == [1, 2, 3, 4]
    assert matches[1].evidence == (f"apk sha256 = {'3' * 64}",)
    assert matches[3].evidence == (f"dex classes.dex sha256 = {'4' * 64}",)


def test_indicators_match_domains_with_parents_urls_ips_networks_and_short_codes():
    rs = compile_ruleset(
        [
            record(1, "indicator", "tracker.net"),
            record(2, "indicator", "http://pay.example.org/x"),
            record(3, "indicator", "192.168.0.0/16"),
            record(4, "indicator", "192.168.10.20"),
            record(5, "indicator", "7132"),
            record(6, "indicator", "example.org"),
            record(7, "indicator", "other.net"),
            record(8, "indicator", "10.0.0.0/8"),
        ]
    )
    matches = {m.signature_id: m for m in match(app(), rs)}
    assert sorted(matches) == [1, 2, 3, 4, 5, 6]
    assert matches[1].evidence == ("domain cdn.tracker.net (under tracker.net) in strings",)
    assert matches[3].evidence == ("ip 192.168.10.20 in network 192.168.0.0/16 in strings",)
    assert matches[6].evidence == (
        "domain pay.example.org (under example.org) in url http://pay.example.org/x",
    )


def test_package_cert_counterfeit_allowed_and_rotated():
    rs = compile_ruleset(
        [record(1, "package_cert", {"package": "com.bank.app", "allowed_certs": [BANK_CERT]})]
    )
    assert match(app(), rs) == []
    counterfeit = app(certificates=(cert(ROGUE_CERT),))
    (hit,) = match(counterfeit, rs)
    assert hit.evidence == (
        f"certificate {ROGUE_CERT} is not among the allowed signers of com.bank.app",
    )
    rotated = app(certificates=(cert(ROGUE_CERT),), lineage=(BANK_CERT, ROGUE_CERT))
    assert match(rotated, rs) == []
    other_package = app(manifest=Manifest(package="com.other.app"))
    assert match(replace(other_package, certificates=(cert(ROGUE_CERT),)), rs) == []


def test_behavior_needs_every_feature_and_ignores_missing_descriptor():
    sms = {"class": "android.telephony.SmsManager", "method": "sendTextMessage"}
    rs = compile_ruleset(
        [
            record(1, "behavior", {"permissions": ["SEND_SMS"], "api": [sms], "score": 80}),
            record(
                2,
                "behavior",
                {"api": [{**sms, "descriptor": "(Ljava/lang/String;Ljava/lang/String;)V"}]},
            ),
            record(3, "behavior", {"api": [{**sms, "descriptor": "()V"}], "score": 50}),
            record(4, "behavior", {"permissions": ["SEND_SMS", "READ_SMS"], "score": 50}),
        ]
    )
    matches = {m.signature_id: m for m in match(app(), rs)}
    assert sorted(matches) == [1, 2]
    assert matches[1].evidence == (
        "permission android.permission.SEND_SMS + Landroid/telephony/SmsManager;->sendTextMessage",
    )


def test_noisy_match_is_reported_but_does_not_score():
    rs = compile_ruleset([record(1, "indicator", "7132", noisy=True)])
    (hit,) = match(app(), rs)
    assert hit.scoring is False
    assert verdict([hit]) == ("clean", 0)


def test_min_engine_records_are_skipped_and_counted():
    rs = compile_ruleset(
        [record(1, "indicator", "7132", min_engine=ENGINE_VERSION + 1)],
    )
    assert rs.skipped == 1
    assert match(app(), rs) == []
    newer = compile_ruleset(
        [record(1, "indicator", "7132", min_engine=ENGINE_VERSION + 1)],
        engine_version=ENGINE_VERSION + 1,
    )
    assert newer.skipped == 0
    assert len(match(app(), newer)) == 1


def test_verdict_and_score():
    rs = compile_ruleset(
        [
            record(1, "indicator", "7132", severity="riskware"),
            record(2, "indicator", "tracker.net", severity="suspicious"),
            record(3, "behavior", {"permissions": ["SEND_SMS"], "score": 50}, severity="malicious"),
        ]
    )
    matches = {m.signature_id: m for m in match(app(), rs)}
    assert verdict([]) == ("clean", 0)
    assert verdict([matches[1]]) == ("suspicious", 30)
    assert verdict([matches[1], matches[2]]) == ("suspicious", 72)
    assert verdict([matches[3]], rs) == ("malicious", 50)
    assert verdict([matches[3]]) == ("malicious", 100)


def test_yara_rule_uses_android_globals_and_needs_content(tmp_path):
    apk = tmp_path / "app.apk"
    apk.write_bytes(b"PK\x03\x04 some bytes")
    rs = compile_ruleset(
        [
            record(
                1,
                "yara",
                'rule bank { condition: android.package == "com.bank.app" and '
                'android.file_kind == "apk" }',
            ),
            record(
                2,
                "yara",
                "rule sms { condition: for any p in android.permissions : "
                '(p == "android.permission.SEND_SMS") and android.file_kind == "dex" }',
            ),
            record(3, "yara", 'rule pk { strings: $pk = "PK" condition: $pk at 0 }'),
        ]
    )
    assert match(app(), rs) == []  # no content: YARA records are not evaluated
    content = AppContent(path=str(apk), dex=(("classes.dex", b"dex\n035\x00"),))
    matches = {m.signature_id: m for m in match(app(), rs, content)}
    assert sorted(matches) == [1, 2, 3]
    assert matches[3].evidence == ("yara: $pk at 0x0 in the file",)
    assert matches[2].evidence == ("yara: rule sms condition in classes.dex",)
    other = app(manifest=Manifest(package="com.other.app"))
    assert sorted(m.signature_id for m in match(other, rs, content)) == [3]


def test_app_without_permissions_does_not_break_array_globals(tmp_path):
    apk = tmp_path / "app.apk"
    apk.write_bytes(b"x")
    rs = compile_ruleset(
        [record(1, "yara", "rule no_perms { condition: android.permission_count == 0 }")]
    )
    bare = app(manifest=Manifest(package="com.x.y"), certificates=())
    assert len(match(bare, rs, AppContent(path=str(apk)))) == 1


def test_duplicate_yara_names_and_a_bad_record_do_not_break_the_others(tmp_path):
    apk = tmp_path / "app.apk"
    apk.write_bytes(b"hello")
    good = record(1, "yara", 'rule same { strings: $a = "hello" condition: $a }')
    twin = record(2, "yara", 'rule same { strings: $a = "ell" condition: $a }')
    bad = RuleRecord(3, 1, "Andr.Test.Bad-3-1", "yara", "rule x { condition: nope }", "malicious")
    rs = compile_ruleset([good, bad, twin])
    assert [(p.signature_id, "unknown identifier `nope`" in p.message) for p in rs.errors] == [
        (3, True)
    ]
    assert sorted(m.signature_id for m in match(app(), rs, AppContent(path=str(apk)))) == [1, 2]


def test_unknown_kind_is_a_compile_problem_not_a_crash():
    rs = compile_ruleset([RuleRecord(1, 1, "Andr.X.Y-1-1", "ssdeep", "3:abc:def", "malicious")])
    assert rs.errors[0].message == "unknown signature kind 'ssdeep'"


def test_ruleset_pickles_with_its_yara_rules(tmp_path):
    apk = tmp_path / "app.apk"
    apk.write_bytes(b"hello")
    rs = compile_ruleset(
        [
            record(1, "yara", 'rule a { strings: $a = "hello" condition: $a }'),
            record(2, "indicator", "7132"),
        ]
    )
    again = pickle.loads(pickle.dumps(rs))  # noqa: S301 - our own bytes, made one line up
    assert names(match(app(), again, AppContent(path=str(apk)))) == names(
        match(app(), rs, AppContent(path=str(apk)))
    )
    assert len(names(match(app(), again, AppContent(path=str(apk))))) == 2


def test_xapk_parts_are_matched_too():
    part = app(sha256="5" * 64)
    bundle = app(file_type="xapk", manifest=Manifest(), parts=(part,))
    rs = compile_ruleset([record(1, "hash", {"value": "5" * 64})])
    (hit,) = match(bundle, rs)
    assert hit.evidence == (f"apk sha256 = {'5' * 64} (part 1: com.bank.app)",)


@pytest.mark.parametrize("apk_name", ["InsecureBankv2.apk", "issue2701.apk"])
def test_yara_over_real_corpus_apk_bytes(corpus, apk_name, tmp_path):
    path = corpus / "apks" / apk_name
    rs = compile_ruleset(
        [
            record(
                1,
                "yara",
                'rule zip { strings: $m = "AndroidManifest.xml" condition: '
                "uint32(0) == 0x04034b50 and $m }",
            ),
            record(2, "yara", "rule elf { condition: uint32(0) == 0x464c457f }"),
        ]
    )
    features = app(sha256="0" * 64)
    (hit,) = match(features, rs, AppContent(path=str(path)))
    assert hit.signature_id == 1
    assert hit.evidence[0].startswith("yara: $m at 0x")
    assert hit.evidence[0].endswith(" in the file")


def test_real_apk_through_analyze_and_match(corpus):
    from engine.analyze import analyze_with_content

    features, content = analyze_with_content(
        str(corpus / "apks" / "krvarma-android-samples-smsdemo.apk")
    )
    rs = compile_ruleset(
        [
            record(
                1,
                "behavior",
                {
                    "permissions": ["SEND_SMS", "RECEIVE_SMS"],
                    "api": [{"class": "android.app.Activity", "method": "onCreate"}],
                    "score": 60,
                },
                severity="suspicious",
            ),
            record(
                2,
                "yara",
                'rule demo { condition: android.package == "com.varma.samples.smsdemo" '
                'and android.file_kind == "dex" and uint32(0) == 0x0a786564 }',
            ),
            record(
                3,
                "package_cert",
                {"package": "com.varma.samples.smsdemo", "allowed_certs": ["0" * 64]},
            ),
            record(4, "hash", {"value": features.sha256}),
        ]
    )
    matches = {m.signature_id: m for m in match(features, rs, content)}
    assert sorted(matches) == [1, 2, 3, 4]
    assert matches[2].evidence == ("yara: rule demo condition in classes.dex",)
    assert matches[3].evidence == (
        "certificate 41e8fc82722960094212a41493aa2ab88120deae9857bcc1cee38558448ce865 "
        "is not among the allowed signers of com.varma.samples.smsdemo",
    )
    assert verdict(matches.values(), rs) == ("malicious", 100)
