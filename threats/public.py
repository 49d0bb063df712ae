"""The threats app's front door for other apps (OEP-49 style).

Other apps (releases, scans) call these functions and get frozen dataclasses or the engine's
``RuleRecord`` back, never querysets or model instances, so the models here can change
without breaking them.

- ``deployed_records()``: what a new release ships (deployed and noisy signatures' deployed
  revisions; noisy ones have ``noisy=True``). A record's severity and name (family) are its
  revision's, never the signature's current ones: an edit waiting for review ships nothing.
- ``records_for_revisions(ids)``: any revisions, drafts included (retro-hunts).
- ``shipping_pins()`` / ``records_for_pins(pins)``: what a release pins, as (signature id,
  revision *number*, noisy), and the records of exactly those revisions.
- ``signature_refs(ids)``: names, kinds, statuses and page links for listing matches.
- ``register_signature_panel(provider)`` / ``signature_panels(...)``: sections other apps
  add to the signature page (releases: what phones report), without threats importing them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from django.db.models import F
from django.urls import reverse

from engine.features import RuleRecord
from threats.models import Family, Signature, SignatureRevision, Status, signature_name

_RECORD_FIELDS = (
    "id",
    "number",
    "body",
    "min_engine",
    "signature_id",
    "signature__kind",
    "signature__status",
    # the revision's own severity and family: a release ships exactly what was reviewed
    "severity",
    "family__name",
    "family__category",
)
# SQLite allows at most 999 (older) / 32766 variables per statement; stay well under.
_CHUNK = 900


@dataclass(frozen=True)
class GateResult:
    """A finished retro-hunt's verdict on one revision (``body`` as it was hunted)."""

    revision_id: int
    body: Any
    clean_hits: int


@dataclass(frozen=True)
class HitStats:
    """A signature's hits by the samples' current labels."""

    malicious: int
    clean: int
    unknown: int
    last_hit_at: Any


@dataclass(frozen=True, slots=True)
class SignatureRef:
    """Enough about a signature to name it and link to its page."""

    id: int
    name: str
    kind: str
    severity: str
    status: str
    url: str
    family: str = ""  # the current revision's family (the dashboard's detections per family)


def signature_url(signature_id: int) -> str:
    return reverse("threats:signature-detail", args=[signature_id])


def _record(row: dict[str, Any], *, noisy: bool) -> RuleRecord:
    return RuleRecord(
        id=row["signature_id"],
        revision=row["number"],
        name=signature_name(
            category=row["family__category"],
            family=row["family__name"],
            signature_id=row["signature_id"],
            revision=row["number"],
        ),
        kind=row["signature__kind"],
        body=row["body"],
        severity=row["severity"],
        noisy=noisy,
        min_engine=row["min_engine"],
    )


def _chunks(ids: Iterable[int]) -> Iterable[list[int]]:
    unique = sorted(set(ids))
    for start in range(0, len(unique), _CHUNK):
        yield unique[start : start + _CHUNK]


def deployed_records(revision_ids: Iterable[int] | None = None) -> list[RuleRecord]:
    """The records a release ships: each deployed or noisy signature's deployed revision.

    With ``revision_ids``, only those of the shipping revisions (a release pinning a subset).
    Noisy signatures come back with ``noisy=True`` (reported, never scoring). Sorted by
    signature id.
    """
    shipping = SignatureRevision.objects.filter(
        signature__status__in=(Status.DEPLOYED, Status.NOISY),
        signature__deployed_revision=F("id"),
    )
    rows: list[dict[str, Any]] = []
    if revision_ids is None:
        rows = list(shipping.values(*_RECORD_FIELDS))
    else:
        for chunk in _chunks(revision_ids):
            rows.extend(shipping.filter(id__in=chunk).values(*_RECORD_FIELDS))
    rows.sort(key=lambda r: r["signature_id"])
    return [_record(r, noisy=r["signature__status"] == Status.NOISY) for r in rows]


