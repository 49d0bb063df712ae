"""CSV with a header row: ``kind, body, family, severity, name`` (the export format).

``body`` is JSON for the dict kinds and raw text for ``yara``; a bare string is accepted
where a kind takes one (a hash value, an indicator). Only ``kind`` and ``body`` are required.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from engine.importers.base import ImportCandidate, decode_text, finish
from engine.kinds import REGISTRY

COLUMNS = ("kind", "body", "family", "severity", "name")
SEVERITIES = ("malicious", "suspicious", "riskware")


def parse_bytes(name: str, data: bytes) -> list[ImportCandidate]:
    try:
        text = decode_text(data)
    except UnicodeDecodeError as exc:
        return [_failure(name, f"cannot read the file as UTF-8 text: {exc}")]
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = [h.strip().lower() for h in reader.fieldnames or []]
        if not {"kind", "body"} <= set(header):
            return [_failure(name, "a signature CSV needs a header with 'kind' and 'body'")]
        reader.fieldnames = header
        candidates = [_row(name, reader.line_num, row) for row in reader]
    except csv.Error as exc:
        return [_failure(name, f"not a readable CSV file: {exc}")]
    return candidates or [_failure(name, "the CSV has no rows")]


def _row(name: str, line: int, row: dict[str, Any]) -> ImportCandidate:
    source = f"{name}:{line}"
    kind = (row.get("kind") or "").strip()
    raw = row.get("body") or ""
    family = (row.get("family") or "").strip() or None
    severity = (row.get("severity") or "").strip().lower() or None
    title = (row.get("name") or "").strip() or None
    if kind not in REGISTRY:
        return _failure(source, f"unknown signature kind {kind!r}", name=title)
    body: Any = raw
    if kind != "yara":
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            body = raw.strip()
    if severity is not None and severity not in SEVERITIES:
        return _failure(source, f"unknown severity {severity!r}", name=title, kind=kind)
    return finish(
        ImportCandidate(
            kind=kind,
            body=body,
            name=title,
            source=source,
            family_hint=family,
            severity_hint=severity,
        )
    )


def _failure(
    source: str, reason: str, *, name: str | None = None, kind: str = ""
) -> ImportCandidate:
    return ImportCandidate(kind=kind, body=None, name=name, source=source, error=reason)
