"""The clean-corpus gate of approvals, provided by another app through ONE typed protocol.

The gate needs retro-hunts, which live in the scans app; threats must not import scans
(dependencies point one way: scans → threats). So threats declares what it needs from a gate,
``GateProvider``, and the scans app registers its implementation once, in
``ScansConfig.ready()``: ``set_gate_provider(scans.gates.CLEAN_CORPUS_GATE)``. A second,
different provider is refused (``ImproperlyConfigured``): there is one gate, and which one
runs never depends on the order apps start in. Registering the same provider again is a no-op
(``AppConfig.ready`` may run more than once in tests).

What a provider does, and what threats calls it for:

- ``approval_check(revision, override_reason)`` (``signature_approve``): returns when the
  revision may be approved and raises ``ApplicationError`` (details in ``extra``) when it may
  not. ``override_reason`` is the reviewer's written reason to approve despite clean hits (or
  a clean corpus smaller than ``GATE_MIN_CLEAN_APPS``), or None. It returns what the override
  was needed for (``"clean_hits"``, ``"no_clean_corpus"``), or None when the revision passed
  on its own: only then is the override kept on the revision and audited.
- ``approval_refusals(revisions)`` (a bulk approve, no override): each revision's
  ``GateRefusal`` or None, in a few queries for the batch.
- ``run_now(revision_ids)`` (the demo seed, never a request): retro-hunt the revisions over
  the clean corpus to the end in this process.
- ``on_submit(revision_ids=..., actor=...)``: called once per submission, after it commits,
  with every revision submitted together (a bulk submit, an import with ``--submit``); scans
  starts ONE gate hunt of them all on queue ``hunts``, so the reviewer usually finds the
  revisions gated already. A failure is logged and never undoes the submission (the reviewer
  can still start the hunt from the signature page).
- ``states(revisions)`` (lists: a fixed number of queries): each revision's ``GateVerdict``.
- ``detail(revision)`` (the signature page): a ``GateDetail`` (its hunt, the clean hits, the
  review difference against the shipping or previous revision).

With no provider registered (threats alone, without scans): approvals still go through
``signature_approve``'s own check, which refuses a revision never gated (``gated_at`` unset),
so that no approval slips through; a bulk approve refuses the same way; submitting starts no
hunt; ``run_gate_now`` raises ``RuntimeError``; lists show the verdict from the revision's own
fields (never ``stale``); the signature page shows no gate card (``gate_detail`` is None).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from django.core.exceptions import ImproperlyConfigured

from portal.exceptions import ApplicationError, ConflictError
from portal.models import User
from threats.models import SignatureRevision

log = logging.getLogger(__name__)

GateVerdict = Literal["not_gated", "stale", "clean_hits", "no_clean_corpus", "passed"]
# what a reviewer's written override reason was needed for
GateOverride = Literal["clean_hits", "no_clean_corpus"]

GATE_LABELS: dict[GateVerdict, str] = {
    "not_gated": "not gated",
    "stale": "stale",
    "clean_hits": "clean hits",
    "no_clean_corpus": "no clean corpus",
    "passed": "passed",
}


@dataclass(frozen=True, slots=True)
class SampleLink:
    """A sample a gate shows (a clean hit, a line of the review difference)."""

    sha256: str
    package: str
    name: str
    url: str


@dataclass(frozen=True, slots=True)
class GateState:
    """The gate verdict of one revision as data.

    ``clean_apps`` is how many clean apps the hunt covered (samples labelled clean now with an
    id it covered); ``clean_min`` the minimum below which the verdict is ``no_clean_corpus``
    rather than ``passed``; ``clean_added`` the clean samples stored after the hunt started
    and ``stale_reason`` why a label change made the hunt stale (either: ``stale``).
    """

    gate: GateVerdict
    hunt: int | None = None
    clean_hits: tuple[SampleLink, ...] = ()
    clean_added: int = 0
    stale_reason: str = ""
    clean_apps: int = 0
    clean_min: int = 0


@dataclass(frozen=True, slots=True)
class ReviewDiff:
    """What changes if the revision replaces the one shipping (or the previous one)."""

    against: str
    base_revision: int | None
    base_gated: bool
    hunt: int | None
    base_hunt: int | None
    compared_up_to_sample_id: int
    new_clean_hits: tuple[SampleLink, ...]
    new_malicious_hits: tuple[SampleLink, ...]
    lost_malicious_hits: tuple[SampleLink, ...]


@dataclass(frozen=True, slots=True)
class GateDetail:
    """One revision's gate as the signature page shows it (``GateState`` with the listed
    clean hits cut to a page, their count, the hunt's page and the review difference)."""

    gate: GateVerdict
    hunt: int | None
    clean_hits: tuple[SampleLink, ...]
    clean_hit_count: int
    clean_added: int
    stale_reason: str
    clean_apps: int
    clean_min: int
    hunt_url: str | None
    review_diff: ReviewDiff | None