def records_for_revisions(ids: Iterable[int]) -> list[RuleRecord]:
    """Records for any revisions (drafts and in-review ones too), for retro-hunts.

    Unknown ids are left out. ``noisy`` is True when the signature is noisy now. Sorted by
    signature id, then revision number.
    """
    rows: list[dict[str, Any]] = []
    for chunk in _chunks(ids):
        rows.extend(SignatureRevision.objects.filter(id__in=chunk).values(*_RECORD_FIELDS))
    rows.sort(key=lambda r: (r["signature_id"], r["number"]))
    return [_record(r, noisy=r["signature__status"] == Status.NOISY) for r in rows]


Pin = tuple[int, int, bool]  # signature id, revision number, noisy


def shipping_pins() -> list[Pin]:
    """(signature id, deployed revision number, noisy) of every deployed or noisy signature.

    Two columns of one table with one join, no bodies: cheap enough to run inside the
    publish transaction even at a million signatures.
    """
    rows = Signature.objects.filter(
        status__in=(Status.DEPLOYED, Status.NOISY), deployed_revision__isnull=False
    ).values_list("id", "deployed_revision__number", "status")
    return [(sid, number, status == Status.NOISY) for sid, number, status in rows.iterator(5000)]


def records_for_pins(pins: Iterable[Pin]) -> list[RuleRecord]:
    """The records of exactly the pinned revisions, ``noisy`` as pinned, sorted by signature.

    A pin names a revision by its signature and its *number* (not the revision's row id).
    One query covers the pins that still ship (nearly all of them); revisions replaced since
    come from a second pass by signature. Pins whose revision no longer exists are left out:
    the caller compares counts.
    """
    wanted = {sid: (number, noisy) for sid, number, noisy in pins}
    out: dict[int, RuleRecord] = {}
    for record in deployed_records():
        pin = wanted.get(record.id)
        if pin is not None and pin[0] == record.revision:
            out[record.id] = record if record.noisy == pin[1] else replace(record, noisy=pin[1])
    missing = [sid for sid in wanted if sid not in out]
    for chunk in _chunks(missing):
        rows = SignatureRevision.objects.filter(signature_id__in=chunk).values(*_RECORD_FIELDS)
        for row in rows:
            number, noisy = wanted[row["signature_id"]]
            if row["number"] == number:
                out[row["signature_id"]] = _record(row, noisy=noisy)
    return [out[sid] for sid in sorted(out)]


def records_by_revision(ids: Iterable[int]) -> dict[int, RuleRecord]:
    """{revision id: RuleRecord} for any revisions (retro-hunts keep which revision hit)."""
    out: dict[int, RuleRecord] = {}
    for chunk in _chunks(ids):
        for row in SignatureRevision.objects.filter(id__in=chunk).values(*_RECORD_FIELDS):
            out[row["id"]] = _record(row, noisy=row["signature__status"] == Status.NOISY)
    return out


def invalid_signature_ids(ids: Iterable[int]) -> list[int]:
    """The signatures among ``ids`` whose body does not compile here (status invalid)."""
    out: list[int] = []
    for chunk in _chunks(ids):
        out += Signature.objects.filter(id__in=chunk, status=Status.INVALID).values_list(
            "id", flat=True
        )
    return sorted(out)


def ungated_shipping() -> list[SignatureRef]:
    """Shipping (deployed or noisy) signatures whose deployed revision was never gated by a
    retro-hunt over the clean corpus: a release must not contain them."""
    ids = Signature.objects.filter(
        status__in=(Status.DEPLOYED, Status.NOISY),
        deployed_revision__isnull=False,
        deployed_revision__gated_at__isnull=True,
    ).values_list("id", flat=True)
    refs = signature_refs(ids)
    return [refs[i] for i in sorted(refs)]


@dataclass(frozen=True, slots=True)
class GateFacts:
    """What a release page shows about how a revision passed the clean-corpus gate."""

    revision_id: int
    signature_id: int
    number: int
    gated_at: Any
    gate_hunt_id: int | None
    clean_hits: int
    override_reason: str


