"""The clean-corpus gate: ``CLEAN_CORPUS_GATE``, the ``threats.gates.GateProvider`` that
ScansConfig registers (``threats.gates.set_gate_provider``).

A revision may be approved only when (docs/retrohunts.md):

1. a retro-hunt of exactly this body has finished (``revision.gate_hunt_id``, recorded when
   the hunt finished, and the body the hunt snapshotted equals the revision's body);
2. that hunt covered the *current* clean corpus: it covered every sample with
   ``id <= max_sample_id``, so no clean sample may have a larger id (one added, or uploaded,
   after the hunt started). A sample relabelled clean later has a smaller id and was covered;
3. it hit no sample labelled clean *now*, unless the reviewer gives an override reason;
4. it covered at least ``GATE_MIN_CLEAN_APPS`` clean apps (samples labelled clean now among
   those it covered): a gate over no clean corpus proves nothing, so below the minimum the
   verdict is ``no_clean_corpus`` and approval needs the reviewer's written override too.

A refusal (``threats.gates.GateRefusal``, raised as a ConflictError on one approval) has an
``extra`` that holds the gate verdict, the clean hits and the review difference
(``scans.selectors.revision_review_diff``) so the API and the review page can show what the
reviewer must weigh.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from django.conf import settings
from django.db.models import Max

from portal.models import User
from scans.models import HuntMatch, HuntStatus, Label, RetroHunt, Sample
from threats.gates import (
    GateDetail,
    GateOverride,
    GateRefusal,
    GateState,
    GateVerdict,
    ReviewDiff,
    SampleLink,
)
from threats.public import GatedRevision as SignatureRevision
from threats.public import revision_clean_hits_refresh

MAX_LISTED = 50


def min_clean_apps() -> int:
    return max(0, int(settings.GATE_MIN_CLEAN_APPS))


_bodies_lock = threading.Lock()
# (hunt id, finished_at) -> {revision id: body as hunted}; a feed's hunt holds 100,000 records
_hunted_bodies: OrderedDict[tuple[int, str], dict[int, Any]] = OrderedDict()


def _bodies_of(hunt: RetroHunt) -> dict[int, Any]:
    """What the hunt snapshotted of each revision, parsed once per process and hunt."""
    key = (hunt.pk, hunt.finished_at.isoformat() if hunt.finished_at else "")
    with _bodies_lock:
        if key in _hunted_bodies:
            return _hunted_bodies[key]
    records = RetroHunt.objects.filter(pk=hunt.pk).values_list("records", flat=True).first()
    bodies = {r["revision_id"]: r["body"] for r in records or () if r.get("revision_id")}
    with _bodies_lock:
        _hunted_bodies[key] = bodies
        while len(_hunted_bodies) > 2:
            _hunted_bodies.popitem(last=False)
    return bodies


def _gate_hunts(revisions: Sequence[SignatureRevision]) -> dict[int, RetroHunt]:
    """{revision id: the finished hunt that gated exactly its body}, for those gated."""
    hunt_ids = {r.gate_hunt_id for r in revisions if r.gate_hunt_id is not None}
    hunts = {
        h.pk: h
        for h in RetroHunt.objects.filter(pk__in=hunt_ids, status=HuntStatus.FINISHED).defer(
            "records"
        )
    }
    out: dict[int, RetroHunt] = {}
    for r in revisions:
        hunt = hunts.get(r.gate_hunt_id or 0)
        if hunt is None:
            continue
        bodies = _bodies_of(hunt)
        if r.pk in bodies and bodies[r.pk] == r.body:
            out[r.pk] = hunt
    return out


def gate_hunt(revision: SignatureRevision) -> RetroHunt | None:
    """The finished hunt that gated this body, if any."""
    return _gate_hunts([revision]).get(revision.pk)


def _clean_hits(hunts: dict[int, RetroHunt]) -> dict[int, list[SampleLink]]:
    """{revision id: the clean samples (by current label) its gate hunt hit}."""
    out: dict[int, list[SampleLink]] = {}
    by_hunt: dict[int, list[int]] = {}
    for rev_id, gated_by in hunts.items():
        by_hunt.setdefault(int(gated_by.pk), []).append(rev_id)
    for hunt_id, rev_ids in by_hunt.items():
        rows = (
            HuntMatch.objects.filter(
                hunt_id=hunt_id, revision_id__in=rev_ids, sample__label=Label.CLEAN
            )
            .values("revision_id", "sample__sha256", "sample__package", "sample__original_name")
            .order_by("sample__package", "sample__sha256")
        )
        for r in rows:
            out.setdefault(int(r["revision_id"] or 0), []).append(
                _link(r["sample__sha256"], r["sample__package"], r["sample__original_name"])
            )
    return out


def _link(sha256: str, package: str = "", name: str = "") -> SampleLink:
    return SampleLink(sha256=sha256, package=package, name=name, url=f"/samples/{sha256}/")


def clean_hit_samples(hunt: RetroHunt, revision: SignatureRevision) -> list[SampleLink]:
    return _clean_hits({revision.pk: hunt}).get(revision.pk, [])


def gate_states_exact(revisions: Sequence[SignatureRevision]) -> dict[int, GateState]:
    """The gate verdict of each revision as data (the signature page shows it;
    ``clean_corpus_gate`` and ``clean_corpus_gate_many`` enforce it), in a few queries per
    distinct gate hunt."""
    least = min_clean_apps()
    hunts = _gate_hunts(revisions)
    hits = _clean_hits(hunts)
    clean = Sample.objects.filter(label=Label.CLEAN)
    counts: dict[int, tuple[int, int]] = {}  # hunt id -> (clean added after, clean covered)
    for max_id, hunt_id in {(h.max_sample_id, h.pk) for h in hunts.values()}:
        counts[hunt_id] = (
            clean.filter(id__gt=max_id).count(),
            clean.filter(id__lte=max_id).count(),
        )
    out: dict[int, GateState] = {}
    for r in revisions:
        gated_by = hunts.get(r.pk)
        if gated_by is None:
            out[r.pk] = GateState(gate="not_gated", clean_min=least)
            continue
        added, covered = counts[gated_by.pk]
        found = hits.get(r.pk, [])
        verdict: GateVerdict
        if added or gated_by.stale_reason:
            verdict = "stale"
        elif found:
            verdict = "clean_hits"
        elif covered < least:
            verdict = "no_clean_corpus"
        else:
            verdict = "passed"
        out[r.pk] = GateState(
            gate=verdict,
            hunt=gated_by.pk,
            clean_hits=tuple(found),
            clean_added=added,
            stale_reason=gated_by.stale_reason,
            clean_apps=covered,
            clean_min=least,
        )
    return out


def gate_state(revision: SignatureRevision) -> GateState:
    """``gate_states_exact`` of one revision."""
    return gate_states_exact([revision])[revision.pk]


def _refusal(
    state: GateState,
    revision: SignatureRevision,
    override_reason: str | None,
    *,
    with_diff: bool = True,
) -> GateRefusal | None:
    """Why the gate refuses this approval, or None (one rule for one and for many)."""
    from scans.selectors import revision_review_diff

    if state.gate == "not_gated":
        return GateRefusal(
            f"Revision {revision.number} has not been retro-hunted over the clean corpus; "
            "run a retro-hunt of it first.",
            {"gate": "not_gated"},
        )
    if state.gate == "stale":
        why = (
            f"{state.clean_added} clean sample(s) were added after retro-hunt #{state.hunt} started"
            if state.clean_added
            else f"retro-hunt #{state.hunt} is stale: {state.stale_reason}"
        )
        return GateRefusal(
            f"{why}; run a new retro-hunt of revision {revision.number}.",
            {
                "gate": "stale",
                "hunt": state.hunt,
                "clean_added": state.clean_added,
                "stale_reason": state.stale_reason,
            },
        )
    hits = state.clean_hits
    if hits and not override_reason:
        names = ", ".join(h.package or h.sha256[:12] for h in hits[:5])
        more = f" and {len(hits) - 5} more" if len(hits) > 5 else ""
        return GateRefusal(
            f"Revision {revision.number} hits {len(hits)} clean app(s) ({names}{more}); "
            "approve only with an override reason.",
            {
                "gate": "clean_hits",
                "hunt": state.hunt,
                "clean_hits": [asdict(h) for h in hits[:MAX_LISTED]],
                "clean_hit_count": len(hits),
                "review_diff": revision_review_diff(revision) if with_diff else None,
            },
        )
    if state.gate == "no_clean_corpus" and not override_reason:
        return GateRefusal(
            f"No clean corpus: retro-hunt #{state.hunt} covered {state.clean_apps} clean "
            f"app(s), fewer than the {state.clean_min} the gate needs "
            "(GATE_MIN_CLEAN_APPS); store clean apps and hunt again, or approve only with an "
            "override reason.",
            {
                "gate": "no_clean_corpus",
                "hunt": state.hunt,
                "clean_apps": state.clean_apps,
                "clean_min": state.clean_min,
            },
        )
    return None


def _overridden(state: GateState) -> GateOverride | None:
    if state.gate == "clean_hits" or state.gate == "no_clean_corpus":
        return state.gate
    return None


def clean_corpus_gate(
    revision: SignatureRevision, override_reason: str | None
) -> GateOverride | None:
    """Refuse the approval (raise a ConflictError) unless the gate passed; returns the verdict
    the reviewer's override reason was needed for (``clean_hits`` | ``no_clean_corpus``), or
    None."""
    state = gate_state(revision)
    if state.gate not in ("not_gated", "stale"):
        revision_clean_hits_refresh(revision=revision, clean_hits=len(state.clean_hits))
    refusal = _refusal(state, revision, override_reason)
    if refusal is not None:
        raise refusal.error()
    return _overridden(state)


def clean_corpus_gate_many(revisions: Sequence[SignatureRevision]) -> dict[int, GateRefusal | None]:
    """``clean_corpus_gate`` for many revisions without an override (a bulk approve): the
    refusal of each revision, or None; a few queries per distinct gate hunt."""
    states = gate_states_exact(revisions)
    out: dict[int, GateRefusal | None] = {}
    for revision in revisions:
        state = states[revision.pk]
        if state.gate not in ("not_gated", "stale"):
            revision_clean_hits_refresh(revision=revision, clean_hits=len(state.clean_hits))
        out[revision.pk] = _refusal(state, revision, None, with_diff=False)
    return out


# --- what pages show -------------------------------------------------------------------------
def gate_states(revisions: Sequence[SignatureRevision]) -> dict[int, GateVerdict]:
    """{revision id: not_gated | stale | clean_hits | no_clean_corpus | passed} in three
    queries, for lists.

    Like ``gate_state`` but from the stored clean-hit count (the detail page recounts by
    current label) and without comparing the hunted body (editing a draft clears its gate).
    """
    hunt_ids = {r.gate_hunt_id for r in revisions if r.gate_hunt_id is not None}
    covered: dict[int, int] = {}
    stale: set[int] = set()
    rows = RetroHunt.objects.filter(pk__in=hunt_ids, status=HuntStatus.FINISHED).values_list(
        "id", "max_sample_id", "stale_reason"
    )
    for hunt_id, max_id, stale_reason in rows:
        covered[hunt_id] = max_id
        if stale_reason:
            stale.add(hunt_id)
    newest_clean = (
        Sample.objects.filter(label=Label.CLEAN).aggregate(m=Max("id"))["m"] if covered else None
    ) or 0
    least = min_clean_apps()
    # a hunt that is not stale covered every clean sample stored now
    clean_apps = Sample.objects.filter(label=Label.CLEAN).count() if covered and least else 0
    out: dict[int, GateVerdict] = {}
    for r in revisions:
        if r.gate_hunt_id is None or r.gate_hunt_id not in covered:
            out[r.pk] = "not_gated"
        elif newest_clean > covered[r.gate_hunt_id] or r.gate_hunt_id in stale:
            out[r.pk] = "stale"
        elif r.clean_hits:
            out[r.pk] = "clean_hits"
        elif clean_apps < least:
            out[r.pk] = "no_clean_corpus"
        else:
            out[r.pk] = "passed"
    return out


def _sample_links(sha256s: set[str]) -> dict[str, SampleLink]:
    rows = Sample.objects.filter(sha256__in=sha256s).values_list(
        "sha256", "package", "original_name"
    )
    return {sha: _link(sha, package, name) for sha, package, name in rows}


def _review_diff(revision: SignatureRevision) -> ReviewDiff:
    """``scans.selectors.revision_review_diff`` with links to the samples."""
    from scans.selectors import revision_review_diff

    diff = revision_review_diff(revision)
    keys = ("new_clean_hits", "new_malicious_hits", "lost_malicious_hits")
    links = _sample_links({sha for k in keys for sha in diff[k]})
    listed = {k: tuple(links.get(sha) or _link(sha) for sha in diff[k]) for k in keys}
    return ReviewDiff(
        against=diff["against"],
        base_revision=diff["base_revision"],
        base_gated=diff["base_gated"],
        hunt=diff["hunt"],
        base_hunt=diff["base_hunt"],
        compared_up_to_sample_id=diff["compared_up_to_sample_id"],
        new_clean_hits=listed["new_clean_hits"],
        new_malicious_hits=listed["new_malicious_hits"],
        lost_malicious_hits=listed["lost_malicious_hits"],
    )


def gate_detail(revision: SignatureRevision) -> GateDetail:
    """The gate of one revision as the review page shows it: verdict, hunt, clean hits, and
    the difference against the shipping (or previous) revision with links to the samples."""
    state = gate_state(revision)
    return GateDetail(
        gate=state.gate,
        hunt=state.hunt,
        clean_hits=state.clean_hits[:MAX_LISTED],
        clean_hit_count=len(state.clean_hits),
        clean_added=state.clean_added,
        stale_reason=state.stale_reason,
        clean_apps=state.clean_apps,
        clean_min=state.clean_min,
        hunt_url=f"/retrohunts/{state.hunt}/" if state.hunt else None,
        review_diff=_review_diff(revision) if state.hunt else None,
    )


# --- the provider threats calls (registered in ScansConfig.ready) -----------------------------
class CleanCorpusGate:
    """``threats.gates.GateProvider``: the clean-corpus gate over this app's retro-hunts."""

    def __repr__(self) -> str:
        return "scans.gates.CLEAN_CORPUS_GATE"

    def approval_check(
        self, revision: SignatureRevision, override_reason: str | None
    ) -> GateOverride | None:
        return clean_corpus_gate(revision, override_reason)

    def approval_refusals(
        self, revisions: Sequence[SignatureRevision]
    ) -> dict[int, GateRefusal | None]:
        return clean_corpus_gate_many(revisions)

    def run_now(self, revision_ids: list[int]) -> None:
        """The gate's hunt run to the end here (the demo seed; never a request)."""
        from scans.retrohunts import retrohunt_run_sync

        retrohunt_run_sync(user=None, revision_ids=revision_ids, limit=None)

    def on_submit(self, *, revision_ids: list[int], actor: User | None) -> None:
        """ONE gate hunt of every revision submitted together, on queue ``hunts`` (threats
        calls this after commit); each revision gets its own gate result when it finishes."""
        from scans.retrohunts import gate_hunt_create

        user = actor if actor is not None and actor.has_perm("scans.add_retrohunt") else None
        gate_hunt_create(user=user, revision_ids=revision_ids)

    def states(self, revisions: Sequence[SignatureRevision]) -> dict[int, GateVerdict]:
        return gate_states(revisions)

    def detail(self, revision: SignatureRevision) -> GateDetail:
        return gate_detail(revision)


CLEAN_CORPUS_GATE = CleanCorpusGate()
