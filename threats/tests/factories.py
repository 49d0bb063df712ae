"""factory_boy factories for the threats models.

``SignatureFactory`` makes a hash signature with one revision (a fresh random SHA-256 each
time, so no two collide). For workflow states use the services; ``deployed_signature`` is a
shortcut for tests of readers (the releases front door, lists) that need shipping rows.
"""

from __future__ import annotations

import secrets
from typing import Any, cast

import factory
from django.utils import timezone

from engine.kinds import get_kind
from portal.models import User
from portal.testing import UserFactory
from threats.models import (
    Category,
    Family,
    RevisionState,
    Severity,
    Signature,
    SignatureRevision,
    Status,
)


class FamilyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Family
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Fam{n}")
    category = Category.SMS_FRAUD
    severity = Severity.MALICIOUS
    description = "A family made by a test."


def hash_body() -> dict[str, str]:
    return {"algorithm": "sha256", "value": secrets.token_hex(32), "target": "apk"}


class SignatureFactory(factory.django.DjangoModelFactory):
    """A signature and its first revision (draft unless ``status`` says otherwise)."""

    class Meta:
        model = Signature
        skip_postgeneration_save = True

    kind = "hash"
    family = factory.SubFactory(FamilyFactory)
    severity = Severity.MALICIOUS
    status = Status.DRAFT
    author = factory.SubFactory(UserFactory)

    @factory.post_generation
    def revision(obj: Signature, create: bool, extracted: Any, **kwargs: Any) -> None:
        body = kwargs.pop("body", None) or obj._factory_body  # type: ignore[attr-defined]
        state = {
            Status.DRAFT: RevisionState.DRAFT,
            Status.INVALID: RevisionState.DRAFT,
            Status.IN_REVIEW: RevisionState.IN_REVIEW,
        }.get(Status(obj.status), RevisionState.APPROVED)
        reviewer = kwargs.pop("reviewer", None)
        if state == RevisionState.APPROVED and reviewer is None:
            reviewer = UserFactory()
        rev = SignatureRevision.objects.create(
            signature=obj,
            number=1,
            body=body,
            severity=obj.severity,
            family=obj.family,
            state=state,
            author=obj.author,
            last_editor=obj.author,
            reviewed_by=reviewer if state == RevisionState.APPROVED else None,
            reviewed_at=timezone.now() if state == RevisionState.APPROVED else None,
        )
        obj.current_revision = rev
        if state == RevisionState.APPROVED:
            obj.deployed_revision = rev
        obj.search_text = f"{obj.name} {get_kind(obj.kind).summary(body)}".lower()
        obj.save()

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Signature:
        body = kwargs.pop("body", None) or hash_body()
        obj: Signature = super()._create(
            model_class, *args, dedup_key=get_kind(kwargs["kind"]).dedup_key(body), **kwargs
        )
        obj._factory_body = body  # type: ignore[attr-defined]
        return obj


def make_family(**kwargs: Any) -> Family:
    return cast(Family, FamilyFactory(**kwargs))


def make_signature(**kwargs: Any) -> Signature:
    return cast(Signature, SignatureFactory(**kwargs))


def deployed_signature(**kwargs: Any) -> Signature:
    kwargs.setdefault("status", Status.DEPLOYED)
    return make_signature(**kwargs)


def make_user(*roles: str, **kwargs: Any) -> User:
    return cast(User, UserFactory(roles=list(roles), **kwargs))