def gate_facts(signature_revisions: Iterable[tuple[int, int]]) -> dict[tuple[int, int], GateFacts]:
    """{(signature id, revision number): GateFacts} for the pairs given."""
    pairs = set(signature_revisions)
    out: dict[tuple[int, int], GateFacts] = {}
    for chunk in _chunks(sig for sig, _ in pairs):
        rows = SignatureRevision.objects.filter(signature_id__in=chunk).values_list(
            "id",
            "signature_id",
            "number",
            "gated_at",
            "gate_hunt_id",
            "clean_hits",
            "gate_override_reason",
        )
        for rid, sid, number, gated_at, hunt_id, hits, reason in rows:
            if (sid, number) in pairs:
                out[(sid, number)] = GateFacts(rid, sid, number, gated_at, hunt_id, hits, reason)
    return out


def current_revision_ids(signature_ids: Iterable[int]) -> dict[int, int]:
    """{signature id: id of its newest revision} (what a retro-hunt of a draft runs)."""
    out: dict[int, int] = {}
    for chunk in _chunks(signature_ids):
        for sig_id, rev_id in Signature.objects.filter(
            id__in=chunk, current_revision__isnull=False
        ).values_list("id", "current_revision_id"):
            assert rev_id is not None
            out[sig_id] = rev_id
    return out


def signature_refs(ids: Iterable[int]) -> dict[int, SignatureRef]:
    """{signature id: SignatureRef} for the ids that exist (unknown ids are left out)."""
    out: dict[int, SignatureRef] = {}
    for chunk in _chunks(ids):
        rows = Signature.objects.filter(id__in=chunk).values_list(
            "id",
            "kind",
            "severity",
            "status",
            "family__name",
            "family__category",
            "current_revision__number",
        )
        for sig_id, kind, severity, status, family, category, number in rows:
            out[sig_id] = SignatureRef(
                id=sig_id,
                name=signature_name(
                    category=category,
                    family=family,
                    signature_id=sig_id,
                    revision=number or 1,
                ),
                kind=kind,
                severity=severity,
                status=status,
                url=signature_url(sig_id),
                family=family or "",
            )
    return out


# --- sections other apps add to the signature page ------------------------------------------
@dataclass(frozen=True, slots=True)
class SignaturePanel:
    """A section of the signature page that another app fills (threats never imports it):
    a title, a few facts and a table, all plain text (the template escapes it)."""

    key: str  # the section's HTML id
    title: str
    facts: tuple[tuple[str, str], ...] = ()
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    empty: str = ""  # shown instead of the table when there are no rows


# provider(signature_id=..., user=...) -> a panel, or None when that user may not see it
SignaturePanelProvider = Callable[..., SignaturePanel | None]
SIGNATURE_PANELS: list[SignaturePanelProvider] = []


def register_signature_panel(provider: SignaturePanelProvider) -> None:
    """Add a provider once (``AppConfig.ready`` may run more than once in tests)."""
    if provider not in SIGNATURE_PANELS:
        SIGNATURE_PANELS.append(provider)


def signature_panels(*, signature_id: int, user: Any) -> list[SignaturePanel]:
    """The registered apps' sections for this signature page, in registration order."""
    out = []
    for provider in SIGNATURE_PANELS:
        panel = provider(signature_id=signature_id, user=user)
        if panel is not None:
            out.append(panel)
    return out


__all__ = [
    "GateFacts",
    "Pin",
    "SignaturePanel",
    "SignatureRef",
    "current_revision_ids",
    "deployed_records",
    "gate_facts",
    "invalid_signature_ids",
    "records_by_revision",
    "records_for_pins",
    "records_for_revisions",
    "register_signature_panel",
    "shipping_pins",
    "signature_panels",
    "signature_refs",
    "signature_url",
    "ungated_shipping",
]


def signature_quiet(*, signature_id: int, actor: Any, reason: str) -> bool:
    """Mark a deployed signature noisy (the kill switch for a false positive): it keeps shipping
    but never scores. True when it was marked now, False when it was noisy already. Refusals
    (no reviewer, not deployed, no such signature) raise the usual application errors."""
    from portal.exceptions import NotFoundError
    from threats.services import signature_mark_noisy

    signature = Signature.objects.filter(pk=signature_id).first()
    if signature is None:
        raise NotFoundError(f"There is no signature {signature_id}.")
    if signature.status == Status.NOISY:
        return False
    signature_mark_noisy(signature=signature, actor=actor, reason=reason)
    return True


