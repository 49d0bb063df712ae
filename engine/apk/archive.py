"""A bounded, tamper-tolerant ZIP directory reader for APKs.

Why not ``zipfile`` or apkInspector's ``ZipEntry``: ``zipfile`` refuses the evasions malware uses
(garbage between the central directory and the EOCD, corrupt extra fields, bogus compression
methods), and apkInspector's reader stops at the first misaligned central-directory record,
inflates without a size limit and keys entries by name (so duplicates vanish). This reader follows
what Android's libziparchive does (central directory sizes, local header lengths for the data
offset), resynchronises on misaligned records, records every oddity as a ``TamperFlag`` and never
decompresses more than the caller's limit or the declared size, whichever is smaller.

The compression-method fallback (unknown method: stored if sizes match, else try raw deflate, else
stored) is apkInspector's ``extract_file_based_on_header_info`` logic, reimplemented with limits.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

from engine.errors import AnalysisError
from engine.features import TamperFlag


@dataclass(frozen=True, slots=True)
class Limits:
    """Safety limits; the defaults are far above any real APK and far below a zip bomb."""

    max_file_size: int = 1 << 30  # 1 GiB on disk
    max_entries: int = 100_000
    max_entry_size: int = 512 << 20  # declared uncompressed size of one entry
    max_total_size: int = 4 << 30  # declared uncompressed size of all entries
    # deflate cannot exceed ~1032:1; real APK entries above a few MiB stay well under 100:1
    max_ratio: int = 200
    ratio_applies_above: int = 16 << 20
    max_manifest_size: int = 4 << 20
    max_dex_size: int = 256 << 20
    max_read_total: int = 1 << 30  # bytes actually decompressed over one analysis
    max_nested_apk_size: int = 512 << 20


_EOCD_SIG = b"PK\x05\x06"
_CD_SIG = b"PK\x01\x02"
_LH_SIG = b"PK\x03\x04"
_EOCD = struct.Struct("<4sHHHHIIH")
_CD = struct.Struct("<4sHHHHHHIIIHHHHHII")
_LH = struct.Struct("<4sHHHHHIIIHH")
_ZIP64_EXTRA = 0x0001
_TRAVERSAL = re.compile(r"(^|[/\\])\.\.([/\\]|$)")
_DRIVE = re.compile(r"^[A-Za-z]:")
# peeks (``Archive.peek``) inflate from a prefix this long when they want at most _PEEK_OUTPUT
_PEEK_INPUT = 4096
_PEEK_OUTPUT = 64


@dataclass(slots=True)
class Entry:
    name: str
    raw_name: bytes
    method: int
    flags: int
    crc: int
    compressed_size: int
    size: int
    local_offset: int
    extra: bytes
    data_offset: int = -1  # set once the local header has been checked; -1 means unreadable

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")


@dataclass(slots=True)
class Archive:
    fh: BinaryIO
    file_size: int
    limits: Limits
    entries: list[Entry] = field(default_factory=list)
    by_name: dict[str, Entry] = field(default_factory=dict)
    tamper: list[TamperFlag] = field(default_factory=list)
    cd_offset: int = 0
    eocd_offset: int = 0
    bytes_read: int = 0

    def flag(self, code: str, detail: str) -> None:
        if not any(f.code == code and f.detail == detail for f in self.tamper):
            self.tamper.append(TamperFlag(code, detail))

    def get(self, name: str) -> Entry | None:
        return self.by_name.get(name)

    def read(self, entry: Entry, limit: int) -> bytes:
        """Return the entry's bytes; AnalysisError if it is larger than ``limit``."""
        if entry.size > limit:
            raise AnalysisError(
                f"{entry.name!r} declares {entry.size} bytes, over the {limit}-byte limit"
            )
        data = self._extract(entry, min(limit, entry.size), exact=True)
        return data

    def peek(self, entry: Entry, n: int) -> bytes:
        """The first ``n`` bytes of the entry, decompressing no more than needed."""
        if entry.data_offset < 0 or entry.size == 0:
            return b""
        try:
            return self._extract(entry, min(n, entry.size), exact=False)
        except AnalysisError:
            return b""

    def _extract(self, entry: Entry, limit: int, *, exact: bool) -> bytes:
        if entry.data_offset < 0:
            raise AnalysisError(f"{entry.name!r} has no readable local header")
        csize = entry.compressed_size
        if entry.data_offset + csize > self.file_size:
            csize = max(0, self.file_size - entry.data_offset)
        method = entry.method
        if method == 0 or (method != 8 and entry.compressed_size == entry.size):
            data = self._read_raw(entry.data_offset, min(limit, csize))
        elif method == 8:
            data = self._inflate(entry, csize, limit)
        else:
            try:
                data = self._inflate(entry, csize, limit)
            except (zlib.error, AnalysisError):
                data = self._read_raw(entry.data_offset, min(limit, csize))
        if exact and len(data) < entry.size and method in (0, 8):
            # Android refuses a short entry too; keep what is there and say so.
            self.flag("zip.truncated_entry", f"{entry.name!r}: {len(data)} of {entry.size} bytes")
        return data

    def _read_raw(self, offset: int, n: int) -> bytes:
        self._charge(n)
        self.fh.seek(offset)
        return self.fh.read(n)

    def _charge(self, n: int) -> None:
        self.bytes_read += n
        if self.bytes_read > self.limits.max_read_total:
            raise AnalysisError(
                "refused: reading this archive would decompress more than "
                f"{self.limits.max_read_total} bytes (possible zip bomb)"
            )

    def _inflate(self, entry: Entry, csize: int, limit: int) -> bytes:
        try:
            return self._inflate_stream(entry, csize, limit)
        except zlib.error as exc:
            raise AnalysisError(f"{entry.name!r} is not valid deflate data: {exc}") from exc

    def _inflate_stream(self, entry: Entry, csize: int, limit: int) -> bytes:
        # One C call: max_length bounds the output whatever the ratio, so a bomb costs at most
        # ``limit`` bytes (which never exceeds the declared size, itself checked against limits).
        self.fh.seek(entry.data_offset)
        if limit < entry.size and limit <= _PEEK_OUTPUT and csize > _PEEK_INPUT:
            # a peek (is this entry a DEX?): a few bytes out need a few hundred bytes in, so
            # read a prefix, not the whole entry; a stream that gives less falls through
            d = zlib.decompressobj(-15)
            out = d.decompress(self.fh.read(_PEEK_INPUT), limit)
            if len(out) == limit or d.eof:
                self._charge(len(out))
                return out
            self.fh.seek(entry.data_offset)
        compressed = self.fh.read(csize)
        d = zlib.decompressobj(-15)
        out = d.decompress(compressed, limit) if limit > 0 else b""
        self._charge(len(out))
        if limit >= entry.size and not d.eof and len(out) == entry.size and d.unconsumed_tail:
            self.flag(
                "zip.size_mismatch",
                f"{entry.name!r} inflates to more than its declared {entry.size} bytes",
            )
        return out


