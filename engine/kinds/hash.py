"""``hash``: the digest of a whole APK, of one DEX file, or of a signing certificate."""

from __future__ import annotations

import re
from typing import Any

from engine.kinds.base import Kind, ValidationResult

ALGORITHM_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64}
LENGTH_ALGORITHMS = {v: k for k, v in ALGORITHM_LENGTHS.items()}
TARGETS = ("apk", "dex", "cert")
_HEX = re.compile(r"[0-9a-f]+")


class HashKind(Kind):
    name = "hash"
    label = "Hash"
    description = (
        "The MD5, SHA-1 or SHA-256 of a whole APK, of one DEX file inside it, or of a signing "
        "certificate. Exact, cheap, and defeated by changing one byte."
    )

    def validate(self, body: Any) -> ValidationResult:
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
