"""Write signature records out for other tools: YARA, CSV and STIX 2.1.

Each exporter asks a record's kind for its part (``Kind.yara_source``, ``Kind.csv_body``,
``Kind.stix_pattern``), so a new kind exports without an edit here.

``to_yara`` and ``to_csv`` round-trip through ``engine.importers``: parsing the export gives
back the same kinds and normalised bodies. ``to_stix`` is one-way and deterministic (ids are
uuid5 of the record's kind and dedup key), so exporting twice gives identical bundles.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterable
from typing import Any

from engine.features import RuleRecord
from engine.kinds import REGISTRY, _yara_source

# uuid5 namespace for this product's STIX ids; never change it, ids would all change
STIX_NAMESPACE = uuid.UUID("6f0b8c1e-2d1f-5a57-9a3c-6a1c1f0e7d42")
STIX_EPOCH = "1970-01-01T00:00:00.000Z"
CSV_COLUMNS = ("kind", "body", "family", "severity", "name")


def to_yara(records: Iterable[RuleRecord]) -> str:
    """The YARA records as one file: imports first, each helper rule once, then each rule.

    Records whose kind has no YARA source (``Kind.yara_source``) are left out (they would
    come back as YARA, not as themselves); so are records of kinds this engine lacks. Helpers that
    two records define identically are written once. Two records that define different rules
    under one name make a file that neither compiles as a whole nor splits back correctly,
    so keep rule names unique. Global helper rules gate every rule of a YARA file, so
    records carrying one should be exported on their own.
    """
    imports: set[str] = set()
    helpers: dict[str, str] = {}
    rules: list[str] = []
    for record in records:
        kind = REGISTRY.get(record.kind)
        source = kind.yara_source(record.body) if kind is not None else None
        if source is None:
            continue
        parsed = _yara_source.parse(source)
        imports.update(m for m, _ in parsed.imports)
        for rule in parsed.rules:
            if rule.private:
                helpers.setdefault(rule.text, rule.text)
            else:
                rules.append(f"// {record.name} ({record.severity})\n{rule.text}\n")
    parts = [f'import "{m}"' for m in sorted(imports)]
    if parts:
        parts.append("")
    parts += [h + "\n" for h in helpers.values()]
    parts += rules
    return "\n".join(parts)


def _family(name: str) -> str:
    # Andr.<Category>.<Family>-<id>-<revision>
    parts = name.split(".")
    return parts[2].split("-")[0] if len(parts) >= 3 else ""


def to_csv(records: Iterable[RuleRecord]) -> str:
    """All records as CSV with the columns the CSV importer reads."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for record in records:
        kind = REGISTRY.get(record.kind)
        body = kind.csv_body(record.body) if kind else json.dumps(record.body, sort_keys=True)
        writer.writerow([record.kind, body, _family(record.name), record.severity, record.name])
    return out.getvalue()


def to_stix(records: Iterable[RuleRecord], *, created: str = STIX_EPOCH) -> dict[str, Any]:
    """A STIX 2.1 bundle with one ``indicator`` per record STIX can express.

    Each kind says its pattern (``Kind.stix_pattern``): hashes (file, DEX and certificate),
    domains, URLs, IPs, networks and YARA rules are exported; SMS short codes, behaviours and
    package/certificate pairs have no STIX pattern and are left out, as are records of kinds
    this engine lacks. ``created`` fills created/modified/valid_from, so output is stable.
    """
    objects: list[dict[str, Any]] = []
    for record in records:
        kind = REGISTRY.get(record.kind)
        found = kind.stix_pattern(record.body) if kind is not None else None
        if found is None or kind is None:
            continue
        pattern, pattern_type = found
        key = kind.dedup_key(record.body)
        indicator: dict[str, Any] = {
            "type": "indicator",
            "spec_version": "2.1",
            "id": f"indicator--{uuid.uuid5(STIX_NAMESPACE, key)}",
            "created": created,
            "modified": created,
            "name": record.name,
            "indicator_types": [
                "malicious-activity" if record.severity == "malicious" else "anomalous-activity"
            ],
            "pattern": pattern,
            "pattern_type": pattern_type,
            "valid_from": created,
        }
        if pattern_type == "yara":
            indicator["pattern_version"] = "yara-x"
        objects.append(indicator)
    ids = ",".join(o["id"] for o in objects)
    return {
        "type": "bundle",
        "id": f"bundle--{uuid.uuid5(STIX_NAMESPACE, ids)}",
        "objects": objects,
    }


__all__ = ["to_csv", "to_stix", "to_yara"]