def open_archive(fh: BinaryIO, file_size: int, limits: Limits) -> Archive:
    """Parse the EOCD, central directory and local headers; AnalysisError if it is no ZIP."""
    if file_size > limits.max_file_size:
        raise AnalysisError(
            f"file is {file_size} bytes, over the {limits.max_file_size}-byte limit"
        )
    if file_size < _EOCD.size:
        raise AnalysisError("not a ZIP/APK file: too short to hold a ZIP directory")
    tail_len = min(file_size, _EOCD.size + 0xFFFF)
    fh.seek(file_size - tail_len)
    tail = fh.read(tail_len)
    pos = tail.rfind(_EOCD_SIG)
    # Prefer the last EOCD whose comment ends exactly at the end of the file, as Android does.
    best = -1
    while pos >= 0:
        if pos + _EOCD.size <= len(tail):
            comment_len = struct.unpack_from("<H", tail, pos + 20)[0]
            if pos + _EOCD.size + comment_len == len(tail):
                best = pos
                break
            if best < 0:
                best = pos
        pos = tail.rfind(_EOCD_SIG, 0, pos)
    if best < 0:
        raise AnalysisError("not a ZIP/APK file: no end-of-central-directory record")
    arc = Archive(fh=fh, file_size=file_size, limits=limits)
    arc.eocd_offset = file_size - tail_len + best
    (_, _, _, _, total, cd_size, cd_offset, _) = _EOCD.unpack_from(tail, best)
    if total == 0xFFFF or cd_offset == 0xFFFFFFFF:
        raise AnalysisError("ZIP64 archives are not supported for APKs")
    if cd_offset + cd_size > arc.eocd_offset or cd_offset > file_size:
        raise AnalysisError("not a valid ZIP/APK file: central directory lies outside the file")
    arc.cd_offset = cd_offset
    if cd_offset + cd_size < arc.eocd_offset:
        arc.flag(
            "zip.data_after_central_directory",
            f"{arc.eocd_offset - cd_offset - cd_size} bytes between central directory and EOCD",
        )
    if total > limits.max_entries:
        raise AnalysisError(
            f"archive declares {total} entries, over the {limits.max_entries} limit"
        )
    fh.seek(cd_offset)
    cd = fh.read(arc.eocd_offset - cd_offset)
    _parse_central_directory(arc, cd, total)
    _check_sizes(arc)
    for entry in arc.entries:
        _check_local_header(arc, entry)
    return arc


