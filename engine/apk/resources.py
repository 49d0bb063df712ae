"""Resolve one string resource (the app label) from resources.arsc.

androguard's ``ARSCParser`` decodes the whole table (50-120 ms on the corpus's larger apps) to
answer one lookup; this walks the chunk headers to the one entry and decodes one string, in well
under a millisecond. Any structural problem yields ``None`` (the caller keeps the raw reference).
Format: frameworks/base/libs/androidfw/include/androidfw/ResourceTypes.h
"""

from __future__ import annotations

import struct

_RES_STRING_POOL = 0x0001
_RES_TABLE = 0x0002
_RES_TABLE_PACKAGE = 0x0200
_RES_TABLE_TYPE = 0x0201
_TYPE_REFERENCE = 0x01
_TYPE_STRING = 0x03
_FLAG_COMPLEX = 0x0001
_FLAG_COMPACT = 0x0008
_TYPE_FLAG_SPARSE = 0x01
_TYPE_FLAG_OFFSET16 = 0x02
_NO_ENTRY = 0xFFFFFFFF


def resolve_string(arsc: bytes, res_id: int, max_hops: int = 5) -> str | None:
    """The string value of ``res_id``, preferring the default configuration."""
    try:
        for _ in range(max_hops):
            found = _lookup(arsc, res_id)
            if found is None:
                return None
            dtype, data = found
            if dtype == _TYPE_STRING:
                return _pool_string(arsc, 12, data)
            if dtype != _TYPE_REFERENCE:
                return None
            res_id = data
    except (struct.error, IndexError, UnicodeDecodeError, ValueError):
        return None
    return None


def _chunk(data: bytes, off: int) -> tuple[int, int, int]:
    ctype, hsize, size = struct.unpack_from("<HHI", data, off)
    if size < 8 or hsize > size or off + size > len(data):
        raise ValueError("bad chunk")
    return ctype, hsize, size


def _lookup(arsc: bytes, res_id: int) -> tuple[int, int] | None:
    pkg_id, type_id, entry_idx = res_id >> 24, (res_id >> 16) & 0xFF, res_id & 0xFFFF
    ctype, hsize, _ = _chunk(arsc, 0)
    if ctype != _RES_TABLE:
        return None
    off = hsize
    fallback: tuple[int, int] | None = None
    while off + 8 <= len(arsc):
        ctype, chsize, csize = _chunk(arsc, off)
        if ctype == _RES_TABLE_PACKAGE and struct.unpack_from("<I", arsc, off + 8)[0] == pkg_id:
            sub = off + chsize
            end = off + csize
            while sub + 8 <= end:
                stype, shsize, ssize = _chunk(arsc, sub)
                if stype == _RES_TABLE_TYPE and arsc[sub + 8] == type_id:
                    value = _type_entry(arsc, sub, shsize, entry_idx)
                    if value is not None:
                        cfg_size = struct.unpack_from("<I", arsc, sub + 20)[0]
                        config = arsc[sub + 24 : sub + 20 + cfg_size]
                        if not any(config):
                            return value  # the default configuration
                        fallback = fallback or value
                sub += ssize
        off += csize
    return fallback


def _type_entry(arsc: bytes, off: int, hsize: int, idx: int) -> tuple[int, int] | None:
    flags = arsc[off + 9]
    count, entries_start = struct.unpack_from("<II", arsc, off + 12)
    offsets = off + hsize
    if flags & _TYPE_FLAG_SPARSE:
        for i in range(count):
            e_idx, e_off = struct.unpack_from("<HH", arsc, offsets + 4 * i)
            if e_idx == idx:
                return _entry_value(arsc, off + entries_start + 4 * e_off)
        return None
    if idx >= count:
        return None
    if flags & _TYPE_FLAG_OFFSET16:
        (rel16,) = struct.unpack_from("<H", arsc, offsets + 2 * idx)
        if rel16 == 0xFFFF:
            return None
        rel = rel16 * 4
    else:
        rel = struct.unpack_from("<I", arsc, offsets + 4 * idx)[0]
        if rel == _NO_ENTRY:
            return None
    return _entry_value(arsc, off + entries_start + rel)


def _entry_value(arsc: bytes, off: int) -> tuple[int, int] | None:
    size, flags = struct.unpack_from("<HH", arsc, off)
    if flags & _FLAG_COMPACT:
        # compact entry: uint16 key, uint16 flags (type in the high byte), uint32 data
        return flags >> 8, struct.unpack_from("<I", arsc, off + 4)[0]
    if flags & _FLAG_COMPLEX:
        return None
    _vsize, _res0, dtype, data = struct.unpack_from("<HBBI", arsc, off + size)
    return dtype, data


def _pool_string(data: bytes, off: int, idx: int) -> str | None:
    ctype, hsize, _size = _chunk(data, off)
    if ctype != _RES_STRING_POOL:
        return None
    count, _styles, flags, strings_start, _ = struct.unpack_from("<IIIII", data, off + 8)
    if idx >= count:
        return None
    (rel,) = struct.unpack_from("<I", data, off + hsize + 4 * idx)
    p = off + strings_start + rel
    if flags & 0x100:  # UTF-8: char count then byte count, each 1 or 2 bytes
        p += 2 if data[p] & 0x80 else 1
        n = data[p]
        if n & 0x80:
            n = ((n & 0x7F) << 8) | data[p + 1]
            p += 1
        p += 1
        return data[p : p + n].decode("utf-8", "replace")
    (n,) = struct.unpack_from("<H", data, p)
    p += 2
    if n & 0x8000:
        n = ((n & 0x7FFF) << 16) | struct.unpack_from("<H", data, p)[0]
        p += 2
    return data[p : p + 2 * n].decode("utf-16-le", "replace")
