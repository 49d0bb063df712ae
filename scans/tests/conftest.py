"""Fixtures for the scans tests: corpus files, rulesets built from explicit records."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.features import RuleRecord
from engine.kinds import get_kind
from portal.testing import CORPUS
from scans import rulesets
from scans.rulesets import ExplicitRuleset

SMALL_APK = "v1-only-with-rsa-pkcs1-sha256-1.2.840.113549.1.1.11-2048.apk"


def corpus_files() -> list[Path]:
    return sorted(p for p in (CORPUS / "apks").iterdir() if p.is_file())


def manifest_rows() -> dict[str, dict[str, str]]:
    """MANIFEST.tsv by file name, with the notes' ``key=value`` facts as extra columns."""
    out: dict[str, dict[str, str]] = {}
    with (CORPUS / "MANIFEST.tsv").open() as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            facts = dict(row)
            for part in row["notes"].replace("|", ";").split(";"):
                key, sep, value = part.strip().partition("=")
                if sep:
                    facts[key.strip()] = value.strip()
            out[Path(row["relative_path"]).name] = facts
    return out


def record(
    signature_id: int,
    kind: str,
    body: Any,
    *,
    severity: str = "malicious",
    noisy: bool = False,
    name: str | None = None,
) -> RuleRecord:
    result = get_kind(kind).validate(body)
    assert result.ok, result.errors
    return RuleRecord(
        id=signature_id,
        revision=1,
        name=name or f"Andr.SmsFraud.Test-{signature_id}-1",
        kind=kind,
        body=result.body,
        severity=severity,  # type: ignore[arg-type]
        noisy=noisy,
    )


@pytest.fixture
def ruleset_of() -> Callable[..., Callable[[], ExplicitRuleset]]:
    """A ruleset provider for scan_run, from explicit records (release number optional)."""

    def make(*records: RuleRecord, release: int | None = 7) -> Callable[[], ExplicitRuleset]:
        source = ExplicitRuleset.of(records, release=release)
        return lambda: source

    return make


@pytest.fixture(autouse=True)
def _fresh_ruleset_cache() -> Iterator[None]:
    rulesets.cache_clear()
    yield
    rulesets.cache_clear()


@pytest.fixture
def small_apk(corpus: Path) -> Path:
    return corpus / "apks" / SMALL_APK
