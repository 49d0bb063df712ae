"""The review workflow: submit, approve, reject, mark noisy, disable, one by one and in bulk.

Who may take each step is ``threats.policy`` (the pages and the API show the same rules);
the services here add what is about the request: a reason where one is required, a body that
still compiles, and the clean-corpus gate of an approval (``threats.gates``). Every
transition writes an audit row with its reason.

- ``signature_submit`` puts the current draft revision in review (a never-deployed signature
  becomes ``in_review``; a deployed one stays deployed while its new revision waits).
- ``signature_approve``: a reviewer who is neither the revision's author nor its last editor
  (also a database constraint) approves it; it becomes the deployed revision.
- ``signature_reject``: back to the author with a reason.
- ``signature_mark_noisy`` / ``signature_disable``: a reviewer alone, with a reason.
- ``signature_bulk_action``, ``signatures_submit``, ``signatures_approve``: the same rules on
  many signatures, feed-sized.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from engine.kinds import get_kind
from portal.audit import audit_log, audit_log_many
from portal.exceptions import ApplicationError, ConflictError
from portal.models import User
from threats.gates import approval_check, approval_refusals, gate_on_submit
from threats.models import RevisionState, Signature, SignatureRevision, Status
from threats.policy import BULK_PERMS, require
from threats.services_common import (
    BULK_BATCH,
    current_revision,
    issues_json,
    locked,
    sig_snapshot,
)

BULK_ACTIONS = tuple(BULK_PERMS)  # submit, approve, reject, noisy, disable


def _transition(
    *, signature: Signature, actor: User, action: str, reason: str, before: dict[str, Any]
) -> None:
    audit_log(
        actor=actor,
        action=f"signature.{action}",
        obj=signature,
        before=before,
        after=_transition_after(signature),
        reason=reason,
    )


def _transition_after(signature: Signature) -> dict[str, Any]:
    return {**sig_snapshot(signature), "revision": current_revision(signature).number}


def _transitions(
    *,
    actor: User,
    action: str,
    reason: str,
    done: Sequence[tuple[Signature, dict[str, Any]]],
) -> None:
    """``_transition`` of many signatures (a bulk action): the same audit rows, written
    together."""
    audit_log_many(
        actor=actor,
        action=f"signature.{action}",
        rows=[(sig, before, _transition_after(sig), reason) for sig, before in done],
    )


@transaction.atomic
def signature_submit(
    *, signature: Signature, actor: User, reason: str = "", gate: bool = True
) -> Signature:
    """Put the current draft revision in review (its author, or whoever may edit it).

    ``gate``: start the revision's gate hunt once the transaction commits
    (``threats.gates.gate_on_submit``). ``signatures_submit`` passes False and starts one
    hunt for everything it submitted.
    """
    signature = locked(signature)
    revision = current_revision(signature)
    _check_submit(signature=signature, revision=revision, actor=actor)
    before = sig_snapshot(signature)
    _mark_submitted(revision, timezone.now())
    revision.full_clean()
    revision.save()
    if signature.status == Status.DRAFT:
        signature.status = Status.IN_REVIEW
        signature.save(update_fields=["status", "updated_at"])
    _transition(signature=signature, actor=actor, action="submit", reason=reason, before=before)
    if gate:
        # the gate hunt starts on its own (the gate provider's on_submit; scans registers it)
        revision_ids = [revision.pk]
        transaction.on_commit(lambda: gate_on_submit(revision_ids=revision_ids, actor=actor))
    return signature


def _check_submit(*, signature: Signature, revision: SignatureRevision, actor: User) -> None:
    """Why this revision may not be submitted (raises), for one and for many: the policy,
    then a body that still compiles on this engine."""
    require(actor, signature, "submit")
    result = get_kind(signature.kind).validate(revision.body)
    if result.errors:
        raise ApplicationError(
            f"The body no longer validates: {result.errors[0]}",
            {"errors": issues_json(result.errors)},
        )


def _mark_submitted(revision: SignatureRevision, now: Any) -> None:
    revision.state = RevisionState.IN_REVIEW
    revision.submitted_at = now
    revision.reviewed_by = None
    revision.reviewed_at = None


@transaction.atomic
def signature_approve(
    *, signature: Signature, actor: User, comment: str = "", override_reason: str = ""
) -> Signature:
    """Approve the revision in review: it becomes the deployed revision.

    The clean-corpus gate (``threats.gates``): the revision must have been retro-hunted over
    the current clean corpus, and a hit on a clean app refuses the approval unless the
    reviewer writes ``override_reason`` (audited as ``signature.gate_override`` and shown on
    the release).
    """
    signature = locked(signature)
    revision = current_revision(signature)
    _check_approve(signature=signature, actor=actor)
    override = (override_reason or "").strip()
    # what the override was needed for: clean hits, or too small a clean corpus
    overridden = approval_check(revision, override or None)
    revision.refresh_from_db()  # a gate may have refreshed the clean hits
    _check_gated(revision)
    before = sig_snapshot(signature)
    _mark_approved(
        signature=signature,
        revision=revision,
        actor=actor,
        comment=comment,
        override=override if overridden else "",
        now=timezone.now(),
    )
    revision.full_clean()
    revision.save()
    signature.save(update_fields=["deployed_revision", "status", "status_reason", "updated_at"])
    _transition(signature=signature, actor=actor, action="approve", reason=comment, before=before)
    if revision.gate_override_reason:
        audit_log(
            actor=actor,
            action="signature.gate_override",
            obj=signature,
            after={
                "revision": revision.number,
                "clean_hits": revision.clean_hits,
                "gate": overridden,
            },
            reason=revision.gate_override_reason,
        )
    return signature


def _check_approve(*, signature: Signature, actor: User) -> None:
    """Why ``actor`` may not approve the revision in review (raises), for one and for many:
    a revision in review, four eyes (``threats.policy``)."""
    require(actor, signature, "approve")


def _check_gated(revision: SignatureRevision) -> None:
    """Refuse a revision never gated, even if no gate is registered."""
    if revision.gated_at is None:
        raise ConflictError(
            f"Revision {revision.number} has not been retro-hunted over the clean corpus; "
            "run a retro-hunt of it first.",
            {"gate": "not_gated"},
        )


def _mark_approved(
    *,
    signature: Signature,
    revision: SignatureRevision,
    actor: User,
    comment: str,
    override: str,
    now: Any,
) -> None:
    revision.state = RevisionState.APPROVED
    revision.reviewed_by = actor
    revision.reviewed_at = now
    revision.review_comment = comment
    revision.gate_override_reason = override
    signature.deployed_revision = revision
    signature.status = Status.DEPLOYED
    signature.status_reason = ""


def signatures_approve(*, actor: User, ids: Sequence[int], comment: str = "") -> BulkResult:
    """Approve many signatures' revisions in review under the rules of ``signature_approve``
    (``_check_approve``, the gate provider through ``threats.gates.approval_refusals``,
    ``_check_gated``) without an override: a revision the gate refuses (clean hits, no
    clean corpus, not gated, stale) is reported with the gate's sentence and the others go
    on; overriding stays one signature at a time, with a written reason.

    Feed-sized like ``signatures_submit``: a transaction per 500, gates evaluated for the
    batch in a few queries, one UPDATE per table, one audit row each (written together).
    """
    result = BulkResult()
    unique = list(dict.fromkeys(int(i) for i in ids))
    for start in range(0, len(unique), BULK_BATCH):
        _approve_batch(
            actor=actor, ids=unique[start : start + BULK_BATCH], comment=comment, result=result
        )
    return result


@transaction.atomic
def _approve_batch(*, actor: User, ids: list[int], comment: str, result: BulkResult) -> None:
    found = {
        s.pk: s
        # of=("self",): lock the signatures only; PostgreSQL refuses FOR UPDATE on the
        # nullable side of the outer joins select_related makes
        for s in Signature.objects.select_for_update(of=("self",))
        .filter(pk__in=ids)
        .select_related("current_revision", "family")
    }
    waiting: list[tuple[Signature, SignatureRevision]] = []
    for pk in ids:
        sig = found.get(pk)
        if sig is None:
            result.failed.append({"id": pk, "message": "No such signature."})
            continue
        try:
            revision = current_revision(sig)
            _check_approve(signature=sig, actor=actor)
        except ApplicationError as exc:
            result.failed.append({"id": pk, "message": exc.message})
            continue
        waiting.append((sig, revision))
    refusals = approval_refusals([r for _, r in waiting])
    now = timezone.now()
    approved: list[tuple[Signature, dict[str, Any]]] = []
    for sig, revision in waiting:
        try:
            refusal = refusals.get(revision.pk)
            if refusal is not None:
                raise refusal.error()
            _check_gated(revision)
        except ApplicationError as exc:
            result.failed.append({"id": sig.pk, "message": exc.message})
            continue
        before = sig_snapshot(sig)
        _mark_approved(
            signature=sig, revision=revision, actor=actor, comment=comment, override="", now=now
        )
        approved.append((sig, before))
        result.succeeded.append(sig.pk)
    # the same values for every row (the deployed revision is each one's current revision):
    # one UPDATE each; the four-eyes CHECK constraint still holds in the database
    SignatureRevision.objects.filter(pk__in=[s.current_revision_id for s, _ in approved]).update(
        state=RevisionState.APPROVED,
        reviewed_by=actor,
        reviewed_at=now,
        review_comment=comment,
        gate_override_reason="",
        updated_at=now,
    )
    Signature.objects.filter(pk__in=[s.pk for s, _ in approved]).update(
        deployed_revision=F("current_revision"),
        status=Status.DEPLOYED,
        status_reason="",
        updated_at=now,
    )
    _transitions(actor=actor, action="approve", reason=comment, done=approved)


def _need_reason(reason: str, what: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError(
            f"Say why you {what} (reason).", {"fields": {"reason": ["Required."]}}
        )
    return reason


@transaction.atomic
def signature_reject(*, signature: Signature, actor: User, reason: str) -> Signature:
    """Send the revision in review back to its author with a reason."""
    reason = _need_reason(reason, "reject it")
    signature = locked(signature)
    revision = current_revision(signature)
    require(actor, signature, "reject")
    before = sig_snapshot(signature)
    revision.state = RevisionState.REJECTED
    revision.reviewed_by = actor
    revision.reviewed_at = timezone.now()
    revision.review_comment = reason
    revision.full_clean()
    revision.save()
    if signature.status == Status.IN_REVIEW:
        signature.status = Status.DRAFT
    signature.status_reason = reason
    signature.save(update_fields=["status", "status_reason", "updated_at"])
    _transition(signature=signature, actor=actor, action="reject", reason=reason, before=before)
    return signature


@transaction.atomic
def signature_mark_noisy(*, signature: Signature, actor: User, reason: str) -> Signature:
    """A deployed signature keeps shipping but never scores (a reviewer alone, with a reason)."""
    reason = _need_reason(reason, "mark it noisy")
    signature = locked(signature)
    require(actor, signature, "noisy")
    before = sig_snapshot(signature)
    signature.status = Status.NOISY
    signature.status_reason = reason
    signature.save(update_fields=["status", "status_reason", "updated_at"])
    _transition(signature=signature, actor=actor, action="noisy", reason=reason, before=before)
    return signature


@transaction.atomic
def signature_disable(*, signature: Signature, actor: User, reason: str) -> Signature:
    """Stop shipping a signature (a reviewer alone, with a reason). Editing it and having the
    new revision approved deploys it again."""
    reason = _need_reason(reason, "disable it")
    signature = locked(signature)
    require(actor, signature, "disable")
    before = sig_snapshot(signature)
    revision = current_revision(signature)
    if revision.state == RevisionState.IN_REVIEW:
        revision.state = RevisionState.REJECTED
        revision.review_comment = f"Disabled: {reason}"
        revision.save(update_fields=["state", "review_comment", "updated_at"])
    signature.status = Status.DISABLED
    signature.status_reason = reason
    signature.save(update_fields=["status", "status_reason", "updated_at"])
    _transition(signature=signature, actor=actor, action="disable", reason=reason, before=before)
    return signature


@dataclass
class BulkResult:
    succeeded: list[int] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)


def signature_bulk_action(
    *, actor: User, ids: Sequence[int], action: str, reason: str = ""
) -> BulkResult:
    """One transition on many signatures, each under the same rules as one by one (each in its
    own transaction: one refusal does not undo the others)."""
    if action not in BULK_ACTIONS:
        raise ApplicationError(f"Unknown bulk action {action!r}.", {"actions": list(BULK_ACTIONS)})
    if action in ("reject", "noisy", "disable"):
        _need_reason(reason, action)
    if action == "submit":
        return signatures_submit(actor=actor, ids=ids, reason=reason)
    if action == "approve":
        return signatures_approve(actor=actor, ids=ids, comment=reason)
    result = BulkResult()
    unique = list(dict.fromkeys(int(i) for i in ids))
    found = Signature.objects.in_bulk(unique)
    for pk in unique:
        sig = found.get(pk)
        if sig is None:
            result.failed.append({"id": pk, "message": "No such signature."})
            continue
        try:
            if action == "reject":
                signature_reject(signature=sig, actor=actor, reason=reason)
            elif action == "noisy":
                signature_mark_noisy(signature=sig, actor=actor, reason=reason)
            else:
                signature_disable(signature=sig, actor=actor, reason=reason)
        except ApplicationError as exc:
            result.failed.append({"id": pk, "message": exc.message})
        else:
            result.succeeded.append(pk)
    return result


def signatures_submit(*, actor: User, ids: Sequence[int], reason: str = "") -> BulkResult:
    """Submit many signatures under the rules of ``signature_submit`` (``_check_submit``: a
    refused one is reported and the others go on), then start ONE gate hunt over every
    revision submitted (a bulk submit, an import with ``--submit``): a feed of 10,000 hashes
    makes one hunt, not 10,000.

    Feed-sized: a transaction per 500 signatures, locked and read with one query, written
    with one UPDATE per table (the values are the same for every row; constraints are the
    database's), one audit row each as for one submission (written together).
    """
    result = BulkResult()
    unique = list(dict.fromkeys(int(i) for i in ids))
    submitted: list[int] = []
    for start in range(0, len(unique), BULK_BATCH):
        batch = unique[start : start + BULK_BATCH]
        submitted += _submit_batch(actor=actor, ids=batch, reason=reason, result=result)
    if submitted:
        # after the caller's transaction, if any (each batch above committed its own)
        transaction.on_commit(lambda: gate_on_submit(revision_ids=submitted, actor=actor))
    return result


@transaction.atomic
def _submit_batch(*, actor: User, ids: list[int], reason: str, result: BulkResult) -> list[int]:
    found = {
        s.pk: s
        # of=("self",): lock the signatures only; PostgreSQL refuses FOR UPDATE on the
        # nullable side of the outer joins select_related makes
        for s in Signature.objects.select_for_update(of=("self",))
        .filter(pk__in=ids)
        .select_related("current_revision", "family")
    }
    now = timezone.now()
    revisions: list[SignatureRevision] = []
    drafts: list[Signature] = []
    audits: list[tuple[Signature, dict[str, Any]]] = []
    for pk in ids:
        sig = found.get(pk)
        if sig is None:
            result.failed.append({"id": pk, "message": "No such signature."})
            continue
        try:
            revision = current_revision(sig)
            _check_submit(signature=sig, revision=revision, actor=actor)
        except ApplicationError as exc:
            result.failed.append({"id": pk, "message": exc.message})
            continue
        audits.append((sig, sig_snapshot(sig)))
        _mark_submitted(revision, now)
        revisions.append(revision)
        if sig.status == Status.DRAFT:
            sig.status = Status.IN_REVIEW
            drafts.append(sig)
        result.succeeded.append(pk)
    # every row gets the same values: one UPDATE each (bulk_update's CASE per row is slow)
    SignatureRevision.objects.filter(pk__in=[r.pk for r in revisions]).update(
        state=RevisionState.IN_REVIEW,
        submitted_at=now,
        reviewed_by=None,
        reviewed_at=None,
        updated_at=now,
    )
    Signature.objects.filter(pk__in=[s.pk for s in drafts]).update(
        status=Status.IN_REVIEW, updated_at=now
    )
    _transitions(actor=actor, action="submit", reason=reason, done=audits)
    return [r.pk for r in revisions]
