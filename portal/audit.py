"""The audit helper that services call explicitly (no signals): one row per action."""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import models

from portal.models import AuditEntry, User
from portal.request_context import source_ip


def snapshot(obj: models.Model, fields: Iterable[str]) -> dict[str, Any]:
    """The JSON-able values of ``fields`` on ``obj``, for before/after diffs."""
    out: dict[str, Any] = {}
    for name in fields:
        field = obj._meta.get_field(name)
        value = getattr(obj, field.attname) if hasattr(field, "attname") else getattr(obj, name)
        out[name] = _jsonable(value)
    return out


def diff(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, Any]:
    """Field-level changes: {field: {"before": x, "after": y}} for fields that differ."""
    before = before or {}
    after = after or {}
    changes: dict[str, Any] = {}
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old != new:
            changes[key] = {"before": old, "after": new}
    return changes


def audit_log(
    *,
    actor: User | None,
    action: str,
    obj: models.Model | None = None,
    object_type: str | None = None,
    object_id: str | int | None = None,
    object_repr: str | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    reason: str = "",
) -> AuditEntry:
    entry = _entry(
        actor=actor,
        action=action,
        obj=obj,
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr,
        before=before,
        after=after,
        reason=reason,
    )
    entry.full_clean()
    entry.save()
    return entry


def audit_log_many(
    *,
    actor: User | None,
    action: str,
    rows: Iterable[tuple[models.Model, Mapping[str, Any] | None, Mapping[str, Any] | None, str]],
) -> int:
    """``audit_log`` of one action on many objects (a bulk action): the same row for each
    ``(obj, before, after, reason)``, written together. Returns how many."""
    entries = []
    for obj, before, after, reason in rows:
        entry = _entry(
            actor=actor, action=action, obj=obj, before=before, after=after, reason=reason
        )
        entry.full_clean(exclude=["actor"])  # one actor for all: checked once below
        entries.append(entry)
    if entries and entries[0].actor is not None:
        entries[0].full_clean()
    AuditEntry.objects.bulk_create(entries, batch_size=500)
    return len(entries)


def _entry(
    *,
    actor: User | None,
    action: str,
    obj: models.Model | None = None,
    object_type: str | None = None,
    object_id: str | int | None = None,
    object_repr: str | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    reason: str = "",
) -> AuditEntry:
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = obj.pk if object_id is None else object_id
        object_repr = object_repr or str(obj)
    return AuditEntry(
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_name=actor.get_username() if actor is not None else "system",
        source_ip=source_ip.get(),
        object_type=object_type or "",
        object_id="" if object_id is None else str(object_id),
        object_repr=(object_repr or "")[:255],
        action=action,
        changes=diff(before, after),
        reason=reason,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value
