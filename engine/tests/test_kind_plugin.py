"""A kind is one module: a kind defined here, and registered only for these tests, validates,
compiles, matches, weighs, exports and ships through the release codec with no other file
knowing about it (the promise of ``engine.kinds``)."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import pytest

from engine import codec
from engine.analyze import analyze
from engine.exporters import to_csv, to_stix, to_yara
from engine.features import AppFeatures, RuleRecord
from engine.importers import parse_bytes
from engine.kinds import REGISTRY, Hits, Kind, KindIndex, ValidationResult, get_kind
from engine.ruleset import compile_ruleset, match, record_weight, verdict

_SERIAL = re.compile(r"[0-9a-f]{1,64}")


class CertSerialIndex(KindIndex):
    """Certificate serial -> record positions."""

    def __init__(self) -> None:
        self.serials: dict[str, list[int]] = {}

    def add(self, record: RuleRecord, index: int) -> None:
        self.serials.setdefault(record.body["serial"], []).append(index)

    @property
    def matches_features(self) -> bool:
        return bool(self.serials)

    def match_features(self, features: AppFeatures, hits: Hits, where: str) -> None:
        for cert in features.certificates:
            serial = cert.serial.lower().removeprefix("0x")
            for index in self.serials.get(serial, ()):
                hits.add(index, f"certificate serial {serial}{where}")


class CertSerialKind(Kind):
    """A throw-away kind: the serial number of a signing certificate (hex)."""

    name = "cert_serial"
    label = "Certificate serial"
    description = "The serial number of a signing certificate, in hex."
    scales_weight = True

    def validate(self, body: Any) -> ValidationResult:
        if isinstance(body, str):
            body = {"serial": body}
        serial = body.get("serial") if isinstance(body, dict) else None
        if not isinstance(serial, str):
            return ValidationResult.fail("a cert_serial body is a hex serial number")
        value = serial.strip().lower().removeprefix("0x").replace(":", "")
        if not _SERIAL.fullmatch(value):
            return ValidationResult.fail(f"{serial!r} is not a hex serial number")
        return ValidationResult(body={"serial": value.lstrip("0") or "0"})

    def new_index(self) -> CertSerialIndex:
        return CertSerialIndex()

    def weight_factor(self, body: Any) -> float:
        return 0.5  # a serial alone is weak evidence

    def stix_pattern(self, body: Any) -> tuple[str, str] | None:
        return f"[x509-certificate:serial_number = '{body['serial']}']", "stix"


@pytest.fixture
def cert_serial(monkeypatch: pytest.MonkeyPatch) -> CertSerialKind:
    kind = CertSerialKind()
    monkeypatch.setitem(REGISTRY, kind.name, kind)  # removed again after the test
    return kind


@pytest.fixture(scope="module")
def signed_app(corpus: Path) -> AppFeatures:
    features = analyze(corpus / "apks" / "InsecureBankv2.apk")
    assert features.certificates
    assert features.certificates[0].serial
    return features


def _serial_of(app: AppFeatures) -> str:
    return app.certificates[0].serial.lower().removeprefix("0x").lstrip("0")


def _record(sig_id: int, kind: str, body: Any, severity: str = "malicious") -> RuleRecord:
    normalised = get_kind(kind).validate(body)
    assert normalised.ok, normalised.errors
    name = f"Andr.Trojan.Fam{sig_id}-{sig_id}-1"
    return RuleRecord(sig_id, 1, name, kind, normalised.body, severity)  # type: ignore[arg-type]


def test_a_registered_kind_validates(cert_serial: CertSerialKind) -> None:
    # given the kind registered at test time, when bodies are validated by name
    good = get_kind("cert_serial").validate("0x00AB:CD")
    bad = get_kind("cert_serial").validate({"serial": "not hex"})

    # then it normalises and refuses as any built-in kind does
    assert good.body == {"serial": "abcd"}
    assert not bad.ok
    assert "not a hex serial" in str(bad.errors[0])


def test_a_registered_kind_compiles_and_matches_a_corpus_app(
    cert_serial: CertSerialKind, signed_app: AppFeatures
) -> None:
    # given a ruleset with the app's own serial, another serial, and a built-in kind beside
    hit = _record(1, "cert_serial", _serial_of(signed_app))
    miss = _record(2, "cert_serial", "deadbeef")
    other = _record(3, "indicator", "evil.example.com")
    ruleset = compile_ruleset([hit, miss, other])
    assert not ruleset.errors
    assert ruleset.counts() == {"cert_serial": 2, "indicator": 1}

    # when the corpus app is matched
    matches = match(signed_app, ruleset)

    # then the serial it is signed with hits, with evidence, and the other one does not
    assert [m.signature_id for m in matches] == [1]
    assert matches[0].kind == "cert_serial"
    assert matches[0].evidence == (f"certificate serial {_serial_of(signed_app)}",)
    # and the kind's weight scales the verdict's score, from a match or a stored record
    assert record_weight(hit) == 0.5
    assert verdict(matches, ruleset) == ("malicious", 50)
    # and a worker can keep the compiled ruleset
    again = pickle.loads(pickle.dumps(ruleset))  # noqa: S301
    assert match(signed_app, again) == matches


def test_a_malformed_body_of_a_registered_kind_is_a_compile_problem(
    cert_serial: CertSerialKind,
) -> None:
    broken = RuleRecord(1, 1, "Andr.Trojan.Fam-1-1", "cert_serial", {"no": "serial"}, "malicious")

    ruleset = compile_ruleset([broken])

    assert len(ruleset) == 0
    assert "malformed body" in ruleset.errors[0].message


def test_a_registered_kind_exports(cert_serial: CertSerialKind) -> None:
    records = [_record(1, "cert_serial", "abcd"), _record(2, "hash", "a" * 64)]

    # STIX: the kind's own pattern, with a stable id from its dedup key
    stix = to_stix(records)
    patterns = [o["pattern"] for o in stix["objects"]]
    assert patterns[0] == "[x509-certificate:serial_number = 'abcd']"
    assert to_stix(records) == stix
    # CSV: the body as JSON, read back by the importer as the same kind and body
    candidates = parse_bytes("export.csv", to_csv(records).encode())
    assert [(c.error, c.kind, c.body) for c in candidates] == [
        (None, r.kind, r.body) for r in records
    ]
    # YARA: a kind without YARA source is left out
    assert to_yara(records) == ""


def test_a_registered_kind_ships_through_the_release_codec(cert_serial: CertSerialKind) -> None:
    # given a release with the new kind beside hash records (which have their own section)
    records = [_record(1, "cert_serial", "abcd"), _record(2, "hash", "a" * 64)]

    # when it is encoded, bundled, and installed, then changed by a delta
    assert codec.decode_state(codec.encode_state(records)) == records
    state = codec.apply_full(codec.build_full(1, records), engine_version=1)
    changed = [_record(1, "cert_serial", "abce"), records[1], _record(3, "cert_serial", "ff")]
    upserts, removed = codec.diff_states({r.id: r for r in records}, {r.id: r for r in changed})
    delta = codec.build_delta(
        base_release=1,
        base_sha256=state.sha256,
        release=2,
        state_sha256=codec.state_sha256(changed),
        upserts=upserts,
        removed=removed,
    )
    after = codec.apply_delta(state, delta, engine_version=1)

    # then the records come back whole, and the installed state is the one the release names
    assert list(state.records) == records
    assert list(after.records) == changed
    assert after.sha256 == codec.state_sha256(changed)
    assert compile_ruleset(after.records).counts() == {"cert_serial": 2, "hash": 1}


def test_the_kind_is_gone_after_its_test() -> None:
    assert "cert_serial" not in REGISTRY
