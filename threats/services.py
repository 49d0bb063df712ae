"""Write paths of the signature database: families, signatures, the review workflow, import.

Every function takes keyword-only arguments, runs in a transaction, calls ``full_clean()``
before saving and writes an audit row (with its reason) for every transition.

The workflow
------------
A signature's ``status`` says what phones see; its *current revision*'s ``state`` says where
the newest text is in review:

- ``signature_create`` makes a draft signature with revision 1 (state draft).
- ``signature_update`` edits the current revision in place while it is a draft; when the
  current revision is approved (a deployed, noisy or disabled signature) or was rejected, a
  change of body, severity or family makes a new draft revision instead, and the deployed
  revision keeps shipping with its own body, severity and family until the new one is
  approved. Tags, references, description and linked samples are signature-level notes that
  never ship (``RuleRecord`` has no field for them): they change at once, without review.
- ``signature_submit`` puts the current draft revision in review (a never-deployed signature
  becomes ``in_review``; a deployed one stays deployed while its new revision waits).
- ``signature_approve``: a reviewer who is neither the revision's author nor its last editor
  (also a database constraint) approves it; it becomes the deployed revision.
- ``signature_reject``: back to the author with a reason.
- ``signature_mark_noisy`` / ``signature_disable``: a reviewer alone, with a reason.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from engine.importers import ImportCandidate, display_name, parse_bytes, parse_path
from engine.kinds import REGISTRY, UnknownKind, get_kind
from engine.kinds.base import Issue, ValidationResult
from portal.audit import audit_log, audit_log_many, snapshot
from portal.exceptions import ApplicationError, ConflictError, ForbiddenError, NotFoundError
from portal.models import User
from threats.api import GateResult, HitStats, signature_url
from threats.gates import approval_refusals, run_approval_gates, run_submit_hooks
from threats.models import (
    Category,
    Family,
    RevisionState,
    Severity,
    Signature,
    SignatureRevision,
    Status,
    Tag,
)

FAMILY_FIELDS = ("name", "category", "severity", "description", "aliases", "references")
SIGNATURE_FIELDS = (
    "family",
    "severity",
    "status",
    "status_reason",
    "references",
    "linked_samples",
    "description",
)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# the family imported signatures go to when their source names none we know
IMPORT_FAMILY = "Unsorted"
BULK_ACTIONS = ("submit", "approve", "reject", "noisy", "disable")
# Upload limits for POST /api/v1/signatures/import/ (the service checks them, not the view).
MAX_IMPORT_FILE_BYTES = 20 * 1024 * 1024
MAX_IMPORT_FILES = 100


# --- helpers ---------------------------------------------------------------------------------
def issues_json(issues: Iterable[Issue]) -> list[dict[str, Any]]:
    return [{"message": i.message, "line": i.line, "column": i.column} for i in issues]


def body_validate(*, kind: str, body: Any) -> ValidationResult:
    """The kind's verdict on ``body``; an unknown kind is an ApplicationError (400)."""
    try:
        kind_obj = get_kind(kind)
    except UnknownKind:
        raise ApplicationError(
            f"Unknown signature kind {kind!r}.", {"kinds": list(REGISTRY)}
        ) from None
    return kind_obj.validate(body)


def _valid_body(*, kind: str, body: Any) -> tuple[Any, list[Issue]]:
    result = body_validate(kind=kind, body=body)
    if result.errors:
        raise ApplicationError(
            f"The {kind} body is not valid: {result.errors[0]}",
            {"errors": issues_json(result.errors), "warnings": issues_json(result.warnings)},
        )
    return result.body, result.warnings


def duplicate_error(existing: Signature | int) -> ConflictError:
    pk = existing if isinstance(existing, int) else existing.pk
    return ConflictError(
        f"The same signature already exists (#{pk}).",
        {"existing": {"id": pk, "url": signature_url(pk)}},
    )


def _refuse_duplicate(*, kind: str, dedup_key: str, exclude: int | None = None) -> None:
    qs = Signature.objects.filter(kind=kind, dedup_key=dedup_key)
    if exclude is not None:
        qs = qs.exclude(pk=exclude)
    pk = qs.values_list("pk", flat=True).first()
    if pk is not None:
        raise duplicate_error(pk)


def search_text(*, signature: Signature, body: Any, family: Family, tags: Iterable[str]) -> str:
    """What ``q`` searches: family, kind, the body's summary, description and tags."""
    try:
        summary = get_kind(signature.kind).summary(body) if body is not None else ""
    except Exception:  # an invalid body has no summary
        summary = ""
    parts = [
        family.name,
        family.category,
        signature.kind,
        signature.severity,
        summary,
        signature.description[:500],
        " ".join(tags),
    ]
    return " ".join(p for p in parts if p).lower()