@dataclass(frozen=True, slots=True)
class RevisionInfo:
    """A revision as a release lists it: its name, kind, severity and who approved it."""

    name: str
    kind: str
    severity: str
    url: str
    approved_by: str | None
    approved_at: Any


def revision_infos(pairs: Iterable[tuple[int, int]]) -> dict[tuple[int, int], RevisionInfo]:
    """Each (signature id, revision number)'s name (from the revision's family), kind,
    severity and approver; pairs that do not exist are left out."""
    wanted = set(pairs)
    if not wanted:
        return {}
    refs = signature_refs({sid for sid, _ in wanted})
    out: dict[tuple[int, int], RevisionInfo] = {}
    for ids in _chunks({sid for sid, _ in wanted}):
        rows = SignatureRevision.objects.filter(signature_id__in=ids).values(
            "signature_id",
            "number",
            "reviewed_by__username",
            "reviewed_at",
            "severity",
            "family__category",
            "family__name",
        )
        for row in rows:
            key = (row["signature_id"], row["number"])
            if key not in wanted:
                continue
            ref = refs.get(row["signature_id"])
            out[key] = RevisionInfo(
                name=signature_name(
                    category=row["family__category"],
                    family=row["family__name"],
                    signature_id=row["signature_id"],
                    revision=row["number"],
                ),
                kind=ref.kind if ref else "",
                severity=row["severity"],
                url=ref.url if ref else "",
                approved_by=row["reviewed_by__username"],
                approved_at=row["reviewed_at"],
            )
    return out


# --- for the gate provider and the hit counters in scans (issue 15: no app imports our
# models or services) ----------------------------------------------------------------------

# the type the gate registry passes its providers (threats.gates)
GatedRevision = SignatureRevision


@dataclass(frozen=True, slots=True)
class FamilyRef:
    id: int
    name: str


def families() -> list[FamilyRef]:
    """Every family, by name (for filters and forms)."""
    return [FamilyRef(i, n) for i, n in Family.objects.order_by("name").values_list("id", "name")]


def family_find(value: str) -> FamilyRef | None:
    """A family by id (ASCII digits an id column holds) or by name, case-insensitively."""
    text = value.strip()
    rows = (
        Family.objects.filter(pk=int(text))
        if re.fullmatch(r"[0-9]{1,18}", text)  # not isdigit(): "³" passes it, int() refuses
        else Family.objects.filter(name__iexact=text)
    )
    row = rows.values_list("id", "name").first()
    return FamilyRef(*row) if row is not None else None


@dataclass(frozen=True, slots=True)
class ReviewBase:
    """The revision a reviewed one would replace: the shipping one, else the previous one."""

    pk: int
    number: int
    gate_hunt_id: int | None
    against: str


def review_base(revision: GatedRevision) -> ReviewBase | None:
    sig = revision.signature
    base = None
    against = ""
    if sig.deployed_revision_id and sig.deployed_revision_id != revision.pk:
        base = SignatureRevision.objects.filter(pk=sig.deployed_revision_id).first()
        against = "the shipping revision"
    elif revision.number > 1:
        base = SignatureRevision.objects.filter(
            signature_id=revision.signature_id, number=revision.number - 1
        ).first()
        against = "the previous revision"
    if base is None:
        return None
    return ReviewBase(base.pk, base.number, base.gate_hunt_id, f"{against} r{base.number}")


def revision_clean_hits_refresh(*, revision: GatedRevision, clean_hits: int) -> None:
    from threats import services

    services.revision_clean_hits_refresh(revision=revision, clean_hits=clean_hits)


def revisions_record_gate(*, hunt_id: int, results: Sequence[GateResult]) -> list[int]:
    """Record a gate hunt's result per revision; the revisions it recorded."""
    from threats import services

    return services.revisions_record_gate(hunt_id=hunt_id, results=results)


def signature_stats_record(*, stats: dict[int, HitStats]) -> None:
    """Store hit counts per signature (the scans app counts them from its hits table)."""
    from threats import services

    services.signature_stats_record(stats=stats)
