"""The scans app's front door for other apps: facts about stored samples, as frozen data."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.urls import reverse

from scans.models import Label, Sample

if TYPE_CHECKING:
    from engine.features import Match
    from engine.ruleset import Ruleset

log = logging.getLogger(__name__)

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


# --- after a scan succeeds (livehunt registers here; scans imports no app above it) ---------
@dataclass(frozen=True, slots=True)
class ScanDone:
    scan_id: int
    sample_id: int
    sha256: str


ScanSucceededHook = Callable[[ScanDone], None]
_SCAN_SUCCEEDED: list[ScanSucceededHook] = []


def register_scan_succeeded(hook: ScanSucceededHook) -> None:
    """Call ``hook`` in the worker after each scan that succeeded, once it is committed.

    A hook must be quick (enqueue a task, not do the work) and never fails the scan: its
    exceptions are logged. Apps register from their ``AppConfig.ready``."""
    if hook not in _SCAN_SUCCEEDED:
        _SCAN_SUCCEEDED.append(hook)


def scan_succeeded(done: ScanDone) -> None:
    """Run the registered hooks (scans.services calls this after commit)."""
    for hook in list(_SCAN_SUCCEEDED):
        try:
            hook(done)
        except Exception:  # a watcher's failure must never touch the scan
            log.exception("scan %s: a scan-succeeded hook failed", done.scan_id)


# --- stored samples, for apps that match their own rules on them --------------------------
@dataclass(frozen=True, slots=True)
class SampleRef:
    id: int
    sha256: str
    package: str
    app_label: str
    original_name: str
    url: str


def sample_ref(sample_id: int) -> SampleRef | None:
    row = (
        Sample.objects.filter(pk=sample_id)
        .values("id", "sha256", "package", "app_label", "original_name")
        .first()
    )
    if row is None:
        return None
    return SampleRef(**row, url=reverse("scans:sample-detail", args=[row["sha256"]]))


class SampleMatchError(Exception):
    """The stored sample cannot be matched (its file is gone or no longer analyses)."""


def sample_match(*, sample_id: int, ruleset: Ruleset) -> list[Match] | None:
    """``ruleset``'s matches on a stored sample, read the way a retro-hunt reads it (the
    stored facts, the unit pack, else the file). None when the sample no longer exists."""
    from engine.errors import AnalysisError
    from scans.hunt_match import sample_match as match_stored
    from scans.storage import ScanError

    sample = Sample.objects.filter(pk=sample_id).first()
    if sample is None:
        return None
    try:
        return match_stored(sample, ruleset)
    except (AnalysisError, ScanError) as exc:
        raise SampleMatchError(str(exc)) from exc


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
