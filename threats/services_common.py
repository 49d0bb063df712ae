"""What the threats write paths share: body validation, duplicates, search text, locking.

The services modules (``services``, ``services_review``, ``services_families``,
``services_import``, ``services_gates``) import from here and never from each other's
privates, so none of them imports ``threats.services`` (which re-exports them all).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from engine.kinds import REGISTRY, UnknownKind, get_kind
from engine.kinds.base import Issue, ValidationResult
from portal.audit import snapshot
from portal.exceptions import ApplicationError, ConflictError, NotFoundError
from threats.models import Family, Signature, SignatureRevision, Tag
from threats.public import signature_url

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
# rows read or written per query in feed-sized paths (SQLite takes at most 32,766 parameters)
BULK_BATCH = 500


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


def valid_body(*, kind: str, body: Any) -> tuple[Any, list[Issue]]:
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


def refuse_duplicate(*, kind: str, dedup_key: str, exclude: int | None = None) -> None:
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


def check_samples(samples: Sequence[str]) -> list[str]:
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


def tags_named(names: Iterable[str]) -> list[Tag]:
    tags = []
    for raw in names:
        name = str(raw).strip().lower()[:64]
        if name:
            tag, _ = Tag.objects.get_or_create(name=name)
            tags.append(tag)
    return tags


def sig_snapshot(signature: Signature) -> dict[str, Any]:
    return snapshot(signature, SIGNATURE_FIELDS)


def locked(signature: Signature) -> Signature:
    """``signature`` locked and refreshed in place (the caller's object sees every change)."""
    if not Signature.objects.select_for_update().filter(pk=signature.pk).exists():
        raise NotFoundError("No such signature.")
    signature.refresh_from_db()
    return signature


def current_revision(signature: Signature) -> SignatureRevision:
    rev = signature.current_revision
    if rev is None:
        raise ApplicationError("This signature has no revision.")
    return rev


def in_batches(qs: Any, ids: list[int]) -> Iterator[Any]:
    """``qs`` rows with these primary keys, read 500 ids at a time (SQLite takes at most
    32,766 query parameters; a feed's gate names 100,000 revisions)."""
    for start in range(0, len(ids), BULK_BATCH):
        yield from qs.filter(pk__in=ids[start : start + BULK_BATCH])
