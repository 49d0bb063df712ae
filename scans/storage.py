"""Where the scans app keeps files, and the derived data beside them (docs/scanning.md).

- ``samples/<ab>/<sha256>``: the uploaded app, stored once per SHA-256 (``sample_file_store``).
- ``features/<ab>/<sha256>.engine<N>.json.zst``: the full ``AppFeatures`` of one engine
  version; the row keeps a summary without the bulky DEX tables, and the app's ``androguard``
  facts in compact form for Koodous facts hunts (``sample_features_store``,
  ``sample_features_load``).
- ``units/<ab>/<key>.engine<N>.units``: the manifest and DEX bytes inflated once, so that
  retro-hunts scan them without parsing and inflating the ZIP again (engine/units.py). Keyed
  by the stored file and the engine version: derived data, rewritten whenever it is missing
  or damaged (``sample_units_store``, ``sample_units_load``).
- ``local_path``: a path on local disk for a stored file (a temp copy when storage is S3).

Scan jobs and hunt chunks both read and write through here; nothing here knows of jobs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Any

import zstandard
from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from engine import ENGINE_VERSION
from engine.analyze import DEFAULT_LIMITS
from engine.facts_summary import stored_facts
from engine.features import AppContent, AppFeatures
from engine.ruleset import android_globals
from engine.units import UnitsError, read_units, write_units
from scans.featurekeys import sample_keys_write
from scans.models import Sample

log = logging.getLogger(__name__)

CHUNK = 1 << 20
# Tables that are large and only needed to match again: kept in the features file only.
BULKY = ("strings", "types", "methods")


class ScanError(Exception):
    """A scan cannot proceed for a reason people understand (e.g. the stored file is gone)."""


# --- the app itself ------------------------------------------------------------------------------
def sample_storage_name(sha256: str) -> str:
    return f"samples/{sha256[:2]}/{sha256}"


def sample_file_store(file: File[Any], sha256: str) -> str:
    """Put the file in storage under its SHA-256 (kept if an identical one is there)."""
    name = sample_storage_name(sha256)
    if default_storage.exists(name):
        return name
    file.seek(0)
    saved = default_storage.save(name, file)
    if saved != name:  # a concurrent upload of the same file won the race; keep one copy
        default_storage.delete(saved)
    return name


@contextlib.contextmanager
def local_path(storage_name: str) -> Iterator[str]:
    """A path on local disk for the stored file (downloaded to a temp file for S3)."""
    try:
        local: str | None = default_storage.path(storage_name)
    except NotImplementedError:
        local = None
    if local is not None:
        if not os.path.isfile(local):
            raise ScanError("the stored file is missing from storage")
        yield local
        return
    if not default_storage.exists(storage_name):
        raise ScanError("the stored file is missing from storage")
    with (
        default_storage.open(storage_name, "rb") as src,
        tempfile.NamedTemporaryFile(
            dir=settings.FILE_UPLOAD_TEMP_DIR, prefix="scan-", suffix=".apk"
        ) as dst,
    ):
        for chunk in src.chunks(CHUNK):
            dst.write(chunk)
        dst.flush()
        yield dst.name


# --- features ----------------------------------------------------------------------------------
def features_summary(data: dict[str, Any]) -> dict[str, Any]:
    """``AppFeatures.to_dict()`` without the bulky DEX tables (their sizes instead)."""
    out = {k: v for k, v in data.items() if k not in BULKY}
    for key in BULKY:
        out[f"{key}_count"] = len(data.get(key) or ())
    out["parts"] = [features_summary(p) for p in data.get("parts") or ()]
    return out


def features_storage_name(sha256: str) -> str:
    return f"features/{sha256[:2]}/{sha256}.engine{ENGINE_VERSION}.json.zst"


def sample_features_store(sample: Sample, features: AppFeatures) -> None:
    """Store the full features, keep their summary and the sample's facts on its row."""
    if sample.features_engine_version == ENGINE_VERSION and sample.features_file:
        return  # the same engine gives the same features
    data = features.to_dict()
    blob = zstandard.ZstdCompressor(level=6).compress(
        json.dumps(data, separators=(",", ":")).encode()
    )
    name = features_storage_name(sample.sha256)
    if default_storage.exists(name):
        default_storage.delete(name)
    default_storage.save(name, ContentFile(blob))
    sample.features = features_summary(data)
    sample.facts = _stored_facts(sample.features)
    sample.features_file = name
    sample.features_engine_version = ENGINE_VERSION
    sample.package = (features.manifest.package or "")[:255]
    sample.app_label = (features.manifest.app_label or "")[:255]
    sample.save(
        update_fields=[
            "features",
            "facts",
            "features_file",
            "features_engine_version",
            "package",
            "app_label",
        ]
    )
    # the facts the gate looks up instead of reading the app (scans.featurekeys)
    sample_keys_write(sample=sample, features=features)
    sample.keys_engine_version = ENGINE_VERSION


def _stored_facts(summary: dict[str, Any]) -> dict[str, Any] | None:
    """The compact facts a Koodous facts hunt reads (``Sample.facts``); None when the summary
    cannot give them (the hunt then matches the sample on its own, ``scans.hunt_match``)."""
    try:
        return stored_facts(summary)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def sample_features_load(sample: Sample) -> AppFeatures | None:
    """The full features (DEX tables included) from storage; None if not analysed yet."""
    if not sample.features_file or sample.features_engine_version != ENGINE_VERSION:
        return None
    with default_storage.open(sample.features_file, "rb") as fh:
        raw: IO[bytes] = fh
        data = json.loads(zstandard.ZstdDecompressor().stream_reader(raw).read())
    return AppFeatures.from_dict(data)


# --- unit packs ----------------------------------------------------------------------------------
def units_key(file_name: str) -> bytes:
    """The key a unit pack is written with: it names the stored app the pack belongs to."""
    return hashlib.sha256(file_name.encode()).digest()


def units_storage_name(file_name: str) -> str:
    key = units_key(file_name).hex()
    return f"units/{key[:2]}/{key}.engine{ENGINE_VERSION}.units"


def sample_units_store(sample: Sample, content: AppContent, features: AppFeatures) -> None:
    """Write the sample's unit pack (with the yara facts from ``features``) unless it is
    there already (another worker may have written it)."""
    name = units_storage_name(sample.file.name)
    if default_storage.exists(name):
        return
    content = dataclasses.replace(content, facts=android_globals(features))
    with tempfile.TemporaryFile(dir=settings.FILE_UPLOAD_TEMP_DIR, prefix="units-") as fh:
        write_units(fh, units_key(sample.file.name), content)
        fh.seek(0)
        saved = default_storage.save(name, File(fh))
    if saved != name:  # written meanwhile by another worker: keep one
        default_storage.delete(saved)


def sample_units_load(sample: Sample, path: str) -> AppContent | None:
    """The sample's manifest and DEX from its unit pack (``path`` is the app on local disk);
    None when there is no usable pack (a damaged one is deleted, to be written again)."""
    name = units_storage_name(sample.file.name)
    if not default_storage.exists(name):  # S3 raises its own error for a missing key on read
        return None
    try:
        with default_storage.open(name, "rb") as fh:
            return read_units(fh, units_key(sample.file.name), path, DEFAULT_LIMITS)
    except FileNotFoundError:
        return None
    except UnitsError as exc:
        log.warning("sample %s: unit pack %s unusable (%s); reading the app", sample.pk, name, exc)
        default_storage.delete(name)
        return None
