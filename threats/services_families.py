"""Write paths of families: create and update (a rename or new category refreshes the search
text of the family's signatures)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import transaction

from portal.audit import audit_log, snapshot
from portal.exceptions import ApplicationError, ConflictError
from portal.models import User
from threats.models import Family, Signature
from threats.services_common import search_text

FAMILY_FIELDS = ("name", "category", "severity", "description", "aliases", "references")


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
