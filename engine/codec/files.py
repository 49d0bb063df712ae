"""Release files: a fixed header, then one zstd frame of a canonical encoding.

Files (``build_full``/``build_delta``) are a fixed big-endian header (with a CRC-32 of its
fields) followed by one zstd frame (fixed level, content size and checksum written, no
dictionary, no timestamps) of a canonical encoding (``engine.codec.records``): the whole
state for a full bundle, the upserted records for a delta (``engine.codec.deltas``).

This module holds the container: both headers, compression with its size bounds, full
bundles, and a state's persistence as a full bundle (``save_state``/``load_state``).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import zstandard

from engine.binary import write_atomic
from engine.codec.records import (
    FORMAT_VERSION,
    CodecError,
    decode_state_forms,
    encode_state,
)
from engine.codec.state import State
from engine.features import RuleRecord

# the engine a format-1 file needs; a future format bumps both
FORMAT_MIN_ENGINE: Final = 1
ZSTD_LEVEL: Final = 10
# 1,000,000 hash records encode to about 37 MB; leave room for growth and big yara bodies
MAX_STATE_BYTES: Final = 512 * 1024 * 1024

FULL_MAGIC: Final = b"MTPF"
DELTA_MAGIC: Final = b"MTPD"

# magic, format, min_engine, release, state sha256, payload (uncompressed) length
FULL_HEADER = struct.Struct(">4sHIQ32sQ")
# magic, format, min_engine, base release, release, base sha256, state sha256, payload length
DELTA_HEADER = struct.Struct(">4sHIQQ32s32sQ")
# Each header ends with a CRC-32 of the fields before it. The zstd checksum and the state hash
# cover the payload; the CRC catches a flipped bit in the release number of a stored database
# (which would otherwise make a client refuse every update as a "downgrade"). Tampering is
# TUF's to catch, not the CRC's.
HEADER_CRC = struct.Struct(">I")


def compress(payload: bytes) -> bytes:
    cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True, write_checksum=True)
    return cctx.compress(payload)


def decompress(frame: bytes, expected: int, max_size: int) -> bytes:
    if expected > max_size:
        raise CodecError(f"declared size {expected} exceeds the limit of {max_size} bytes")
    try:
        declared = zstandard.frame_content_size(frame)
    except zstandard.ZstdError as exc:
        raise CodecError(f"not a zstd frame: {exc}") from exc
    # the header's length is checked against the frame's own, so neither can lie about size
    if declared != expected:
        raise CodecError("compressed payload size does not match the header")
    try:
        # a decompressobj reports what follows the frame, so trailing bytes are caught
        dobj = zstandard.ZstdDecompressor().decompressobj()
        payload = dobj.decompress(frame)
    except zstandard.ZstdError as exc:
        raise CodecError(f"corrupt compressed payload: {exc}") from exc
    if not dobj.eof:
        raise CodecError("truncated compressed payload")
    if dobj.unused_data:
        raise CodecError("trailing bytes after the compressed payload")
    if len(payload) != expected:
        raise CodecError("decompressed size does not match the header")
    return payload


def build_full(release: int, records: Iterable[RuleRecord]) -> bytes:
    """A compressed full bundle of ``records`` as release ``release``."""
    canonical = encode_state(records)
    return full_file(release, canonical)


def full_file(release: int, canonical: bytes) -> bytes:
    header = FULL_HEADER.pack(
        FULL_MAGIC,
        FORMAT_VERSION,
        FORMAT_MIN_ENGINE,
        release,
        hashlib.sha256(canonical).digest(),
        len(canonical),
    )
    return header + HEADER_CRC.pack(zlib.crc32(header)) + compress(canonical)


@dataclass(frozen=True, slots=True)
class FullHeader:
    release: int
    state_sha256: str
    min_engine: int
    payload_size: int


@dataclass(frozen=True, slots=True)
class DeltaHeader:
    base_release: int
    release: int
    base_sha256: str
    state_sha256: str
    min_engine: int
    payload_size: int


def check_format(fmt: int, min_engine: int, engine_version: int) -> None:
    if fmt != FORMAT_VERSION:
        raise CodecError(f"file format {fmt} is not supported (this engine reads {FORMAT_VERSION})")
    if min_engine > engine_version:
        raise CodecError(f"the file needs engine {min_engine}, this is engine {engine_version}")


def check_crc(data: bytes, size: int) -> None:
    (crc,) = HEADER_CRC.unpack_from(data, size)
    if zlib.crc32(data[:size]) != crc:
        raise CodecError("damaged header (CRC mismatch)")


def read_full_header(data: bytes) -> FullHeader:
    if len(data) < FULL_HEADER.size + HEADER_CRC.size:
        raise CodecError("truncated full bundle header")
    magic, fmt, min_engine, release, digest, size = FULL_HEADER.unpack_from(data)
    if magic != FULL_MAGIC:
        raise CodecError("not a full bundle (bad magic)")
    check_crc(data, FULL_HEADER.size)
    check_format(fmt, 0, 0)
    return FullHeader(release, digest.hex(), min_engine, size)


def read_delta_header(data: bytes) -> DeltaHeader:
    if len(data) < DELTA_HEADER.size + HEADER_CRC.size:
        raise CodecError("truncated delta header")
    magic, fmt, min_engine, base, release, base_digest, digest, size = DELTA_HEADER.unpack_from(
        data
    )
    if magic != DELTA_MAGIC:
        raise CodecError("not a delta (bad magic)")
    check_crc(data, DELTA_HEADER.size)
    check_format(fmt, 0, 0)
    return DeltaHeader(base, release, base_digest.hex(), digest.hex(), min_engine, size)


def apply_full(data: bytes, engine_version: int, *, max_size: int = MAX_STATE_BYTES) -> State:
    """The state a full bundle describes, after checking its embedded state hash."""
    header = read_full_header(data)
    check_format(FORMAT_VERSION, header.min_engine, engine_version)
    canonical = decompress(
        data[FULL_HEADER.size + HEADER_CRC.size :], header.payload_size, max_size
    )
    if hashlib.sha256(canonical).hexdigest() != header.state_sha256:
        raise CodecError("state hash mismatch: the bundle does not hold the state it names")
    # the bytes hash to what the header names; decoding also proves they are canonical
    records, forms = decode_state_forms(canonical)
    return State.from_canonical(
        release=header.release,
        records=records,
        canonical=canonical,
        forms=forms,
        engine_version=engine_version,
    )


# --- persistence ---------------------------------------------------------------------------


def state_file_bytes(state: State) -> bytes:
    """A state as a full bundle: what ``save_state`` writes and ``apply_full`` reads back."""
    return full_file(state.release, state.canonical)


def save_state(state: State, path: Path) -> None:
    """Write ``state`` to ``path`` atomically: a reader sees the old file or the new one."""
    write_atomic(path, state_file_bytes(state))


def load_state(path: Path, engine_version: int, *, max_size: int = MAX_STATE_BYTES) -> State:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CodecError(f"cannot read {path}: {exc}") from exc
    return apply_full(data, engine_version, max_size=max_size)
