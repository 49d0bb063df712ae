"""Template helpers for signature pages."""

from __future__ import annotations

from typing import Any

from django import template

from engine.kinds import REGISTRY
from threats.models import Signature, Status

register = template.Library()


@register.filter
def sig_summary(signature: Signature) -> str:
    """One line about the body (the kind's own summary), or why it is invalid."""
    rev = signature.current_revision
    if signature.status == Status.INVALID or rev is None or signature.kind not in REGISTRY:
        return signature.status_reason
    try:
        return REGISTRY[signature.kind].summary(rev.body)
    except Exception:
        return ""


@register.filter
def minus_one(value: Any) -> int:
    try:
        return max(int(value) - 1, 0)
    except (TypeError, ValueError):
        return 0
