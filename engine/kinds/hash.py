"""``hash``: the digest of a whole APK, of one DEX file, or of a signing certificate."""

from __future__ import annotations

import re
from typing import Any

from engine.features import AppFeatures, RuleRecord
from engine.kinds.base import (
    Hits,
    Kind,
    KindIndex,
    Slot,
    ValidationResult,
    slot_add,
    slot_get,
    stix_quote,
)

ALGORITHM_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64}
LENGTH_ALGORITHMS = {v: k for k, v in ALGORITHM_LENGTHS.items()}
TARGETS = ("apk", "dex", "cert")
_HEX = re.compile(r"[0-9a-f]+")
_STIX_HASH_NAMES = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256"}


class HashKind(Kind):
    name = "hash"
    label = "Hash"
    description = (
        "The MD5, SHA-1 or SHA-256 of a whole APK, of one DEX file inside it, or of a signing "
        "certificate. Exact, cheap, and defeated by changing one byte."
    )

    # a validator: one early refusal per rule a hash body breaks
    def validate(self, body: Any) -> ValidationResult:  # noqa: PLR0911
        if isinstance(body, str):
            body = {"value": body}
        if not isinstance(body, dict):
            return ValidationResult.fail("a hash body is an object with 'value' (or a hex string)")
        unknown = sorted(set(body) - {"algorithm", "value", "target"})
        if unknown:
            return ValidationResult.fail(f"unknown field(s): {', '.join(unknown)}")
        value = body.get("value")
        if not isinstance(value, str) or not value.strip():
            return ValidationResult.fail("'value' must be a hex digest")
        # people paste "AB:CD:..." certificate fingerprints from keytool
        value = value.strip().lower().replace(":", "").replace(" ", "")
        if not _HEX.fullmatch(value):
            return ValidationResult.fail("'value' is not hexadecimal")
        algorithm = body.get("algorithm")
        if algorithm is None:
            algorithm = LENGTH_ALGORITHMS.get(len(value))
            if algorithm is None:
                return ValidationResult.fail(
                    f"a {len(value)}-digit value is not an MD5 (32), SHA-1 (40) or SHA-256 (64)"
                )
        if not isinstance(algorithm, str) or algorithm.lower() not in ALGORITHM_LENGTHS:
            return ValidationResult.fail("'algorithm' must be md5, sha1 or sha256")
        algorithm = algorithm.lower()
        if len(value) != ALGORITHM_LENGTHS[algorithm]:
            return ValidationResult.fail(
                f"a {algorithm} has {ALGORITHM_LENGTHS[algorithm]} hex digits, not {len(value)}"
            )
        target = body.get("target", "apk")
        if target not in TARGETS:
            return ValidationResult.fail("'target' must be apk, dex or cert")
        if target == "dex" and algorithm != "sha256":
            return ValidationResult.fail("DEX files are identified by SHA-256 only")
        if target == "cert" and algorithm == "md5":
            return ValidationResult.fail("certificates are identified by SHA-256 or SHA-1")
        return ValidationResult(body={"algorithm": algorithm, "value": value, "target": target})

    def summary(self, body: Any) -> str:
        return f"{body['target']} {body['algorithm']} {body['value']}"

    def new_index(self) -> HashIndex:
        return HashIndex()

    def stix_pattern(self, body: Any) -> tuple[str, str] | None:
        algorithm = _STIX_HASH_NAMES[body["algorithm"]]
        obj = "x509-certificate" if body["target"] == "cert" else "file"
        return f"[{obj}:hashes.'{algorithm}' = {stix_quote(body['value'])}]", "stix"


class HashIndex(KindIndex):
    """(algorithm, target) -> hex value -> record positions: one dict lookup per digest."""

    def __init__(self) -> None:
        self.hashes: dict[tuple[str, str], dict[str, Slot]] = {}

    def add(self, record: RuleRecord, index: int) -> None:
        body = record.body
        table = self.hashes.setdefault((body["algorithm"], body["target"]), {})
        slot_add(table, body["value"], index)

    @property
    def matches_features(self) -> bool:
        return bool(self.hashes)

    def match_features(self, features: AppFeatures, hits: Hits, where: str) -> None:
        subject = "xapk" if features.file_type == "xapk" else "apk"
        checks: list[tuple[str, str, str, str]] = [
            ("md5", "apk", features.md5, f"{subject} md5"),
            ("sha1", "apk", features.sha1, f"{subject} sha1"),
            ("sha256", "apk", features.sha256, f"{subject} sha256"),
        ]
        checks += [("sha256", "dex", d.sha256, f"dex {d.path} sha256") for d in features.dex]
        for cert in features.certificates:
            checks.append(("sha256", "cert", cert.sha256, "certificate sha256"))
            checks.append(("sha1", "cert", cert.sha1, "certificate sha1"))
        for algorithm, target, value, text in checks:
            table = self.hashes.get((algorithm, target))
            if table and value:
                for index in slot_get(table, value.lower()):
                    hits.add(index, f"{text} = {value.lower()}{where}")
