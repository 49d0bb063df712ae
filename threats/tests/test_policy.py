"""One policy: for every role, relation to the signature, state and action, ``threats.policy``
allows an action exactly when the service call succeeds (run in a savepoint, rolled back).

Roles: researcher, reviewer, admin, auditor; each as the author of the signature and of its
current revision, as that revision's last editor only, and as someone else. States: a draft,
in review, deployed, deployed with a new revision in review, deployed with a new draft
revision, noisy, disabled, rejected, invalid. What the policy leaves to the service is given
here so that it cannot refuse: a reason, a body that compiles, a passed clean-corpus gate.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from portal.exceptions import ApplicationError
from portal.models import User
from portal.roles import ROLES, sync_roles
from portal.testing import gate
from threats import services
from threats.models import RevisionState, Signature, SignatureRevision, Status
from threats.policy import ACTIONS, allowed_actions, bulk_actions
from threats.tests.factories import make_family

pytestmark = pytest.mark.django_db

RELATIONS = ("author", "last_editor", "other")
STATES = (
    "draft",
    "in_review",
    "deployed",
    "pending_review",  # deployed, a new revision in review
    "pending_draft",  # deployed, a new revision in draft
    "noisy",
    "disabled",
    "rejected",
    "invalid",
)
REASON = "the test says so"

CALLS: dict[str, Callable[[Signature, User], Any]] = {
    "edit": lambda sig, user: services.signature_update(
        signature=sig, actor=user, severity="riskware", reason=REASON
    ),
    "delete": lambda sig, user: services.signature_delete(signature=sig, actor=user),
    "submit": lambda sig, user: services.signature_submit(signature=sig, actor=user),
    "approve": lambda sig, user: services.signature_approve(signature=sig, actor=user),
    "reject": lambda sig, user: services.signature_reject(signature=sig, actor=user, reason=REASON),
    "noisy": lambda sig, user: services.signature_mark_noisy(
        signature=sig, actor=user, reason=REASON
    ),
    "disable": lambda sig, user: services.signature_disable(
        signature=sig, actor=user, reason=REASON
    ),
}


class _Undo(Exception):
    """Raised inside the savepoint after a service succeeded, to roll its writes back."""


def _user(username: str, *roles: str) -> User:
    # no password: hashing one costs a second per user and nothing here logs in
    user = User.objects.create(username=username)
    user.groups.set(Group.objects.filter(name__in=roles))
    return user


def _approve(revision: SignatureRevision, approver: User) -> None:
    revision.state = RevisionState.APPROVED
    revision.reviewed_by = approver
    revision.reviewed_at = timezone.now()
    revision.save()


def _revision_2(sig: Signature, *, author: User, editor: User, state: str) -> SignatureRevision:
    first = sig.current_revision
    assert first is not None
    rev = SignatureRevision.objects.create(
        signature=sig,
        number=2,
        body={"algorithm": "sha256", "target": "apk", "value": secrets.token_hex(32)},
        severity=first.severity,
        family=first.family,
        min_engine=first.min_engine,
        state=state,
        author=author,
        last_editor=editor,
    )
    sig.current_revision = rev
    return rev


def _signature(state: str, *, author: User, editor: User, approver: User) -> Signature:
    """A signature in ``state`` whose current revision ``author`` wrote and ``editor`` last
    edited (the signature's author is ``author`` too); ``approver`` approved what shipped."""
    sig = services.signature_create(
        actor=author, kind="hash", body=secrets.token_hex(32), family=make_family(name="Joker")
    )
    rev = sig.current_revision
    assert rev is not None
    if state in ("deployed", "pending_review", "pending_draft", "noisy", "disabled"):
        _approve(rev, approver)
        sig.deployed_revision = rev
        sig.status = {"noisy": Status.NOISY, "disabled": Status.DISABLED}.get(
            state, Status.DEPLOYED
        )
        if state == "pending_review":
            _revision_2(sig, author=author, editor=editor, state=RevisionState.IN_REVIEW)
        elif state == "pending_draft":
            _revision_2(sig, author=author, editor=editor, state=RevisionState.DRAFT)
        else:
            rev.last_editor = editor
            rev.save()
    else:
        rev.last_editor = editor
        rev.state = {
            "in_review": RevisionState.IN_REVIEW,
            "rejected": RevisionState.REJECTED,
        }.get(state, RevisionState.DRAFT)
        rev.save()
        sig.status = {
            "in_review": Status.IN_REVIEW,
            "invalid": Status.INVALID,
        }.get(state, Status.DRAFT)
        sig.status_reason = {"rejected": "not yet", "invalid": "does not compile"}.get(state, "")
    sig.save()
    return sig


@pytest.fixture
def world(settings: Any) -> dict[tuple[str, str, str], tuple[User, int]]:
    """(role, relation, state) -> (the user, the signature's id), the revisions in review
    through the clean-corpus gate (a real retro-hunt, here over no samples)."""
    settings.GATE_MIN_CLEAN_APPS = 0  # a gate over no clean corpus passes: the policy is tested
    sync_roles()
    owner = _user("owner", "researcher")
    approver = _user("approver", "reviewer")
    out: dict[tuple[str, str, str], tuple[User, int]] = {}
    for role in ROLES:
        for relation in RELATIONS:
            user = _user(f"{role}-{relation}", role)
            author = user if relation == "author" else owner
            editor = user if relation == "last_editor" else author
            for state in STATES:
                sig = _signature(state, author=author, editor=editor, approver=approver)
                out[(role, relation, state)] = (user, sig.pk)
    reviewing = Signature.objects.filter(current_revision__state=RevisionState.IN_REVIEW)
    gate(*reviewing)
    return out


def _succeeds(call: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
    """Whether ``call`` returns without an application error; its writes are rolled back."""
    try:
        with transaction.atomic():
            call(*args, **kwargs)
            raise _Undo
    except _Undo:
        return True
    except ApplicationError:
        return False


def _bulk(result: services.BulkResult, **kwargs: Any) -> None:
    result.succeeded = services.signature_bulk_action(**kwargs).succeeded


def test_the_policy_allows_exactly_what_the_services_do(world):
    disagree = []
    allowed_somewhere: set[str] = set()
    for (role, relation, state), (user, pk) in world.items():
        allowed = allowed_actions(user, Signature.objects.get(pk=pk))
        allowed_somewhere |= allowed
        for action in ACTIONS:
            done = _succeeds(CALLS[action], Signature.objects.get(pk=pk), user)
            if done != (action in allowed):
                disagree.append((role, relation, state, action, "service" if done else "policy"))
    assert disagree == []
    # and every action is possible for someone somewhere (the matrix is not all refusals)
    assert allowed_somewhere == set(ACTIONS)


def test_bulk_actions_follow_the_policy_one_signature_at_a_time(world):
    # given the bulk actions each role may try
    disagree = []
    for (role, relation, state), (user, pk) in world.items():
        allowed = allowed_actions(user, Signature.objects.get(pk=pk))
        for action in bulk_actions(user):
            # when the role runs one on this signature, then it succeeds where one would
            result = services.BulkResult()
            _succeeds(_bulk, result, actor=user, ids=[pk], action=action, reason=REASON)
            done = result.succeeded == [pk]
            if done != (action in allowed):
                disagree.append((role, relation, state, action))
    assert disagree == []


SEEN = [
    # the author of a draft edits, deletes and submits it; nobody else deletes it
    ("researcher", "author", "draft", {"edit", "delete", "submit"}),
    ("researcher", "other", "draft", set()),
    # a reviewer may edit anyone's draft, and then cannot approve it (four eyes)
    ("reviewer", "other", "draft", {"edit", "submit", "disable"}),
    ("reviewer", "other", "in_review", {"approve", "reject", "disable"}),
    ("reviewer", "author", "in_review", {"disable"}),
    ("reviewer", "last_editor", "in_review", {"disable"}),
    ("reviewer", "last_editor", "pending_review", {"noisy", "disable"}),
    ("admin", "other", "pending_review", {"approve", "reject", "noisy", "disable"}),
    # an admin deletes anyone's draft
    ("admin", "other", "draft", {"edit", "delete", "submit", "disable"}),
    ("researcher", "author", "deployed", {"edit"}),
    ("researcher", "author", "rejected", {"edit", "delete", "submit"}),
    ("researcher", "author", "invalid", {"edit", "delete"}),
    ("reviewer", "other", "disabled", {"edit"}),
    # an auditor reads, even what they once wrote
    ("auditor", "author", "draft", set()),
    ("auditor", "other", "in_review", set()),
]


def test_what_each_role_sees(world):
    seen, expected = {}, {}
    for role, relation, state, actions in SEEN:
        user, pk = world[(role, relation, state)]
        seen[(role, relation, state)] = allowed_actions(user, Signature.objects.get(pk=pk))
        expected[(role, relation, state)] = actions
    assert seen == expected


def test_bulk_actions_by_role():
    sync_roles()
    assert bulk_actions(_user("rita", "researcher")) == ("submit",)
    assert bulk_actions(_user("vera", "reviewer")) == (
        "submit",
        "approve",
        "reject",
        "noisy",
        "disable",
    )
    assert bulk_actions(_user("otto", "auditor")) == ()


def test_the_api_lists_what_the_requesting_user_may_do(api, settings):
    # given a researcher's signature in review, and a reviewer who did not write it
    settings.GATE_MIN_CLEAN_APPS = 0
    sync_roles()
    rita, vera = _user("rita", "researcher"), _user("vera", "reviewer")
    sig = _signature("in_review", author=rita, editor=rita, approver=vera)
    url = f"/api/v1/signatures/{sig.pk}/"
    # when each reads it, then each sees their own actions, in the policy's order
    assert api(rita).get(url).json()["allowed_actions"] == []
    assert api(vera).get(url).json()["allowed_actions"] == ["approve", "reject", "disable"]
    # and an action's answer is the signature as the actor now sees it
    gate(sig)
    answer = api(vera).post(f"{url}approve/", {}, format="json")
    assert answer.status_code == 200
    assert answer.json()["allowed_actions"] == ["edit", "noisy", "disable"]
    assert api(rita).get(url).json()["allowed_actions"] == ["edit"]
