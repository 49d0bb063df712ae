"""Small binary tools shared by every packed format here: LEB128 varints and atomic writes.

``engine.codec`` (bundles and deltas), ``releases.pins`` (a release's pins) and the update
repository (``releases.tuf_repo``) all use these; one implementation, so a bound check fixed
once is fixed everywhere.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def put_varint(out: bytearray, value: int, error: type[Exception] = ValueError) -> None:
    """Append ``value`` (unsigned) as a LEB128 varint."""
    if value < 0:
        raise error(f"negative integer {value} cannot be encoded")
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def put_varints(out: bytearray, values: list[int], error: type[Exception] = ValueError) -> None:
    # columns are mostly one-byte values (id steps, revisions, class indexes): copy those
    # in one go and fall back to the loop only when needed
    if not values or (min(values) >= 0 and max(values) < 0x80):
        out += bytes(values)
        return
    for value in values:
        put_varint(out, value, error)


class Reader:
    """Reads varints and byte runs from ``buf``; malformed input raises ``error`` (a
    ValueError subclass of the caller's choosing), never IndexError."""

    __slots__ = ("buf", "error", "pos")

    def __init__(self, buf: bytes, error: type[Exception] = ValueError) -> None:
        self.buf = buf
        self.pos = 0
        self.error = error

    def varint(self) -> int:
        buf = self.buf
        pos = self.pos
        result = 0
        shift = 0
        while True:
            if pos >= len(buf):
                raise self.error("truncated input (varint)")
            byte = buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
            if shift > 63:
                raise self.error("varint too long")
        self.pos = pos
        return result

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.buf):
            raise self.error("truncated input")
        chunk = self.buf[self.pos : end]
        self.pos = end
        return chunk

    def count(self, min_bytes_each: int) -> int:
        """A count of items that each need at least ``min_bytes_each`` more bytes of input."""
        n = self.varint()
        if n * min_bytes_each > len(self.buf) - self.pos:
            raise self.error("count larger than the input can hold")
        return n

    def varints(self, n: int) -> list[int]:
        return [self.varint() for _ in range(n)]


def write_atomic(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Temp file in the same directory, fsync, rename, fsync of the directory: a reader sees
    the old file or the new one, never a part. ``mode`` (e.g. 0o644 for files a static
    server running as another user serves) is set before the rename; else the temp file's
    0o600 stays."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