def _parse_central_directory(arc: Archive, cd: bytes, total: int) -> None:
    pos = 0
    while len(arc.entries) < total and pos + _CD.size <= len(cd):
        if cd[pos : pos + 4] != _CD_SIG:
            nxt = cd.find(_CD_SIG, pos + 1)
            if nxt < 0:
                break
            arc.flag("zip.misaligned_central_directory", f"{nxt - pos} stray bytes at CD+{pos}")
            pos = nxt
            continue
        (_, _, _, flags, method, _, _, crc, csize, usize, nlen, xlen, clen, _, _, _, lofs) = (
            _CD.unpack_from(cd, pos)
        )
        raw_name = cd[pos + _CD.size : pos + _CD.size + nlen]
        extra = cd[pos + _CD.size + nlen : pos + _CD.size + nlen + xlen]
        pos += _CD.size + nlen + xlen + clen
        name = raw_name.decode("utf-8", "replace")
        if usize == 0xFFFFFFFF or csize == 0xFFFFFFFF or lofs == 0xFFFFFFFF:
            usize, csize, lofs = _zip64_sizes(extra, usize, csize, lofs)
        entry = Entry(name, raw_name, method, flags, crc, csize, usize, lofs, extra)
        arc.entries.append(entry)
        _check_name(arc, entry)
        if not _extra_well_formed(extra):
            arc.flag("zip.corrupt_extra_field", f"{name!r}: extra field is not well-formed")
        if method not in (0, 8):
            arc.flag("zip.bogus_compression", f"{name!r}: compression method {method}")
        if name in arc.by_name:
            arc.flag("zip.duplicate_entry", f"{name!r} appears more than once")
        else:
            arc.by_name[name] = entry
    if len(arc.entries) < total:
        arc.flag(
            "zip.truncated_central_directory",
            f"EOCD declares {total} entries, {len(arc.entries)} found",
        )


def _zip64_sizes(extra: bytes, usize: int, csize: int, lofs: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        hid, hlen = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + hlen]
        if hid == _ZIP64_EXTRA:
            vals = [struct.unpack_from("<Q", body, i)[0] for i in range(0, len(body) - 7, 8)]
            if usize == 0xFFFFFFFF and vals:
                usize = vals.pop(0)
            if csize == 0xFFFFFFFF and vals:
                csize = vals.pop(0)
            if lofs == 0xFFFFFFFF and vals:
                lofs = vals.pop(0)
            break
        pos += 4 + hlen
    return usize, csize, lofs


def _extra_well_formed(extra: bytes) -> bool:
    pos = 0
    while pos < len(extra):
        if pos + 4 > len(extra):
            # zipalign pads with a few zero bytes; only non-zero leftovers are tampering
            return not any(extra[pos:])
        (hlen,) = struct.unpack_from("<H", extra, pos + 2)
        pos += 4 + hlen
    return pos == len(extra)


def _check_name(arc: Archive, entry: Entry) -> None:
    if b"\x00" in entry.raw_name:
        arc.flag("zip.nul_in_name", f"entry name contains a NUL byte: {entry.name!r}")
    name = entry.name
    if (
        name.startswith(("/", "\\"))
        or _DRIVE.match(name)
        or (".." in name and _TRAVERSAL.search(name))
    ):
        arc.flag("zip.path_traversal", f"entry name escapes the archive: {name!r}")


def _check_sizes(arc: Archive) -> None:
    lim = arc.limits
    total = 0
    for e in arc.entries:
        total += e.size
        if e.size > lim.max_entry_size:
            raise AnalysisError(
                f"refused as a possible zip bomb: {e.name!r} declares {e.size} bytes "
                f"uncompressed (limit {lim.max_entry_size})"
            )
        if (
            e.method != 0
            and e.size > lim.ratio_applies_above
            and e.size > lim.max_ratio * max(e.compressed_size, 1)
        ):
            raise AnalysisError(
                f"refused as a possible zip bomb: {e.name!r} expands {e.compressed_size} bytes "
                f"to {e.size} (ratio over {lim.max_ratio}:1)"
            )
    if total > lim.max_total_size:
        raise AnalysisError(
            f"refused as a possible zip bomb: entries declare {total} bytes uncompressed "
            f"(limit {lim.max_total_size})"
        )


def _check_local_header(arc: Archive, entry: Entry) -> None:
    if entry.local_offset + _LH.size > arc.cd_offset:
        arc.flag("zip.bad_local_header", f"{entry.name!r}: local header outside the data area")
        return
    arc.fh.seek(entry.local_offset)
    head = arc.fh.read(_LH.size)
    (sig, _, flags, method, _, _, crc, csize, usize, nlen, xlen) = _LH.unpack(head)
    if sig != _LH_SIG:
        arc.flag("zip.bad_local_header", f"{entry.name!r}: no local header signature")
        return
    raw_name = arc.fh.read(nlen)
    entry.data_offset = entry.local_offset + _LH.size + nlen + xlen
    diffs = []
    if raw_name != entry.raw_name:
        diffs.append("name")
    if method != entry.method:
        diffs.append(f"compression method {method} vs {entry.method}")
    sizes_in_local = not flags & 0x08 and csize and usize and csize != 0xFFFFFFFF
    if sizes_in_local and (csize, usize, crc) != (entry.compressed_size, entry.size, entry.crc):
        diffs.append("sizes/CRC")
    if diffs:
        arc.flag("zip.local_central_mismatch", f"{entry.name!r}: " + ", ".join(diffs))
