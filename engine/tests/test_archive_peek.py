"""``Archive.peek`` inflates from a prefix of a large entry; it must give what a full read gives."""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib

from engine.apk.archive import Limits, open_archive

_DEX = b"dex\n035\x00" + os.urandom(64 << 10)  # incompressible: far over the peek prefix
_EMPTY_STORED_BLOCK = b"\x00\x00\x00\xff\xff"  # BFINAL=0, stored, LEN=0, NLEN=0xffff


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _replace_stream(archive: bytes, name: str, stream: bytes) -> bytes:
    """Put ``stream`` (raw deflate) in place of entry ``name``'s data, sizes fixed up."""
    arc = open_archive(io.BytesIO(archive), len(archive), Limits())
    entry = arc.get(name)
    assert entry is not None
    assert entry is arc.entries[-1]  # the last entry: nothing after it moves
    head, tail = archive[: entry.data_offset], archive[arc.cd_offset :]
    out = bytearray(head + stream + tail)
    delta = len(stream) - entry.compressed_size
    struct.pack_into("<I", out, entry.local_offset + 18, len(stream))
    cd = entry.data_offset + len(stream)
    pos = cd + out[cd:].find(b"PK\x01\x02")
    while out[pos : pos + 4] == b"PK\x01\x02":
        nlen, xlen, clen = struct.unpack_from("<HHH", out, pos + 28)
        if bytes(out[pos + 46 : pos + 46 + nlen]) == name.encode():
            struct.pack_into("<I", out, pos + 20, len(stream))
        pos += 46 + nlen + xlen + clen
    eocd = out.rfind(b"PK\x05\x06")
    (cd_offset,) = struct.unpack_from("<I", out, eocd + 16)
    struct.pack_into("<I", out, eocd + 16, cd_offset + delta)
    return bytes(out)


def _peek_and_read(data: bytes, name: str) -> tuple[bytes, bytes]:
    arc = open_archive(io.BytesIO(data), len(data), Limits())
    entry = arc.get(name)
    assert entry is not None
    return arc.peek(entry, 8), arc.read(entry, Limits().max_dex_size)


def test_peek_of_a_large_deflated_entry_gives_its_first_bytes() -> None:
    data = _zip({"AndroidManifest.xml": b"x", "assets/payload.bin": _DEX})
    peeked, full = _peek_and_read(data, "assets/payload.bin")
    assert full == _DEX
    assert peeked == _DEX[:8]


def test_peek_falls_back_to_the_whole_entry_when_the_prefix_gives_nothing() -> None:
    # a legal deflate stream whose first 4 KiB are empty stored blocks: the prefix inflates
    # to nothing, so the peek must read on (a hidden DEX must not hide behind padding)
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    stream = _EMPTY_STORED_BLOCK * 2000 + c.compress(_DEX) + c.flush()
    data = _replace_stream(
        _zip({"AndroidManifest.xml": b"x", "assets/payload.bin": _DEX}),
        "assets/payload.bin",
        stream,
    )
    peeked, full = _peek_and_read(data, "assets/payload.bin")
    assert full == _DEX
    assert peeked == _DEX[:8]
