"""Factories for scans rows (files go through the real service: see ``stored_sample``)."""

from __future__ import annotations

from pathlib import Path

from portal.models import User
from scans.models import Sample, ScanJob
from scans.services import sample_ingest


def stored_sample(
    path: Path, *, label: str | None = None, user: User | None = None
) -> tuple[Sample, ScanJob]:
    """Store ``path`` as a sample with a queued scan, as an upload would."""
    sample, scan, _ = sample_ingest(path=path, label=label, user=user)
    return sample, scan
