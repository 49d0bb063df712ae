"""The scans app's front door for other apps: facts about stored samples, as frozen data."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from scans.models import Label, Sample

_CHUNK = 900


@dataclass(frozen=True)
class CleanFacts:
    """Of the apps asked about: the SHA-256s labelled clean, and the (package, signer SHA-256)
    pairs of clean samples with those packages (a re-signed or rebuilt clean app matches)."""

    sha256s: frozenset[str]
    package_signers: frozenset[tuple[str, str]]


def clean_facts(*, sha256s: Iterable[str], packages: Iterable[str]) -> CleanFacts:
    hashes = sorted({h.lower() for h in sha256s})
    names = sorted({p for p in packages if p})
    clean = Sample.objects.filter(label=Label.CLEAN)
    found: set[str] = set()
    for i in range(0, len(hashes), _CHUNK):
        found.update(
            clean.filter(sha256__in=hashes[i : i + _CHUNK]).values_list("sha256", flat=True)
        )
    pairs: set[tuple[str, str]] = set()
    for i in range(0, len(names), _CHUNK):
        rows = clean.filter(package__in=names[i : i + _CHUNK]).values_list("package", "features")
        for package, features in rows:
            for cert in (features or {}).get("certificates") or ():
                if isinstance(cert, dict) and isinstance(cert.get("sha256"), str):
                    pairs.add((package, cert["sha256"].lower()))
    return CleanFacts(sha256s=frozenset(found), package_signers=frozenset(pairs))