@dataclass(frozen=True, slots=True)
class GateRefusal:
    """Why the gate refuses an approval: a sentence for a person, and ``extra``, the details
    the API returns with it (``{"gate": <verdict>, ...}``, JSON)."""

    message: str
    extra: Mapping[str, Any]

    def error(self) -> ApplicationError:
        return ConflictError(self.message, dict(self.extra))


class GateProvider(Protocol):
    """The clean-corpus gate, as threats needs it (scans implements it)."""

    def approval_check(
        self, revision: SignatureRevision, override_reason: str | None
    ) -> GateOverride | None:
        """Raise ``ApplicationError`` to refuse; else what the override was needed for."""
        ...

    def approval_refusals(
        self, revisions: Sequence[SignatureRevision]
    ) -> dict[int, GateRefusal | None]:
        """{revision id: its refusal without an override, or None}, for every revision."""
        ...

    def run_now(self, revision_ids: list[int]) -> None:
        """Retro-hunt these revisions over the clean corpus to the end, in this process."""
        ...

    def on_submit(self, *, revision_ids: list[int], actor: User | None) -> None:
        """Start gating revisions just submitted for review together (after commit)."""
        ...

    def states(self, revisions: Sequence[SignatureRevision]) -> dict[int, GateVerdict]:
        """{revision id: verdict} for a list, in a fixed number of queries."""
        ...

    def detail(self, revision: SignatureRevision) -> GateDetail:
        """Everything the signature page shows about one revision's gate."""
        ...


_provider: GateProvider | None = None


def set_gate_provider(provider: GateProvider) -> None:
    """Register THE gate provider; the same one again is a no-op, a different one an error."""
    global _provider
    if _provider is not None and _provider is not provider and _provider != provider:
        raise ImproperlyConfigured(
            f"a gate provider is already registered ({_provider!r}); refusing {provider!r}: "
            "there is one clean-corpus gate"
        )
    _provider = provider


def gate_provider() -> GateProvider | None:
    """The registered provider, or None (the scans app is not installed)."""
    return _provider


@contextmanager
def gate_provider_replaced(provider: GateProvider | None) -> Iterator[None]:
    """For tests: another provider (or none) inside the block, the registered one after."""
    global _provider
    before, _provider = _provider, provider
    try:
        yield
    finally:
        _provider = before


# --- what threats calls ----------------------------------------------------------------------
def approval_check(revision: SignatureRevision, override_reason: str | None) -> GateOverride | None:
    """The gate's refusal propagates; returns what the reviewer's override reason was needed
    for (None: the revision passed on its own, or no provider is registered and the caller's
    own ``gated_at`` check decides)."""
    if _provider is None:
        return None
    return _provider.approval_check(revision, override_reason)


def approval_refusals(revisions: Sequence[SignatureRevision]) -> dict[int, GateRefusal | None]:
    """Each revision's refusal (no override), or None where the gate lets it pass (all of
    them with no provider: the caller's ``gated_at`` check still refuses a revision never
    gated)."""
    if _provider is None:
        return {r.pk: None for r in revisions}
    return _provider.approval_refusals(revisions)


def run_gate_now(revision_ids: list[int]) -> None:
    """Retro-hunt these revisions over the clean corpus now (demo seed); needs a provider."""
    if _provider is None:
        raise RuntimeError("no gate provider is registered (is the scans app on?)")
    _provider.run_now(revision_ids)


def gate_on_submit(*, revision_ids: Sequence[int], actor: User | None) -> None:
    """Tell the provider once about all the revisions submitted together; its failure is
    logged, never raised (the submission has committed)."""
    ids = list(dict.fromkeys(revision_ids))
    if not ids or _provider is None:
        return
    try:
        _provider.on_submit(revision_ids=ids, actor=actor)
    except Exception:
        log.exception("gate provider %r failed on submit of %d revision(s)", _provider, len(ids))


def gate_states(revisions: Sequence[SignatureRevision]) -> dict[int, GateVerdict]:
    """The gate verdict of each revision; from the revision's own fields (never ``stale``)
    when no provider is registered."""
    if _provider is not None:
        return _provider.states(revisions)
    return {
        r.pk: "not_gated" if r.gated_at is None else "clean_hits" if r.clean_hits else "passed"
        for r in revisions
    }


def gate_detail(revision: SignatureRevision) -> GateDetail | None:
    """The signature page's gate card, or None when no provider is registered."""
    return _provider.detail(revision) if _provider is not None else None
