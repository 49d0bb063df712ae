"""Quark-Engine rules (one JSON object per file) as behaviour candidates."""

from __future__ import annotations

import json
from typing import Any

from engine.importers.base import ImportCandidate, decode_text, finish
from engine.kinds.behavior import from_quark


def parse_bytes(name: str, data: bytes) -> list[ImportCandidate]:
    try:
        document: Any = json.loads(decode_text(data))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [_failure(name, f"not a JSON file: {exc}")]
    rules = document if isinstance(document, list) else [document]
    candidates = []
    for n, rule in enumerate(rules):
        source = name if len(rules) == 1 else f"{name}:{n + 1}"
        if not isinstance(rule, dict) or "api" not in rule or "crime" not in rule:
            candidates.append(_failure(source, "not a Quark rule (needs 'crime' and 'api')"))
            continue
        try:
            body = from_quark(rule)
        except ValueError as exc:
            candidates.append(_failure(source, str(exc)))
            continue
        crime = rule.get("crime")
        candidates.append(
            finish(
                ImportCandidate(
                    kind="behavior",
                    body=body,
                    name=crime if isinstance(crime, str) else None,
                    source=source,
                    family_hint=body.get("label"),
                    severity_hint=None,
                )
            )
        )
    return candidates or [_failure(name, "an empty JSON list")]


def _failure(source: str, reason: str) -> ImportCandidate:
    return ImportCandidate(kind="", body=None, name=None, source=source, error=reason)
