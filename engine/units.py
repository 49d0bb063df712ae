"""Scan units: the inflated bytes yara rules look at, kept beside a stored app for retro-hunts.

A yara match looks at the raw file, the binary manifest and every DEX (``AppContent``).
The raw file is stored anyway; the manifest and DEX are deflated inside it, and inflating
them is most of what a retro-hunt costs (zlib gives ~300 MB/s of output, yara-x scans
literal patterns at several GB/s: docs/retrohunts.md, "Measured"). So the first analysis
writes them once, uncompressed, into one *unit pack*, and a hunt reads them back with one
``read`` per unit: no ZIP parsing, no inflation.

Layout (little-endian)::

    magic  b"APKUNIT1"
    owner  32 bytes chosen by the caller (the portal: SHA-256 of the stored file's name), so
           a pack is never used for another file
    count  u16
    count x (kind u8: 1 manifest, 2 dex, 3 facts; name length u16; data length u64; name)
    the data of each unit, in the same order

The pack is derived data: anything wrong with it (short, foreign, over the limits) raises
``UnitsError`` and the caller reads the app again (``engine.analyze.read_content``).
The facts unit is the app's ``android`` yara facts as JSON (``AppContent.facts``), so a hunt
of yara rules alone needs neither the features nor their JSON.
"""

from __future__ import annotations

import json
import struct
from typing import IO, Any

from engine.apk.archive import Limits
from engine.errors import EngineError
from engine.features import AppContent

__all__ = ["UnitsError", "read_units", "write_units"]

MAGIC = b"APKUNIT1"
_HEAD = struct.Struct("<8s32sH")
_UNIT = struct.Struct("<BHQ")
_MANIFEST, _DEX, _FACTS = 1, 2, 3
_MAX_FACTS = 1 << 20
_MAX_UNITS = 4096  # 64 XAPK parts of many DEX each, with room to spare
_MAX_NAME = 1024


class UnitsError(EngineError):
    """A unit pack that cannot be used (the app's own bytes must be read instead)."""


def write_units(fh: IO[bytes], owner: bytes, content: AppContent) -> int:
    """Write ``content``'s manifest and DEX as a pack for ``owner``; the bytes written."""
    if len(owner) != 32:
        raise ValueError("the owner key is 32 bytes")
    units: list[tuple[int, bytes, bytes]] = []
    if content.manifest:
        units.append((_MANIFEST, b"AndroidManifest.xml", content.manifest))
    units += [(_DEX, name.encode("utf-8", "surrogatepass"), data) for name, data in content.dex]
    if content.facts is not None:
        units.append((_FACTS, b"facts", json.dumps(content.facts, separators=(",", ":")).encode()))
    if len(units) > _MAX_UNITS:
        raise UnitsError(f"{len(units)} units, over the {_MAX_UNITS} limit")
    out = [_HEAD.pack(MAGIC, owner, len(units))]
    for kind, name, data in units:
        out.append(_UNIT.pack(kind, len(name[:_MAX_NAME]), len(data)) + name[:_MAX_NAME])
    written = 0
    for part in (*out, *(data for _, _, data in units)):
        fh.write(part)
        written += len(part)
    return written


def read_units(fh: IO[bytes], owner: bytes, path: str, limits: Limits) -> AppContent:
    """The ``AppContent`` of the app at ``path`` from its pack ``fh``, written for ``owner``.

    Checks what a damaged or foreign pack would get wrong (magic, owner, counts, names,
    lengths against ``limits``, nothing missing, nothing left over) and raises UnitsError.
    """
    head = fh.read(_HEAD.size)
    if len(head) != _HEAD.size:
        raise UnitsError("the unit pack is truncated")
    magic, stored_owner, count = _HEAD.unpack(head)
    if magic != MAGIC:
        raise UnitsError("not a unit pack")
    if stored_owner != owner:
        raise UnitsError("the unit pack belongs to another file")
    if count > _MAX_UNITS:
        raise UnitsError(f"the unit pack claims {count} units")
    table: list[tuple[int, str, int]] = []
    total = 0
    for _ in range(count):
        raw = fh.read(_UNIT.size)
        if len(raw) != _UNIT.size:
            raise UnitsError("the unit pack is truncated")
        kind, name_len, size = _UNIT.unpack(raw)
        raw_name = fh.read(name_len)
        if len(raw_name) != name_len:
            raise UnitsError("the unit pack is truncated")
        limit = {_MANIFEST: limits.max_manifest_size, _DEX: limits.max_dex_size}.get(
            kind, _MAX_FACTS
        )
        if kind not in (_MANIFEST, _DEX, _FACTS) or size > limit:
            raise UnitsError("the unit pack has an unknown or oversized unit")
        total += size
        if total > limits.max_read_total:
            raise UnitsError("the unit pack is over the read limit")
        # names are only shown in evidence: odd bytes never make a pack unusable
        table.append((kind, raw_name.decode("utf-8", "replace"), size))
    manifest = b""
    dex: list[tuple[str, bytes]] = []
    facts: dict[str, Any] | None = None
    for kind, name, size in table:
        data = fh.read(size)
        if len(data) != size:
            raise UnitsError("the unit pack is truncated")
        if kind == _MANIFEST:
            manifest = data
        elif kind == _DEX:
            dex.append((name, data))
        else:
            facts = _facts(data)
    if fh.read(1):
        raise UnitsError("the unit pack has trailing bytes")
    return AppContent(path=path, manifest=manifest, dex=tuple(dex), facts=facts)


def _facts(data: bytes) -> dict[str, Any]:
    try:
        facts = json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise UnitsError("the unit pack's facts are not JSON") from exc
    if not isinstance(facts, dict):
        raise UnitsError("the unit pack's facts are not an object")
    return facts
