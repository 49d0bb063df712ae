"""Who may do what to a signature, now: the one policy that services, pages and the API call.

The services refuse with ``require`` (the same messages and status codes as before there was
a policy); the pages and the API show ``allowed_actions`` (buttons, the list's bulk actions,
``allowed_actions`` in the API's signature detail). Both read the rules below, so a button
is shown exactly when the service would take the click (STYLE.md 12).

The actions and their rules:

- ``edit``: the signature's or current revision's author, a reviewer or an admin, with the
  ``change_signature`` permission, while the current revision is not in review;
- ``delete``: a signature that never shipped (draft or invalid, no deployed revision), by its
  author or an admin, with ``delete_signature``;
- ``submit``: a draft or rejected current revision of a signature that is not invalid, by
  whoever may edit it;
- ``approve``, ``reject``: a revision in review, by a reviewer who neither wrote it nor last
  edited it (four eyes; also a database constraint);
- ``noisy``: a deployed signature, by a reviewer (``moderate_signature``);
- ``disable``: any signature not disabled yet, by a reviewer (``moderate_signature``).

What the policy does not decide, because it is about the request rather than the person and
the state: a reason where one is required, a body that still compiles, and the clean-corpus
gate of an approval (``threats.gates``). The services check those after the policy.
Retro-hunts belong to the scans app, which checks its own permission.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portal.exceptions import ApplicationError, ConflictError, ForbiddenError
from portal.roles import ADMIN, has_role
from threats.models import RevisionState, Signature, SignatureRevision, Status

CHANGE = "threats.change_signature"
DELETE = "threats.delete_signature"
REVIEW = "threats.review_signature"
MODERATE = "threats.moderate_signature"

# in the order pages show them
ACTIONS: tuple[str, ...] = ("edit", "delete", "submit", "approve", "reject", "noisy", "disable")
# the permission a role needs to try an action on many signatures at once (the services then
# check each signature under the rules above)
BULK_PERMS: dict[str, str] = {
    "submit": CHANGE,
    "approve": REVIEW,
    "reject": REVIEW,
    "noisy": MODERATE,
    "disable": MODERATE,
}


def is_admin(user: Any) -> bool:
    return bool(user.is_superuser or has_role(user, ADMIN))


def _no_revision() -> ApplicationError:
    return ApplicationError("This signature has no revision.")


def _may_edit(user: Any, signature: Signature, revision: SignatureRevision) -> bool:
    """Author (of the signature or of this revision), admin or reviewer."""
    if user.pk in (signature.author_id, revision.author_id):
        return True
    return is_admin(user) or user.has_perm(REVIEW)


def _edit(user: Any, signature: Signature) -> ApplicationError | None:
    revision = signature.current_revision
    if revision is None:
        return _no_revision()
    if not user.has_perm(CHANGE):
        return ForbiddenError("Your role does not allow editing signatures.")
    if not _may_edit(user, signature, revision):
        return ForbiddenError("Only the author edits a draft signature.")
    if revision.state == RevisionState.IN_REVIEW:
        return ConflictError(
            "This revision is in review; a reviewer must approve or reject it before it changes."
        )
    return None


def _delete(user: Any, signature: Signature) -> ApplicationError | None:
    if signature.status not in (Status.DRAFT, Status.INVALID) or signature.deployed_revision_id:
        return ConflictError(
            "Only drafts are deleted; disable a signature that has been in review or deployed."
        )
    if not user.has_perm(DELETE):
        return ForbiddenError("Your role does not allow deleting signatures.")
    if user.pk != signature.author_id and not is_admin(user):
        return ForbiddenError("Only the author deletes a draft.")
    return None


def _submit(user: Any, signature: Signature) -> ApplicationError | None:
    revision = signature.current_revision
    if revision is None:
        return _no_revision()
    if signature.status == Status.INVALID:
        return ConflictError(
            "An invalid signature cannot be submitted; fix its body first.",
            {"reason": signature.status_reason},
        )
    if signature.status == Status.DISABLED and revision.state == RevisionState.APPROVED:
        return ConflictError("A disabled signature needs a new revision before review.")
    if revision.state not in (RevisionState.DRAFT, RevisionState.REJECTED):
        return ConflictError(f"Revision {revision.number} is {revision.get_state_display()}.")
    if not user.has_perm(CHANGE):
        return ForbiddenError("Your role does not allow submitting signatures.")
    if not _may_edit(user, signature, revision):
        return ForbiddenError("Only the author submits a draft.")
    return None


def _reviewer_of(user: Any, revision: SignatureRevision, verb: str) -> ApplicationError | None:
    if not user.has_perm(REVIEW):
        return ForbiddenError(f"Only a reviewer may {verb} signatures.")
    if user.pk in (revision.author_id, revision.last_editor_id):
        return ForbiddenError(
            f"You wrote or last edited revision {revision.number}; another reviewer must "
            f"{verb} it (four eyes)."
        )
    return None


def _approve(user: Any, signature: Signature) -> ApplicationError | None:
    revision = signature.current_revision
    if revision is None:
        return _no_revision()
    if revision.state != RevisionState.IN_REVIEW:
        return ConflictError("Only a revision in review can be approved; submit it first.")
    return _reviewer_of(user, revision, "approve")


def _reject(user: Any, signature: Signature) -> ApplicationError | None:
    revision = signature.current_revision
    if revision is None:
        return _no_revision()
    if revision.state != RevisionState.IN_REVIEW:
        return ConflictError("Only a revision in review can be rejected.")
    return _reviewer_of(user, revision, "reject")


def _noisy(user: Any, signature: Signature) -> ApplicationError | None:
    if not user.has_perm(MODERATE):
        return ForbiddenError("Only a reviewer marks signatures noisy.")
    if signature.status != Status.DEPLOYED:
        return ConflictError("Only a deployed signature can be marked noisy.")
    return None


def _disable(user: Any, signature: Signature) -> ApplicationError | None:
    if not user.has_perm(MODERATE):
        return ForbiddenError("Only a reviewer disables signatures.")
    if signature.status == Status.DISABLED:
        return ConflictError("This signature is already disabled.")
    if signature.current_revision is None:
        return _no_revision()
    return None


_RULES: dict[str, Callable[[Any, Signature], ApplicationError | None]] = {
    "edit": _edit,
    "delete": _delete,
    "submit": _submit,
    "approve": _approve,
    "reject": _reject,
    "noisy": _noisy,
    "disable": _disable,
}


def refusal(user: Any, signature: Signature, action: str) -> ApplicationError | None:
    """Why ``user`` may not take ``action`` on ``signature`` now (the error a service raises),
    or None when they may. ``signature.current_revision`` is read as it is loaded."""
    try:
        rule = _RULES[action]
    except KeyError:
        raise ApplicationError(f"Unknown action {action!r}.", {"actions": list(ACTIONS)}) from None
    return rule(user, signature)


def require(user: Any, signature: Signature, action: str) -> None:
    """Raise the refusal, if any (what the services call)."""
    error = refusal(user, signature, action)
    if error is not None:
        raise error


def allowed_actions(user: Any, signature: Signature) -> frozenset[str]:
    """The actions ``user`` may take on ``signature`` now (what pages and the API show)."""
    return frozenset(a for a in ACTIONS if _RULES[a](user, signature) is None)


def bulk_actions(user: Any) -> tuple[str, ...]:
    """The bulk actions ``user``'s role may try (each signature is then checked on its own)."""
    return tuple(a for a, perm in BULK_PERMS.items() if user.has_perm(perm))
