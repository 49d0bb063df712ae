"""A small, fast reader for the DEX tables the engine needs: strings, types, protos, methods.

androguard parses whole DEX files (code, classes, annotations) in 0.3-1 s each; signature
matching needs only the identifier tables, which this module reads in a few milliseconds.
Every offset and count is checked against the buffer before use, so a malformed or hostile DEX
raises ``DexError`` (an ``AnalysisError``) instead of crashing, looping or allocating wildly.

Format: https://source.android.com/docs/core/runtime/dex-format
"""

from __future__ import annotations

import array
import struct
import sys
from dataclasses import dataclass

from engine.errors import AnalysisError

DEX_MAGIC_PREFIX = b"dex\n"
_HEADER = struct.Struct("<8sI20sIIIIIIIIIIIIIIIIIIII")
_ENDIAN_CONSTANT = 0x12345678


class DexError(AnalysisError):
    """The DEX file is malformed; ``message`` says where."""


def is_dex(head: bytes) -> bool:
    """True for the DEX magic ``dex\\n0NN\\0`` (versions 035 to 041 and future 0NN)."""
    return (
        len(head) >= 8
        and head[:4] == DEX_MAGIC_PREFIX
        and head[4:5] == b"0"
        and all(0x30 <= b <= 0x39 for b in head[5:7])  # two ASCII digits
        and head[7] == 0
    )


@dataclass(frozen=True, slots=True)
class DexTables:
    version: str
    strings: tuple[str, ...]
    types: tuple[str, ...]
    # (class descriptor, method name, method descriptor) of each method_id whose class has no
    # code in this DEX: framework and library API calls
    methods: tuple[tuple[str, str, str], ...]
    # classes whose code is in this DEX; the other classes in ``methods`` are external (API) calls
    defined_classes: frozenset[str] = frozenset()


def read_tables(data: bytes) -> DexTables:
    """Decode the string, type, proto and method id tables of one DEX image."""
    if not is_dex(data[:8]):
        raise DexError("not a DEX file (bad magic)")
    if len(data) < _HEADER.size:
        raise DexError("DEX header is truncated")
    (
        magic,
        _checksum,
        _sig,
        _file_size,
        header_size,
        endian_tag,
        _link_size,
        _link_off,
        _map_off,
        string_ids_size,
        string_ids_off,
        type_ids_size,
        type_ids_off,
        proto_ids_size,
        proto_ids_off,
        _field_ids_size,
        _field_ids_off,
        method_ids_size,
        method_ids_off,
        class_defs_size,
        class_defs_off,
        _data_size,
        _data_off,
    ) = _HEADER.unpack_from(data, 0)
    if endian_tag != _ENDIAN_CONSTANT:
        raise DexError(f"unsupported DEX endian tag 0x{endian_tag:08x}")
    if header_size < _HEADER.size:
        raise DexError(f"DEX header size {header_size} is too small")
    n = len(data)
    _check_table(n, "string_ids", string_ids_off, string_ids_size, 4)
    _check_table(n, "type_ids", type_ids_off, type_ids_size, 4)
    _check_table(n, "proto_ids", proto_ids_off, proto_ids_size, 12)
    _check_table(n, "method_ids", method_ids_off, method_ids_size, 8)
    _check_table(n, "class_defs", class_defs_off, class_defs_size, 32)

    strings = _read_strings(data, string_ids_off, string_ids_size)
    nstr = len(strings)

    type_idx = _array("I", data, type_ids_off, type_ids_size)
    if type_idx and max(type_idx) >= nstr:
        raise DexError("type_ids refer past the string table")
    types = tuple(map(strings.__getitem__, type_idx))
    ntypes = len(types)

    class_idx = _array("I", data, class_defs_off, class_defs_size * 8)[0::8]
    if class_defs_size and max(class_idx) >= ntypes:
        raise DexError("class_defs refer past the type table")
    defined_idx = frozenset(class_idx)

    # method_ids: (ushort class, ushort proto, uint name); array slicing runs in C
    half = _array("H", data, method_ids_off, method_ids_size * 4)
    cls_all = half[0::4]
    if method_ids_size and max(cls_all) >= ntypes:
        raise DexError("method_ids refer past the type table")
    # Only references to classes without code here are kept: those are the API calls behaviour
    # rules look for, and a large app has ten times more internal methods than API references.
    keep = [i for i, c in enumerate(cls_all) if c not in defined_idx]
    proto_all = half[1::4]
    name_all = _array("I", data, method_ids_off, method_ids_size * 2)[1::2]
    proto_raw = _array("I", data, proto_ids_off, proto_ids_size * 3)
    protos: dict[int, str] = {}
    params_cache: dict[int, str] = {0: ""}
    methods: list[tuple[str, str, str]] = []
    for i in keep:
        p_idx = proto_all[i]
        name_i = name_all[i]
        if p_idx >= proto_ids_size or name_i >= nstr:
            raise DexError(f"method {i} refers outside its tables")
        proto = protos.get(p_idx)
        if proto is None:
            ret = proto_raw[3 * p_idx + 1]
            params_off = proto_raw[3 * p_idx + 2]
            if ret >= ntypes:
                raise DexError(f"proto {p_idx} return type out of range")
            params = params_cache.get(params_off)
            if params is None:
                params = _type_list(data, params_off, types)
                params_cache[params_off] = params
            proto = protos[p_idx] = f"({params}){types[ret]}"
        methods.append((types[cls_all[i]], strings[name_i], proto))
    defined = frozenset(map(types.__getitem__, defined_idx))
    return DexTables(
        version=magic[4:7].decode("ascii"),
        strings=strings,
        types=types,
        methods=tuple(methods),
        defined_classes=defined,
    )


