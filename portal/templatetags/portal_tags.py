from __future__ import annotations

import json
from typing import Any

from django import template

register = template.Library()


@register.filter
def audit_value(value: Any) -> str:
    """An audited before/after value as a person reads it: lists joined, nothing as ∅."""
    if value is None or value == "" or value == []:
        return "∅"
    if isinstance(value, list):
        return ", ".join(audit_value(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)
