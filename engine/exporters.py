"""Write signature records out for other tools: YARA, CSV and STIX 2.1.

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
from engine.kinds import _yara_source, get_kind

# uuid5 namespace for this product's STIX ids; never change it, ids would all change
STIX_NAMESPACE = uuid.UUID("6f0b8c1e-2d1f-5a57-9a3c-6a1c1f0e7d42")
STIX_EPOCH = "1970-01-01T00:00:00.000Z"
_STIX_HASH_NAMES = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256"}
CSV_COLUMNS = ("kind", "body", "family", "severity", "name")


def to_yara(records: Iterable[RuleRecord]) -> str:
    """The YARA records as one file: imports first, each helper rule once, then each rule.

    Other kinds are left out (they would come back as YARA, not as themselves). Helpers that
    two records define identically are written once. Two records that define different rules
    under one name make a file that neither compiles as a whole nor splits back correctly,
    so keep rule names unique. Global helper rules gate every rule of a YARA file, so
    records carrying one should be exported on their own.
    """
    imports: set[str] = set()
    helpers: dict[str, str] = {}
    rules: list[str] = []
    for record in records:
        if record.kind != "yara":
            continue
        parsed = _yara_source.parse(record.body)
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
        body = record.body if record.kind == "yara" else json.dumps(record.body, sort_keys=True)
        writer.writerow([record.kind, body, _family(record.name), record.severity, record.name])
    return out.getvalue()


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _stix_pattern(record: RuleRecord) -> tuple[str, str] | None:
    """(pattern, pattern_type) for a record, or None when STIX has no way to say it."""
    body = record.body
    if record.kind == "hash":
        algorithm = _STIX_HASH_NAMES[body["algorithm"]]
        obj = "x509-certificate" if body["target"] == "cert" else "file"
        return f"[{obj}:hashes.'{algorithm}' = {_quote(body['value'])}]", "stix"
    if record.kind == "indicator":
        value = body["value"]
        if body["type"] == "domain":
            return f"[domain-name:value = {_quote(value)}]", "stix"
        if body["type"] == "url":
            return f"[url:value = {_quote(value)}]", "stix"
        if body["type"] in ("ip", "cidr"):
            obj = "ipv6-addr" if ":" in value else "ipv4-addr"
            return f"[{obj}:value = {_quote(value)}]", "stix"
        return None
    if record.kind == "yara":
        return record.body, "yara"
    return None


def to_stix(records: Iterable[RuleRecord], *, created: str = STIX_EPOCH) -> dict[str, Any]:
    """A STIX 2.1 bundle with one ``indicator`` per record STIX can express.

    Hashes (file, DEX and certificate), domains, URLs, IPs, networks and YARA rules are
    exported; SMS short codes, behaviours and package/certificate pairs have no STIX pattern
    and are left out. ``created`` fills created/modified/valid_from, so output is stable.
    """
    objects: list[dict[str, Any]] = []
    for record in records:
        found = _stix_pattern(record)
        if found is None:
            continue
        pattern, pattern_type = found
        key = get_kind(record.kind).dedup_key(record.body)
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