def _array(code: str, data: bytes, off: int, count: int) -> array.array[int]:
    arr = array.array(code)
    arr.frombytes(data[off : off + count * arr.itemsize])
    if sys.byteorder != "little":
        arr.byteswap()
    return arr


def _type_list(data: bytes, off: int, types: tuple[str, ...]) -> str:
    if off + 4 > len(data):
        raise DexError(f"parameter list at {off} lies outside the file")
    (count,) = struct.unpack_from("<I", data, off)
    if off + 4 + 2 * count > len(data):
        raise DexError(f"parameter list at {off} lies outside the file")
    idx = struct.unpack_from(f"<{count}H", data, off + 4)
    if idx and max(idx) >= len(types):
        raise DexError(f"parameter list at {off} refers past the type table")
    return "".join([types[t] for t in idx])


def _check_table(n: int, name: str, off: int, count: int, item: int) -> None:
    if count == 0:
        return
    if off <= 0 or off + count * item > n:
        raise DexError(f"{name} table ({count} items at {off}) lies outside the {n}-byte file")


def _read_strings(data: bytes, off: int, count: int) -> tuple[str, ...]:
    if count == 0:
        return ()  # an empty table's offset is not checked (``_check_table``): do not read it
    offsets = struct.unpack_from(f"<{count}I", data, off)
    n = len(data)
    find = data.find
    out: list[str] = []
    append = out.append
    # string_data_items are disjoint, so their bytes fit in the file; ids sharing or overlapping
    # their data could make a small file decode to gigabytes
    budget = n
    for so in offsets:
        if so >= n:
            raise DexError(f"string data offset {so} lies outside the file")
        # skip the ULEB128 UTF-16 length (one byte for strings under 128 chars, at most five)
        if data[so] < 0x80:
            p = so + 1
        else:
            p = so + 1
            stop = min(so + 5, n)
            while p < stop and data[p - 1] & 0x80:
                p += 1
        end = find(b"\x00", p)
        if end < 0:
            raise DexError(f"string at {so} is not NUL-terminated")
        budget -= end - p
        if budget < 0:
            raise DexError("string ids share or overlap their data (more string bytes than file)")
        raw = data[p:end]
        try:
            # fast path: ASCII and well-formed UTF-8 decode identically under MUTF-8
            append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            append(decode_mutf8(raw))
    return tuple(out)


def decode_mutf8(raw: bytes) -> str:
    """Decode Modified UTF-8 (Java's encoding): 0xC0 0x80 for NUL, surrogates as 3-byte pairs.

    Unpaired surrogates become U+FFFD so the result always encodes back to UTF-8 (JSON, DB).
    """
    raw = raw.replace(b"\xc0\x80", b"\x00")
    try:
        s = raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace")
    return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