def _check_samples(samples: Sequence[str]) -> list[str]:
    out = []
    for sha in samples:
        value = str(sha).strip().lower()
        if not _SHA256.match(value):
            raise ApplicationError(
                f"A linked sample must be a SHA-256 (64 hex digits), not {str(sha)[:80]!r}."
            )
        if value not in out:
            out.append(value)
    return out


def _tags(names: Iterable[str]) -> list[Tag]:
    tags = []
    for raw in names:
        name = str(raw).strip().lower()[:64]
        if name:
            tag, _ = Tag.objects.get_or_create(name=name)
            tags.append(tag)
    return tags


def _sig_snapshot(signature: Signature) -> dict[str, Any]:
    return snapshot(signature, SIGNATURE_FIELDS)


def _is_admin(user: User) -> bool:
    return user.is_superuser or user.groups.filter(name="admin").exists()


def _require_perm(actor: User, perm: str, message: str) -> None:
    if not actor.has_perm(perm):
        raise ForbiddenError(message)


def _locked(signature: Signature) -> Signature:
    """``signature`` locked and refreshed in place (the caller's object sees every change)."""
    if not Signature.objects.select_for_update().filter(pk=signature.pk).exists():
        raise NotFoundError("No such signature.")
    signature.refresh_from_db()
    return signature


def _current(signature: Signature) -> SignatureRevision:
    rev = signature.current_revision
    if rev is None:
        raise ApplicationError("This signature has no revision.")
    return rev


# --- families --------------------------------------------------------------------------------
@transaction.atomic
def family_create(
    *,
    actor: User,
    name: str,
    category: str,
    severity: str,
    description: str = "",
    aliases: Sequence[str] = (),
    references: Sequence[str] = (),
) -> Family:
    if Family.objects.filter(name__iexact=name).exists():
        existing = Family.objects.get(name__iexact=name)
        raise ConflictError(
            f"A family named {existing.name} already exists.",
            {"existing": {"id": existing.pk, "url": f"/families/{existing.pk}/"}},
        )
    family = Family(
        name=name,
        category=category,
        severity=severity,
        description=description,
        aliases=list(aliases),
        references=list(references),
        created_by=actor,
    )
    family.full_clean()
    family.save()
    audit_log(
        actor=actor, action="family.create", obj=family, after=snapshot(family, FAMILY_FIELDS)
    )
    return family


@transaction.atomic
def family_update(*, family: Family, actor: User, data: dict[str, Any]) -> Family:
    unknown = set(data) - set(FAMILY_FIELDS)
    if unknown:
        raise ApplicationError(f"Unknown family field(s): {', '.join(sorted(unknown))}.")
    before = snapshot(family, FAMILY_FIELDS)
    new_name = str(data.get("name", family.name))
    if Family.objects.filter(name__iexact=new_name).exclude(pk=family.pk).exists():
        raise ConflictError(f"A family named {data['name']} already exists.")
    for key, value in data.items():
        setattr(family, key, list(value) if key in ("aliases", "references") else value)
    family.full_clean()
    family.save()
    if {"name", "category"} & set(data):
        _refresh_search_text(Signature.objects.filter(family=family))
    audit_log(
        actor=actor,
        action="family.update",
        obj=family,
        before=before,
        after=snapshot(family, FAMILY_FIELDS),
    )
    return family


def _refresh_search_text(qs: Any) -> None:
    batch: list[Signature] = []
    for sig in qs.select_related("family", "current_revision").prefetch_related("tags"):
        body = sig.current_revision.body if sig.current_revision else None
        sig.search_text = search_text(
            signature=sig, body=body, family=sig.family, tags=[t.name for t in sig.tags.all()]
        )
        batch.append(sig)
    Signature.objects.bulk_update(batch, ["search_text"], batch_size=500)


