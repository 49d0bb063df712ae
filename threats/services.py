"""Write paths of signatures: create, update, delete; and the one import path for every
other write of the threats app.

The write paths live by concern, each in its own module:

- ``threats.services`` (here): a signature's create, update (a draft edited in place, a new
  revision, notes only) and delete;
- ``threats.services_review``: the review workflow (submit, approve, reject, noisy, disable,
  bulk actions);
- ``threats.services_families``: families;
- ``threats.services_import``: importing signature files;
- ``threats.services_gates``: what the scans app records (gate results, hit counters);
- ``threats.services_common``: what they share (validation, duplicates, search text, locks).

Who may do what is ``threats.policy``. Every function takes keyword-only arguments, runs in a
transaction, calls ``full_clean()`` before saving and writes an audit row (with its reason)
for every change. ``from threats import services`` keeps reaching all of them (``__all__``).

A signature's ``status`` says what phones see; its *current revision*'s ``state`` says where
the newest text is in review:

- ``signature_create`` makes a draft signature with revision 1 (state draft).
- ``signature_update`` edits the current revision in place while it is a draft; when the
  current revision is approved (a deployed, noisy or disabled signature) or was rejected, a
  change of body, severity or family makes a new draft revision instead, and the deployed
  revision keeps shipping with its own body, severity and family until the new one is
  approved. Tags, references, description and linked samples are signature-level notes that
  never ship (``RuleRecord`` has no field for them): they change at once, without review.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from engine.kinds import get_kind
from portal.audit import audit_log
from portal.models import User
from threats.models import Family, RevisionState, Signature, SignatureRevision, Status
from threats.policy import require
from threats.services_common import (
    BULK_BATCH,
    SIGNATURE_FIELDS,
    body_validate,
    check_samples,
    current_revision,
    duplicate_error,
    issues_json,
    locked,
    refuse_duplicate,
    search_text,
    sig_snapshot,
    tags_named,
    valid_body,
)
from threats.services_families import FAMILY_FIELDS, family_create, family_update
from threats.services_gates import (
    revision_clean_hits_refresh,
    revisions_record_gate,
    signature_stats_record,
)
from threats.services_import import (
    IMPORT_FAMILY,
    MAX_IMPORT_FILE_BYTES,
    MAX_IMPORT_FILES,
    ImportBatch,
    ImportSummary,
    signatures_import,
    signatures_import_paths,
    signatures_import_uploads,
    signatures_submit_imported,
)
from threats.services_review import (
    BULK_ACTIONS,
    BulkResult,
    signature_approve,
    signature_bulk_action,
    signature_disable,
    signature_mark_noisy,
    signature_reject,
    signature_submit,
    signatures_approve,
    signatures_submit,
)

__all__ = [
    "BULK_ACTIONS",
    "BULK_BATCH",
    "FAMILY_FIELDS",
    "IMPORT_FAMILY",
    "MAX_IMPORT_FILES",
    "MAX_IMPORT_FILE_BYTES",
    "SIGNATURE_FIELDS",
    "BulkResult",
    "ImportBatch",
    "ImportSummary",
    "body_validate",
    "duplicate_error",
    "family_create",
    "family_update",
    "issues_json",
    "revision_clean_hits_refresh",
    "revisions_record_gate",
    "search_text",
    "signature_approve",
    "signature_bulk_action",
    "signature_create",
    "signature_delete",
    "signature_disable",
    "signature_mark_noisy",
    "signature_reject",
    "signature_stats_record",
    "signature_submit",
    "signature_update",
    "signatures_approve",
    "signatures_import",
    "signatures_import_paths",
    "signatures_import_uploads",
    "signatures_submit",
    "signatures_submit_imported",
]


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
    normalised, warnings = valid_body(kind=kind, body=body)
    key = get_kind(kind).dedup_key(normalised)
    refuse_duplicate(kind=kind, dedup_key=key)
    signature = Signature(
        kind=kind,
        family=family,
        severity=severity or family.severity,
        status=Status.DRAFT,
        references=list(references),
        linked_samples=check_samples(linked_samples),
        description=description,
        author=actor,
        dedup_key=key,
    )
    tag_objs = tags_named(tags)
    signature.search_text = search_text(
        signature=signature, body=normalised, family=family, tags=[t.name for t in tag_objs]
    )
    signature.full_clean(exclude=["current_revision", "deployed_revision"], validate_unique=False)
    try:
        with transaction.atomic():
            signature.save()
    except IntegrityError:  # a concurrent create of the same body won the race
        refuse_duplicate(kind=kind, dedup_key=key)
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
        after={**sig_snapshot(signature), "kind": kind, "body": normalised},
        reason="; ".join(str(w) for w in warnings),
    )
    return signature


@dataclass(frozen=True)
class _Reviewed:
    """The revision's values an update asks for: what ships, so what a reviewer approves."""

    body: Any
    body_changed: bool
    severity: str
    family: Family

    def differ(self, revision: SignatureRevision) -> bool:
        return (
            self.body_changed
            or self.severity != revision.severity
            or self.family.pk != revision.family_id
        )


