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


# --- the samples a signature hit (its page, its hit counts), by current label -----------------
@dataclass(frozen=True, slots=True)
class HitSample:
    sha256: str
    package: str
    app_label: str
    label: str  # current
    hunt_id: int | None  # the newest retro-hunt that found it; None: found by scans only


@dataclass(frozen=True, slots=True)
class SignatureSamples:
    counts: tuple[tuple[str, int], ...]  # (label, samples) for clean, malicious, unknown
    samples: tuple[HitSample, ...]  # up to ``per_label`` of each label, newest hit first


def signature_samples(*, signature_id: int, per_label: int = 20) -> SignatureSamples:
    """What a signature hit in scans and retro-hunts (``SignatureHit``, which both write), by
    the samples' current labels; ``HuntMatch`` says which hunt found each one."""
    from django.db.models import Count

    from scans.models import SignatureHit
    from scans.search import hunt_hit_sample_ids

    hits = SignatureHit.objects.filter(signature_id=signature_id)
    by_label = dict(
        hits.values("sample__label")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("sample__label", "n")
    )
    order = (Label.CLEAN, Label.MALICIOUS, Label.UNKNOWN)
    rows: list[tuple[int, str, str, str, str]] = []
    for label in order:
        if by_label.get(label):
            found = hits.filter(sample__label=label).order_by("-last_hit_at", "-id")
            rows += [
                (pk, sha, package, app_label, label)
                for pk, sha, package, app_label in found.values_list(
                    "sample_id", "sample__sha256", "sample__package", "sample__app_label"
                )[:per_label]
            ]
    hunts = hunt_hit_sample_ids(signature_id=signature_id, sample_ids=[r[0] for r in rows])
    return SignatureSamples(
        counts=tuple((str(label), by_label.get(label, 0)) for label in order),
        samples=tuple(
            HitSample(
                sha256=sha,
                package=package,
                app_label=app_label,
                label=str(label),
                hunt_id=hunts.get(pk),
            )
            for pk, sha, package, app_label, label in rows
        ),
    )