# --- signatures ------------------------------------------------------------------------------
@transaction.atomic
def signature_create(
    *,
    actor: User,
    kind: str,
    body: Any,
    family: Family,
    severity: str | None = None,
    tags: Sequence[str] = (),
    references: Sequence[str] = (),
    linked_samples: Sequence[str] = (),
    description: str = "",
) -> Signature:
    """A new draft signature (revision 1). Refuses an invalid body and a duplicate."""
    normalised, warnings = _valid_body(kind=kind, body=body)
    key = get_kind(kind).dedup_key(normalised)
    _refuse_duplicate(kind=kind, dedup_key=key)
    signature = Signature(
        kind=kind,
        family=family,
        severity=severity or family.severity,
        status=Status.DRAFT,
        references=list(references),
        linked_samples=_check_samples(linked_samples),
        description=description,
        author=actor,
        dedup_key=key,
    )
    tag_objs = _tags(tags)
    signature.search_text = search_text(
        signature=signature, body=normalised, family=family, tags=[t.name for t in tag_objs]
    )
    signature.full_clean(exclude=["current_revision", "deployed_revision"], validate_unique=False)
    try:
        with transaction.atomic():
            signature.save()
    except IntegrityError:  # a concurrent create of the same body won the race
        _refuse_duplicate(kind=kind, dedup_key=key)
        raise
    revision = SignatureRevision(
        signature=signature,
        number=1,
        body=normalised,
        severity=signature.severity,
        family=family,
        min_engine=get_kind(kind).min_engine,
        author=actor,
        last_editor=actor,
    )
    revision.full_clean()
    revision.save()
    signature.current_revision = revision
    signature.save(update_fields=["current_revision"])
    signature.tags.set(tag_objs)
    audit_log(
        actor=actor,
        action="signature.create",
        obj=signature,
        after={**_sig_snapshot(signature), "kind": kind, "body": normalised},
        reason="; ".join(str(w) for w in warnings),
    )
    return signature


def _can_edit(actor: User, signature: Signature, revision: SignatureRevision) -> bool:
    if actor.pk in (signature.author_id, revision.author_id):
        return True  # before the admin check, which costs a query
    if _is_admin(actor):
        return True
    return actor.has_perm("threats.review_signature")


@transaction.atomic
def signature_update(
    *,
    signature: Signature,
    actor: User,
    body: Any = None,
    family: Family | None = None,
    severity: str | None = None,
    tags: Sequence[str] | None = None,
    references: Sequence[str] | None = None,
    linked_samples: Sequence[str] | None = None,
    description: str | None = None,
    reason: str = "",
) -> Signature:
    """Edit a signature. Body, severity and family belong to the revision (they are what ships):
    a draft revision is edited in place by its author (or a reviewer, who then cannot approve
    it); on an approved or rejected one, a change of any of them makes a new draft revision,
    and the deployed revision keeps shipping with its own until the new one is approved. Tags,
    references, linked samples and description are notes on the signature (they never ship)
    and change at once."""
    signature = _locked(signature)
    revision = _current(signature)
    if not _can_edit(actor, signature, revision):
        raise ForbiddenError("Only the author edits a draft signature.")
    if revision.state == RevisionState.IN_REVIEW:
        raise ConflictError(
            "This revision is in review; a reviewer must approve or reject it before it changes."
        )
    before = {**_sig_snapshot(signature), "body": revision.body}
    new_body = revision.body
    body_changed = False
    if body is not None:
        normalised, _ = _valid_body(kind=signature.kind, body=body)
        key = get_kind(signature.kind).dedup_key(normalised)
        _refuse_duplicate(kind=signature.kind, dedup_key=key, exclude=signature.pk)
        body_changed = normalised != revision.body or signature.status == Status.INVALID
        new_body = normalised
        signature.dedup_key = key
    # severity and family are what a phone reports on a match: reviewed like the body
    new_severity = severity if severity is not None else revision.severity
    new_family = family if family is not None else revision.family
    reviewed_changed = (
        body_changed or new_severity != revision.severity or new_family.pk != revision.family_id
    )
    if reviewed_changed and revision.state == RevisionState.DRAFT:
        if body_changed:
            revision.body = new_body
            revision.min_engine = get_kind(signature.kind).min_engine
            # the gate spoke about the old body (severity and family do not change hits)
            revision.gated_at = None
            revision.gate_hunt_id = None
            revision.clean_hits = 0
        revision.severity = new_severity
        revision.family = new_family
        revision.last_editor = actor
        revision.full_clean()
        revision.save()
    elif reviewed_changed:  # approved or rejected: a new revision
        revision = SignatureRevision(
            signature=signature,
            number=revision.number + 1,
            body=new_body,
            severity=new_severity,
            family=new_family,
            min_engine=get_kind(signature.kind).min_engine,
            author=actor,
            last_editor=actor,
        )
        revision.full_clean()
        revision.save()
        signature.current_revision = revision
    elif revision.state == RevisionState.DRAFT and signature.status != Status.INVALID:
        revision.last_editor = actor
        revision.save(update_fields=["last_editor", "updated_at"])
    if body is not None and signature.status == Status.INVALID:
        signature.status = Status.DRAFT
        signature.status_reason = ""
    # the list's copies of the current revision's values
    signature.family = revision.family
    signature.severity = revision.severity
    if references is not None:
        signature.references = list(references)
    if linked_samples is not None:
        signature.linked_samples = _check_samples(linked_samples)
    if description is not None:
        signature.description = description
    if tags is not None:
        signature.tags.set(_tags(tags))
    tag_names = [t.name for t in signature.tags.all()]
    signature.search_text = search_text(
        signature=signature,
        body=signature.current_revision.body if signature.current_revision else None,
        family=signature.family,
        tags=tag_names,
    )
    signature.full_clean(validate_unique=False)
    signature.save()
    audit_log(
        actor=actor,
        action="signature.update",
        obj=signature,
        before=before,
        after={**_sig_snapshot(signature), "body": _current(signature).body},
        reason=reason,
    )
    return signature


