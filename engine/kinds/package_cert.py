"""``package_cert``: a protected package name and the certificates allowed to sign it.

An app with that package name signed by any other certificate is a counterfeit, unless its
v3 rotation lineage contains an allowed certificate: rotating to a new key is legitimate.
"""

from __future__ import annotations

import keyword
import re
from typing import Any

from engine.features import AppFeatures, RuleRecord
from engine.kinds.base import Hits, Kind, KindIndex, ValidationResult

_SHA256 = re.compile(r"[0-9a-f]{64}")


def is_java_package(name: str) -> bool:
    parts = name.split(".")
    if len(parts) < 2:
        return False
    return all(p.isidentifier() and not keyword.iskeyword(p) and p.isascii() for p in parts)


def normalise_cert(value: str) -> str:
    return value.strip().lower().replace(":", "").replace(" ", "")


class PackageCertKind(Kind):
    name = "package_cert"
    label = "Package and signer"
    description = (
        "A protected package name (a bank, a payment app) and the SHA-256 of every certificate "
        "allowed to sign it. Any other signer is a counterfeit; a v3 key rotation from an "
        "allowed certificate is not."
    )

    def validate(self, body: Any) -> ValidationResult:
        if not isinstance(body, dict):
            return ValidationResult.fail("a package_cert body is an object")
        unknown = sorted(set(body) - {"package", "allowed_certs"})
        if unknown:
            return ValidationResult.fail(f"unknown field(s): {', '.join(unknown)}")
        errors: list[str] = []
        package = body.get("package")
        if not isinstance(package, str) or not is_java_package(package.strip()):
            errors.append(
                "'package' must be a Java package name with at least two segments, "
                "e.g. com.bank.app"
            )
        certs = body.get("allowed_certs")
        if isinstance(certs, str):
            certs = [certs]
        if not isinstance(certs, list) or not certs:
            errors.append("'allowed_certs' must list at least one certificate SHA-256")
            certs = []
        normalised: set[str] = set()
        for cert in certs:
            value = normalise_cert(cert) if isinstance(cert, str) else ""
            if not _SHA256.fullmatch(value):
                errors.append(f"{cert!r} is not a certificate SHA-256 (64 hex digits)")
            else:
                normalised.add(value)
        if errors:
            return ValidationResult.fail(*errors)
        assert isinstance(package, str)
        return ValidationResult(
            body={"package": package.strip(), "allowed_certs": sorted(normalised)}
        )

    def summary(self, body: Any) -> str:
        n = len(body["allowed_certs"])
        return f"{body['package']} signed only by {n} allowed certificate{'s' * (n != 1)}"

    def new_index(self) -> PackageCertIndex:
        return PackageCertIndex()


class PackageCertIndex(KindIndex):
    """package -> [(record position, allowed certificate SHA-256s)]: one lookup per app."""

    def __init__(self) -> None:
        self.package_certs: dict[str, list[tuple[int, frozenset[str]]]] = {}

    def add(self, record: RuleRecord, index: int) -> None:
        body = record.body
        allowed = frozenset(body["allowed_certs"])
        self.package_certs.setdefault(body["package"], []).append((index, allowed))

    @property
    def matches_features(self) -> bool:
        return bool(self.package_certs)

    def match_features(self, features: AppFeatures, hits: Hits, where: str) -> None:
        package = features.manifest.package
        rules = self.package_certs.get(package or "")
        if not rules:
            return
        signers = [c.sha256.lower() for c in features.certificates]
        lineage = {c.lower() for c in features.lineage}
        for index, allowed in rules:
            if any(s in allowed for s in signers):
                continue
            if lineage & allowed:
                # the app rotated (v3 lineage) away from an allowed key: the owner did that
                continue
            if not signers:
                hits.add(index, f"the app is unsigned but uses the protected package {package}")
            for signer in signers:
                hits.add(
                    index,
                    f"certificate {signer} is not among the allowed signers of {package}{where}",
                )
