"""A release's pins: the sorted (signature id, revision number, noisy) triples, packed small.

Layout (before zstd): ``n`` then three columns of unsigned LEB128 varints — signature id
steps (first from 0), revision numbers, noisy flags. Column order puts like with like; a million
pins pack to a few megabytes and unpack in about a second. Diffs between two releases are
set operations on these tuples, so comparing releases never touches the signature tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import zstandard

from engine.binary import Reader, put_varint

Pin = tuple[int, int, bool]  # signature id, revision number (not the row id), noisy


def pack(pins: Iterable[Pin]) -> bytes:
    ordered = sorted(pins)
    out = bytearray()
    put_varint(out, len(ordered))
    previous = 0
    for sig_id, _, _ in ordered:
        if sig_id <= previous and previous:
            raise ValueError(f"signature {sig_id} pinned twice")
        put_varint(out, sig_id - previous)
        previous = sig_id
    for _, number, _ in ordered:
        put_varint(out, number)
    out += bytes(1 if noisy else 0 for _, _, noisy in ordered)
    return zstandard.ZstdCompressor(level=3).compress(bytes(out))


def unpack(blob: bytes) -> list[Pin]:
    data = zstandard.ZstdDecompressor().decompress(blob, max_output_size=1 << 30)
    reader = Reader(data)
    varint = reader.varint
    n = varint()
    ids: list[int] = []
    current = 0
    for _ in range(n):
        current += varint()
        ids.append(current)
    revs = [varint() for _ in range(n)]
    flags = reader.take(n)
    return [(ids[i], revs[i], flags[i] == 1) for i in range(n)]


@dataclass(frozen=True)
class PinDiff:
    added: list[Pin]
    removed: list[Pin]
    changed: list[tuple[Pin, Pin]]  # (before, after): a new revision or a noisy flip

    @property
    def upsert_ids(self) -> set[int]:
        return {p[0] for p in self.added} | {after[0] for _, after in self.changed}

    @property
    def removed_ids(self) -> list[int]:
        return sorted(p[0] for p in self.removed)

    @property
    def is_urgent(self) -> bool:
        """The kill switch: a signature leaves the release or is newly marked noisy (what a
        false positive calls for). Phones take such a release at once, with no spread."""
        return bool(self.removed) or any(after[2] and not old[2] for old, after in self.changed)


def diff(before: Sequence[Pin], after: Sequence[Pin]) -> PinDiff:
    """What changed from ``before`` to ``after``; cost is a set difference, then the change."""
    gone = set(before) - set(after)
    new = set(after) - set(before)
    gone_by_id = {p[0]: p for p in gone}
    new_by_id = {p[0]: p for p in new}
    added = sorted(p for sid, p in new_by_id.items() if sid not in gone_by_id)
    removed = sorted(p for sid, p in gone_by_id.items() if sid not in new_by_id)
    changed = sorted((gone_by_id[sid], p) for sid, p in new_by_id.items() if sid in gone_by_id)
    return PinDiff(added=added, removed=removed, changed=changed)