@transaction.atomic
def signature_delete(*, signature: Signature, actor: User) -> None:
    """Delete a signature that never shipped (draft or invalid), by its author or an admin."""
    signature = _locked(signature)
    if signature.status not in (Status.DRAFT, Status.INVALID) or signature.deployed_revision_id:
        raise ConflictError(
            "Only drafts are deleted; disable a signature that has been in review or deployed."
        )
    if actor.pk != signature.author_id and not _is_admin(actor):
        raise ForbiddenError("Only the author deletes a draft.")
    name = signature.name
    audit_log(actor=actor, action="signature.delete", obj=signature, object_repr=name)
    Signature.objects.filter(pk=signature.pk).update(current_revision=None, deployed_revision=None)
    signature.delete()


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
    return {**_sig_snapshot(signature), "revision": _current(signature).number}


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
    (``threats.gates.SUBMIT_HOOKS``). ``signatures_submit`` passes False and starts one hunt
    for everything it submitted.
    """
    signature = _locked(signature)
    revision = _current(signature)
    _check_submit(signature=signature, revision=revision, actor=actor)
    before = _sig_snapshot(signature)
    _mark_submitted(revision, timezone.now())
    revision.full_clean()
    revision.save()
    if signature.status == Status.DRAFT:
        signature.status = Status.IN_REVIEW
        signature.save(update_fields=["status", "updated_at"])
    _transition(signature=signature, actor=actor, action="submit", reason=reason, before=before)
    if gate:
        # the gate hunt starts on its own (threats.gates.SUBMIT_HOOKS; scans registers it)
        revision_ids = [revision.pk]
        transaction.on_commit(lambda: run_submit_hooks(revision_ids=revision_ids, actor=actor))
    return signature


def _check_submit(*, signature: Signature, revision: SignatureRevision, actor: User) -> None:
    """Why this revision may not be submitted (raises), for one and for many."""
    if signature.status == Status.INVALID:
        raise ConflictError(
            "An invalid signature cannot be submitted; fix its body first.",
            {"reason": signature.status_reason},
        )
    if signature.status == Status.DISABLED and revision.state == RevisionState.APPROVED:
        raise ConflictError("A disabled signature needs a new revision before review.")
    if revision.state not in (RevisionState.DRAFT, RevisionState.REJECTED):
        raise ConflictError(f"Revision {revision.number} is {revision.get_state_display()}.")
    if not _can_edit(actor, signature, revision):
        raise ForbiddenError("Only the author submits a draft.")
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


def _require_reviewer_of(actor: User, revision: SignatureRevision, verb: str) -> None:
    _require_perm(actor, "threats.review_signature", f"Only a reviewer may {verb} signatures.")
    if actor.pk in (revision.author_id, revision.last_editor_id):
        raise ForbiddenError(
            f"You wrote or last edited revision {revision.number}; another reviewer must "
            f"{verb} it (four eyes)."
        )


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
    signature = _locked(signature)
    revision = _current(signature)
    _check_approve(revision=revision, actor=actor)
    override = (override_reason or "").strip()
    # what the override was needed for: clean hits, or too small a clean corpus
    overridden = run_approval_gates(revision, override or None)
    revision.refresh_from_db()  # a gate may have refreshed the clean hits
    _check_gated(revision)
    before = _sig_snapshot(signature)
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


def _check_approve(*, revision: SignatureRevision, actor: User) -> None:
    """Why this revision may not be approved by ``actor`` (raises), for one and for many."""
    if revision.state != RevisionState.IN_REVIEW:
        raise ConflictError("Only a revision in review can be approved; submit it first.")
    _require_reviewer_of(actor, revision, "approve")


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
    (``_check_approve``, the registered gates through ``threats.gates.approval_refusals``,
    ``_check_gated``) without an override: a revision the gate refuses (clean hits, no
    clean corpus, not gated, stale) is reported with the gate's sentence and the others go
    on; overriding stays one signature at a time, with a written reason.

    Feed-sized like ``signatures_submit``: a transaction per 500, gates evaluated for the
    batch in a few queries, one UPDATE per table, one audit row each (written together).
    """
    result = BulkResult()
    unique = list(dict.fromkeys(int(i) for i in ids))
    for start in range(0, len(unique), _BULK_BATCH):
        _approve_batch(
            actor=actor, ids=unique[start : start + _BULK_BATCH], comment=comment, result=result
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
            revision = _current(sig)
            _check_approve(revision=revision, actor=actor)
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
                raise refusal
            _check_gated(revision)
        except ApplicationError as exc:
            result.failed.append({"id": sig.pk, "message": exc.message})
            continue
        before = _sig_snapshot(sig)
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


# --- the clean-corpus gate and hit statistics (written by the scans app) -----------------


@transaction.atomic
def revisions_record_gate(*, hunt_id: int, results: Sequence[GateResult]) -> list[int]:
    """Record that finished hunt ``hunt_id`` covered the clean corpus for these revisions.

    Skipped for a revision whose body changed since it was hunted (a draft edited in place)
    and for an approved revision that already carries its gate (what it was approved on
    stays). Returns the ids recorded.
    """
    by_id = {r.revision_id: r for r in results}
    now = timezone.now()
    recorded: list[int] = []
    batch: list[SignatureRevision] = []
    for rev in _in_batches(SignatureRevision.objects.select_for_update(), list(by_id)):
        result = by_id[rev.pk]
        if rev.body != result.body:
            continue
        if rev.state == RevisionState.APPROVED and rev.gated_at is not None:
            continue
        if rev.gate_hunt_id is not None and rev.gate_hunt_id > hunt_id:
            continue  # a newer hunt already spoke
        batch.append(rev)
        recorded.append(rev.pk)
    # a feed's gate records 100,000 revisions: one UPDATE per clean-hit count (nearly all 0),
    # not a CASE per row
    by_hits: dict[int, list[int]] = {}
    for rev in batch:
        by_hits.setdefault(by_id[rev.pk].clean_hits, []).append(rev.pk)
    for hits, ids in by_hits.items():
        for start in range(0, len(ids), _BULK_BATCH):
            SignatureRevision.objects.filter(pk__in=ids[start : start + _BULK_BATCH]).update(
                gated_at=now, gate_hunt_id=hunt_id, clean_hits=hits
            )
    return recorded


def revision_clean_hits_refresh(*, revision: SignatureRevision, clean_hits: int) -> None:
    """The gate saw a different count of clean hits (samples relabelled since the hunt)."""
    if revision.clean_hits != clean_hits:
        SignatureRevision.objects.filter(pk=revision.pk).update(clean_hits=clean_hits)


def _in_batches(qs: Any, ids: list[int]) -> Iterator[Any]:
    """``qs`` rows with these primary keys, read 500 ids at a time (SQLite takes at most
    32,766 query parameters; a feed's gate names 100,000 revisions)."""
    for start in range(0, len(ids), _BULK_BATCH):
        yield from qs.filter(pk__in=ids[start : start + _BULK_BATCH])


def signature_stats_record(*, stats: dict[int, HitStats]) -> None:
    """Store per-signature hit counters (the scans app computes them from its hits table)."""
    batch: list[Signature] = []
    for sig in _in_batches(
        Signature.objects.only("id", "hits_malicious", "hits_clean", "hits_unknown", "last_hit_at"),
        list(stats),
    ):
        s = stats[sig.pk]
        now = (s.malicious, s.clean, s.unknown, s.last_hit_at)
        if (sig.hits_malicious, sig.hits_clean, sig.hits_unknown, sig.last_hit_at) == now:
            continue  # unchanged (a feed's new signatures mostly hit nothing)
        sig.hits_malicious, sig.hits_clean, sig.hits_unknown = s.malicious, s.clean, s.unknown
        sig.last_hit_at = s.last_hit_at
        batch.append(sig)
    Signature.objects.bulk_update(
        batch, ["hits_malicious", "hits_clean", "hits_unknown", "last_hit_at"], batch_size=500
    )


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
    signature = _locked(signature)
    revision = _current(signature)
    if revision.state != RevisionState.IN_REVIEW:
        raise ConflictError("Only a revision in review can be rejected.")
    _require_reviewer_of(actor, revision, "reject")
    before = _sig_snapshot(signature)
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
    _require_perm(actor, "threats.moderate_signature", "Only a reviewer marks signatures noisy.")
    signature = _locked(signature)
    if signature.status != Status.DEPLOYED:
        raise ConflictError("Only a deployed signature can be marked noisy.")
    before = _sig_snapshot(signature)
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
    _require_perm(actor, "threats.moderate_signature", "Only a reviewer disables signatures.")
    signature = _locked(signature)
    if signature.status == Status.DISABLED:
        raise ConflictError("This signature is already disabled.")
    before = _sig_snapshot(signature)
    revision = _current(signature)
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


_BULK_BATCH = 500


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
    for start in range(0, len(unique), _BULK_BATCH):
        batch = unique[start : start + _BULK_BATCH]
        submitted += _submit_batch(actor=actor, ids=batch, reason=reason, result=result)
    if submitted:
        # after the caller's transaction, if any (each batch above committed its own)
        transaction.on_commit(lambda: run_submit_hooks(revision_ids=submitted, actor=actor))
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
            revision = _current(sig)
            _check_submit(signature=sig, revision=revision, actor=actor)
        except ApplicationError as exc:
            result.failed.append({"id": pk, "message": exc.message})
            continue
        audits.append((sig, _sig_snapshot(sig)))
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


# --- import ----------------------------------------------------------------------------------
@dataclass
class ImportSummary:
    files: int = 0
    imported: int = 0
    duplicates: int = 0
    invalid: int = 0  # stored as status invalid, or not storable at all
    # reason -> count
    invalid_reasons: dict[str, int] = field(default_factory=dict)
    # the first few duplicates: {"source", "existing": {"id", "url"}}
    duplicate_links: list[dict[str, Any]] = field(default_factory=list)
    # files that could not be read or saved: {"file", "reason"}
    failed_files: list[dict[str, str]] = field(default_factory=list)
    signature_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "imported": self.imported,
            "duplicates": self.duplicates,
            "invalid": self.invalid,
            "invalid_reasons": dict(
                sorted(self.invalid_reasons.items(), key=lambda kv: (-kv[1], kv[0]))
            ),
            "duplicate_links": self.duplicate_links,
            "failed_files": self.failed_files,
        }

    def add_reason(self, reason: str) -> None:
        # "line 3, column 5: message" and "message" are the same reason
        reason = re.sub(r"^line \d+(, column \d+)?: ", "", reason)[:300]
        self.invalid_reasons[reason] = self.invalid_reasons.get(reason, 0) + 1
        self.invalid += 1