def _reviewed(
    *,
    signature: Signature,
    revision: SignatureRevision,
    body: Any,
    family: Family | None,
    severity: str | None,
) -> _Reviewed:
    """The new body (validated, not a duplicate of another signature), severity and family;
    what is not given stays the revision's. Sets the signature's duplicate key for a body."""
    new_body = revision.body
    body_changed = False
    if body is not None:
        normalised, _ = valid_body(kind=signature.kind, body=body)
        key = get_kind(signature.kind).dedup_key(normalised)
        refuse_duplicate(kind=signature.kind, dedup_key=key, exclude=signature.pk)
        body_changed = normalised != revision.body or signature.status == Status.INVALID
        new_body = normalised
        signature.dedup_key = key
    # severity and family are what a phone reports on a match: reviewed like the body
    return _Reviewed(
        body=new_body,
        body_changed=body_changed,
        severity=severity if severity is not None else revision.severity,
        family=family if family is not None else revision.family,
    )


def _draft_edit(
    *, signature: Signature, revision: SignatureRevision, actor: User, new: _Reviewed
) -> None:
    """Edit the current draft revision in place; whoever edits it last may not approve it."""
    if new.body_changed:
        revision.body = new.body
        revision.min_engine = get_kind(signature.kind).min_engine
        # the gate spoke about the old body (severity and family do not change hits)
        revision.gated_at = None
        revision.gate_hunt_id = None
        revision.clean_hits = 0
    revision.severity = new.severity
    revision.family = new.family
    revision.last_editor = actor
    revision.full_clean()
    revision.save()


def _revision_add(
    *, signature: Signature, revision: SignatureRevision, actor: User, new: _Reviewed
) -> SignatureRevision:
    """A new draft revision after an approved or rejected one; the deployed revision keeps
    shipping with its own body, severity and family until this one is approved."""
    added = SignatureRevision(
        signature=signature,
        number=revision.number + 1,
        body=new.body,
        severity=new.severity,
        family=new.family,
        min_engine=get_kind(signature.kind).min_engine,
        author=actor,
        last_editor=actor,
    )
    added.full_clean()
    added.save()
    signature.current_revision = added
    return added


def _notes_set(
    *,
    signature: Signature,
    tags: Sequence[str] | None,
    references: Sequence[str] | None,
    linked_samples: Sequence[str] | None,
    description: str | None,
) -> None:
    """Tags, references, linked samples and description: notes on the signature that never
    ship, changed at once (no review). Saved by the caller."""
    if references is not None:
        signature.references = list(references)
    if linked_samples is not None:
        signature.linked_samples = check_samples(linked_samples)
    if description is not None:
        signature.description = description
    if tags is not None:
        signature.tags.set(tags_named(tags))


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
    signature = locked(signature)
    require(actor, signature, "edit")
    revision = current_revision(signature)
    before = {**sig_snapshot(signature), "body": revision.body}
    new = _reviewed(
        signature=signature, revision=revision, body=body, family=family, severity=severity
    )
    if new.differ(revision) and revision.state == RevisionState.DRAFT:
        _draft_edit(signature=signature, revision=revision, actor=actor, new=new)
    elif new.differ(revision):  # approved or rejected: a new revision
        revision = _revision_add(signature=signature, revision=revision, actor=actor, new=new)
    elif revision.state == RevisionState.DRAFT and signature.status != Status.INVALID:
        # notes only, on a draft: the editor still counts for four eyes
        revision.last_editor = actor
        revision.save(update_fields=["last_editor", "updated_at"])
    if body is not None and signature.status == Status.INVALID:
        signature.status = Status.DRAFT
        signature.status_reason = ""
    # the list's copies of the current revision's values
    signature.family = revision.family
    signature.severity = revision.severity
    _notes_set(
        signature=signature,
        tags=tags,
        references=references,
        linked_samples=linked_samples,
        description=description,
    )
    signature.search_text = search_text(
        signature=signature,
        body=revision.body,
        family=signature.family,
        tags=[t.name for t in signature.tags.all()],
    )
    signature.full_clean(validate_unique=False)
    signature.save()
    audit_log(
        actor=actor,
        action="signature.update",
        obj=signature,
        before=before,
        after={**sig_snapshot(signature), "body": revision.body},
        reason=reason,
    )
    return signature


@transaction.atomic
def signature_delete(*, signature: Signature, actor: User) -> None:
    """Delete a signature that never shipped (draft or invalid), by its author or an admin."""
    signature = locked(signature)
    require(actor, signature, "delete")
    name = signature.name
    audit_log(actor=actor, action="signature.delete", obj=signature, object_repr=name)
    Signature.objects.filter(pk=signature.pk).update(current_revision=None, deployed_revision=None)
    signature.delete()
