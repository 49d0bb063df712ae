"""Checks a revision must pass before it is approved, registered by other apps.

The clean-corpus gate needs retro-hunts, which live in the scans app; threats must not import
scans (dependencies point one way: scans → threats). So threats keeps this small registry and
calls every gate from ``signature_approve``; the scans app appends its gate in
``ScansConfig.ready()`` (``scans.gates.clean_corpus_gate``).

A gate is ``gate(revision, override_reason)``: it returns when the revision may be approved
and raises ``ApplicationError`` (with details in ``extra``) when it may not. ``override_reason``
is the reviewer's written reason to approve despite clean hits (or a clean corpus smaller than
``GATE_MIN_CLEAN_APPS``), or None. A gate returns what the override was needed for
(``"clean_hits"``, ``"no_clean_corpus"``), or None when the revision passed on its own: only
then is the override kept on the revision and audited.

``GATE_RUNNERS`` lets code in threats (the demo seed) run a gate hunt to the end without
importing scans.

``SUBMIT_HOOKS`` run after revisions are submitted for review (once the transaction commits),
called once per submission with every revision submitted together (a bulk submit, an import
with ``--submit``): the scans app registers one that starts ONE gate hunt of them all on queue
``hunts``, so the reviewer usually finds the revisions gated already. A hook's failure is
logged and never undoes the submission (the reviewer can still start the hunt from the
signature page).

``GATE_VIEWS`` lets pages in threats show the gate without importing scans: a provider gives
the verdict of many revisions at once (``not_gated`` | ``stale`` | ``clean_hits`` |
``no_clean_corpus`` | ``passed``,
for lists: a fixed number of queries) and the details of one (its hunt, the clean hits, the
review difference against the shipping or previous revision).

Besides the registered gates, ``signature_approve`` itself refuses a revision that was never
gated (``gated_at`` unset), so that no approval slips through if no gate is registered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from portal.exceptions import ApplicationError
from threats.models import SignatureRevision

log = logging.getLogger(__name__)

ApprovalGate = Callable[[SignatureRevision, str | None], str | None]
APPROVAL_GATES: list[ApprovalGate] = []
# a gate's form for many revisions at once: {revision id: its refusal, or None}
BatchGate = Callable[[Sequence[SignatureRevision]], dict[int, ApplicationError | None]]
BATCH_GATES: dict[ApprovalGate, BatchGate] = {}
# Runs the gate's retro-hunt of these revision ids to the end in this process (the scans app
# registers ``retrohunt_run_sync``); the demo seed uses it, never a request.
GateRunner = Callable[[list[int]], object]
GATE_RUNNERS: list[GateRunner] = []


# Called as hook(revision_ids=[...], actor=...) after a submission commits.
SubmitHook = Callable[..., Any]
SUBMIT_HOOKS: list[SubmitHook] = []


def run_approval_gates(revision: SignatureRevision, override_reason: str | None) -> list[str]:
    """Call every registered gate; the first refusal propagates. Returns what the reviewer's
    override reason was needed for (empty: the revision passed on its own)."""
    overridden: list[str] = []
    for gate in APPROVAL_GATES:
        used = gate(revision, override_reason)
        if used:
            overridden.append(used)
    return overridden


def register(gate: ApprovalGate, *, many: BatchGate | None = None) -> None:
    """Add ``gate`` once (``AppConfig.ready`` may run more than once in tests); ``many`` is
    the same gate for many revisions at once, without an override (a bulk approve)."""
    if gate not in APPROVAL_GATES:
        APPROVAL_GATES.append(gate)
    if many is not None:
        BATCH_GATES[gate] = many


def approval_refusals(
    revisions: Sequence[SignatureRevision],
) -> dict[int, ApplicationError | None]:
    """Every gate's refusal of each revision (no override), or None where all let it pass:
    batched where a gate has a batch form (``register(..., many=...)``), else one by one."""
    out: dict[int, ApplicationError | None] = {r.pk: None for r in revisions}
    for gate in APPROVAL_GATES:
        waiting = [r for r in revisions if out[r.pk] is None]
        many = BATCH_GATES.get(gate)
        if many is not None:
            for pk, refusal in many(waiting).items():
                out[pk] = out[pk] or refusal
            continue
        for revision in waiting:
            try:
                gate(revision, None)
            except ApplicationError as exc:
                out[revision.pk] = exc
    return out


def register_runner(runner: GateRunner) -> None:
    if runner not in GATE_RUNNERS:
        GATE_RUNNERS.append(runner)


def run_gate_now(revision_ids: list[int]) -> None:
    """Retro-hunt these revisions over the clean corpus now (demo seed); needs a runner."""
    if not GATE_RUNNERS:
        raise RuntimeError("no clean-corpus gate runner is registered (is the scans app on?)")
    GATE_RUNNERS[-1](revision_ids)


def register_submit_hook(hook: SubmitHook) -> None:
    if hook not in SUBMIT_HOOKS:
        SUBMIT_HOOKS.append(hook)


def run_submit_hooks(*, revision_ids: Sequence[int], actor: Any) -> None:
    """Call every submit hook once with all the revisions submitted together; one failing is
    logged, the others still run."""
    ids = list(dict.fromkeys(revision_ids))
    if not ids:
        return
    for hook in list(SUBMIT_HOOKS):
        try:
            hook(revision_ids=ids, actor=actor)
        except Exception:
            log.exception("submit hook %r failed for %d revision(s)", hook, len(ids))


# --- showing the gate on pages --------------------------------------------------------------
@dataclass(frozen=True)
class GateView:
    # {revision id: verdict} for many revisions, in a fixed number of queries
    states: Callable[[Sequence[SignatureRevision]], dict[int, str]]
    # everything the review page shows about one revision's gate
    detail: Callable[[SignatureRevision], dict[str, Any]]


GATE_VIEWS: list[GateView] = []


def register_gate_view(view: GateView) -> None:
    if view not in GATE_VIEWS:
        GATE_VIEWS.append(view)


def gate_states(revisions: Sequence[SignatureRevision]) -> dict[int, str]:
    """The gate verdict of each revision; from the revision's own fields (never ``stale``)
    when no provider is registered."""
    if GATE_VIEWS:
        return GATE_VIEWS[-1].states(revisions)
    return {
        r.pk: "not_gated" if r.gated_at is None else "clean_hits" if r.clean_hits else "passed"
        for r in revisions
    }


GATE_LABELS = {
    "not_gated": "not gated",
    "stale": "stale",
    "clean_hits": "clean hits",
    "no_clean_corpus": "no clean corpus",
    "passed": "passed",
}


def gate_detail(revision: SignatureRevision) -> dict[str, Any] | None:
    return GATE_VIEWS[-1].detail(revision) if GATE_VIEWS else None