@dataclass(frozen=True)
class ImportBatch:
    """The candidates parsed from one file (saved in one transaction)."""

    name: str
    candidates: Sequence[ImportCandidate]
    # SHA-256 of the file's bytes: with the rule's place in it, the identity of an invalid
    # candidate (so re-importing a file, by path or upload, finds its invalid rules again)
    digest: str = ""


_MAX_LINKS = 50
_KEY_CHUNK = 500


def _family_resolver(actor: User) -> Any:
    by_name = {name.lower(): pk for pk, name in Family.objects.values_list("pk", "name")}
    for pk, aliases in Family.objects.values_list("pk", "aliases"):
        for alias in aliases or []:
            by_name.setdefault(str(alias).lower(), pk)
    families: dict[int, Family] = {}

    def resolve(hint: str | None) -> Family:
        pk = by_name.get((hint or "").lower()) if hint else None
        if pk is None:
            pk = by_name.get(IMPORT_FAMILY.lower())
        if pk is None:
            family = Family(
                name=IMPORT_FAMILY,
                category=Category.RISKWARE,
                severity=Severity.SUSPICIOUS,
                description="Imported signatures whose source named no known family.",
                created_by=actor,
            )
            family.full_clean()
            family.save()
            by_name[IMPORT_FAMILY.lower()] = family.pk
            families[family.pk] = family
            return family
        if pk not in families:
            families[pk] = Family.objects.get(pk=pk)
        return families[pk]

    return resolve


def _invalid_key(batch: ImportBatch, candidate: ImportCandidate) -> str:
    where = candidate.source
    if batch.digest and where.startswith(batch.name):
        where = where[len(batch.name) :]  # ":rule" or ":line" inside the file
    text = f"{batch.digest}\n{where}\n{candidate.name}\n{candidate.error}"
    return "invalid:" + hashlib.sha256(text.encode()).hexdigest()


def _existing_keys(pairs: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    by_kind: dict[str, list[str]] = {}
    for kind, key in pairs:
        by_kind.setdefault(kind, []).append(key)
    for kind, keys in by_kind.items():
        for start in range(0, len(keys), _KEY_CHUNK):
            chunk = keys[start : start + _KEY_CHUNK]
            for pk, key in Signature.objects.filter(kind=kind, dedup_key__in=chunk).values_list(
                "pk", "dedup_key"
            ):
                out[(kind, key)] = pk
    return out


def _import_batch(*, actor: User, batch: ImportBatch, summary: ImportSummary, resolve: Any) -> None:
    """Save one file's candidates (the caller holds the transaction)."""
    prepared: list[tuple[ImportCandidate, str, Any]] = []  # (candidate, key, body)
    for cand in batch.candidates:
        if cand.kind not in REGISTRY:
            summary.add_reason(cand.error or f"unknown signature kind {cand.kind!r}")
            continue
        if cand.ok:
            prepared.append((cand, get_kind(cand.kind).dedup_key(cand.body), cand.body))
        elif cand.text is not None:
            # the rule as written, so that it can be opened, fixed and submitted
            prepared.append((cand, _invalid_key(batch, cand), cand.text))
        else:
            body = {"source": cand.source, "name": cand.name, "error": cand.error}
            prepared.append((cand, _invalid_key(batch, cand), body))
    existing = _existing_keys({(c.kind, key) for c, key, _ in prepared})
    seen: dict[tuple[str, str], int | None] = {}
    new_sigs: list[Signature] = []
    new_bodies: list[Any] = []
    for cand, key, body in prepared:
        pair = (cand.kind, key)
        dup = existing.get(pair)
        if dup is not None or pair in seen:
            summary.duplicates += 1
            if len(summary.duplicate_links) < _MAX_LINKS and dup is not None:
                summary.duplicate_links.append(
                    {"source": cand.source, "existing": {"id": dup, "url": signature_url(dup)}}
                )
            continue
        seen[pair] = None
        family = resolve(cand.family_hint)
        severity = cand.severity_hint if cand.severity_hint in Severity.values else None
        title = cand.name or ""
        description = f"{title} (imported from {cand.source})" if title else cand.source
        sig = Signature(
            kind=cand.kind,
            family=family,
            severity=severity or family.severity,
            status=Status.DRAFT if cand.ok else Status.INVALID,
            status_reason="" if cand.ok else (cand.error or "")[:2000],
            description=description[:2000],
            author=actor,
            dedup_key=key,
        )
        sig.search_text = search_text(
            signature=sig, body=body if cand.ok else None, family=family, tags=()
        )
        sig.full_clean(
            exclude=["family", "author", "current_revision", "deployed_revision"],
            validate_unique=False,
            validate_constraints=False,
        )
        if cand.ok:
            summary.imported += 1
        else:
            summary.add_reason(cand.error or "invalid")
        new_sigs.append(sig)
        new_bodies.append(body)
    if not new_sigs:
        return
    Signature.objects.bulk_create(new_sigs, batch_size=500)
    revisions = [
        SignatureRevision(
            signature=sig,
            number=1,
            body=body,
            severity=sig.severity,
            family=sig.family,
            min_engine=get_kind(sig.kind).min_engine,
            author=actor,
            last_editor=actor,
        )
        for sig, body in zip(new_sigs, new_bodies, strict=True)
    ]
    SignatureRevision.objects.bulk_create(revisions, batch_size=500)
    for sig, rev in zip(new_sigs, revisions, strict=True):
        sig.current_revision = rev
    Signature.objects.bulk_update(new_sigs, ["current_revision"], batch_size=500)
    summary.signature_ids.extend(s.pk for s in new_sigs)
    audit_log(
        actor=actor,
        action="signature.import",
        object_type="threats.signature",
        object_repr=batch.name[:255],
        after={"created": len(new_sigs), "first_id": new_sigs[0].pk, "last_id": new_sigs[-1].pk},
        reason=f"import of {batch.name}",
    )


def signatures_import(*, actor: User, batches: Iterable[ImportBatch]) -> ImportSummary:
    """Store importer candidates, one transaction per file.

    Valid candidates land as drafts, invalid ones (a known kind that does not compile here) as
    ``invalid`` with the reason; duplicates of an existing signature (or of an earlier one in
    the same import) are counted and linked, never stored. A file whose saving fails is
    reported and nothing of it is kept.
    """
    summary = ImportSummary()
    resolve = _family_resolver(actor)
    for batch in batches:
        summary.files += 1
        # file-level failures (unreadable, unsupported) come as one candidate with no kind
        if (
            len(batch.candidates) == 1
            and not batch.candidates[0].ok
            and not batch.candidates[0].kind
            and batch.candidates[0].source == batch.name
        ):
            summary.failed_files.append(
                {"file": batch.name, "reason": batch.candidates[0].error or "unreadable"}
            )
            summary.add_reason(batch.candidates[0].error or "unreadable")
            continue
        checkpoint = (
            summary.imported,
            summary.duplicates,
            summary.invalid,
            dict(summary.invalid_reasons),
            len(summary.duplicate_links),
            len(summary.signature_ids),
        )
        try:
            with transaction.atomic():
                _import_batch(actor=actor, batch=batch, summary=summary, resolve=resolve)
        except Exception as exc:  # nothing of this file is kept; the others go on
            (
                summary.imported,
                summary.duplicates,
                summary.invalid,
                summary.invalid_reasons,
                n_links,
                n_ids,
            ) = checkpoint
            del summary.duplicate_links[n_links:]
            del summary.signature_ids[n_ids:]
            resolve = _family_resolver(actor)  # a family made in the rolled-back file is gone
            summary.failed_files.append(
                {"file": batch.name, "reason": f"could not be saved ({type(exc).__name__})"}
            )
    return summary


def _walk(paths: Iterable[str | Path]) -> Iterator[tuple[Path, Path]]:
    """(file, root) for each file named or found under a named folder (sorted, no dotfiles)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and not any(
                    p.startswith(".") for p in child.relative_to(path).parts
                ):
                    yield child, path
        else:
            yield path, path.parent


def signatures_import_paths(*, actor: User, paths: Iterable[str | Path]) -> ImportSummary:
    """Import files and folders (``manage.py import_signatures``). YARA ``include`` is
    resolved relative to each file, never outside the folder named."""

    def batches() -> Iterator[ImportBatch]:
        for path, root in _walk(paths):
            name = display_name(path, root)  # relative to what was imported
            if not path.exists():
                yield ImportBatch(
                    name, [ImportCandidate("", None, None, name, error="no such file or folder")]
                )
                continue
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                digest = ""
            yield ImportBatch(name, parse_path(path, root=root), digest)

    return signatures_import(actor=actor, batches=batches())


def signatures_import_uploads(*, actor: User, files: Sequence[tuple[str, Any]]) -> ImportSummary:
    """Import uploaded files: (name, file-like with .size and .read()). Checks count and size."""
    if not files:
        raise ApplicationError("Send one or more files in the 'files' field.")
    if len(files) > MAX_IMPORT_FILES:
        raise ApplicationError(f"At most {MAX_IMPORT_FILES} files per import.")
    for name, upload in files:
        size = getattr(upload, "size", None)
        if size is not None and size > MAX_IMPORT_FILE_BYTES:
            raise ApplicationError(
                f"{name} is larger than {MAX_IMPORT_FILE_BYTES // (1024 * 1024)} MB.",
                {"max_bytes": MAX_IMPORT_FILE_BYTES},
                status_code=413,
            )

    def batches() -> Iterator[ImportBatch]:
        for name, upload in files:
            # never trust a client's file name beyond its last part
            safe = Path(str(name).replace("\\", "/")).name or "upload"
            data = upload.read(MAX_IMPORT_FILE_BYTES + 1)
            if len(data) > MAX_IMPORT_FILE_BYTES:
                yield ImportBatch(safe, [ImportCandidate("", None, None, safe, error="too large")])
                continue
            yield ImportBatch(safe, parse_bytes(safe, data), hashlib.sha256(data).hexdigest())

    return signatures_import(actor=actor, batches=batches())


def signatures_submit_imported(
    *, actor: User, summary: ImportSummary, reason: str = ""
) -> BulkResult:
    """Submit the drafts an import just created (``import_signatures --submit``, the import
    API's ``submit``): one ``signatures_submit``, so the whole feed gets ONE gate hunt. Invalid
    imports stay where they are (they cannot be submitted until fixed)."""
    drafts = sorted(
        sig.pk
        for sig in _in_batches(
            Signature.objects.filter(status=Status.DRAFT).only("pk"), summary.signature_ids
        )
    )
    return signatures_submit(actor=actor, ids=drafts, reason=reason or "imported feed")
