"""The release codec: a canonical encoding of a signature database, full bundles and deltas.

A *state* is the set of ``RuleRecord`` values a release ships (at most one revision per
signature id). Its canonical encoding (``encode_state``) is a pure function of that set, so
``state_sha256`` — the SHA-256 of the canonical, *uncompressed* encoding — names a state
independently of how it was shipped or compressed. Clients check it after every update.

Canonical encoding, format 1 (all integers are unsigned LEB128 varints unless stated)::

    b"MTPS" u8(format)
    classes:  n, then n x (len, canonical JSON of
              [category, family, severity, noisy, min_engine, digest_key, digest_hex_len, template])
    hash section (sorted by id):
              n, id deltas (first from 0) x n, revisions x n, class indexes x n, raw digests
    generic section (sorted by id):
              n, then n x (len, canonical JSON of the whole record)

Why this shape: hash signatures are the millions; their digest is 32 random bytes that no
compressor shrinks, so everything else about them must cost next to nothing. A hash record
goes to the compact section when its name is exactly ``Andr.<Category>.<Family>-<id>-<rev>``
(so the name is rebuilt, not stored) and its body is a dict of strings with exactly one
lowercase-hex value of 32 or more digits (the digest, stored raw). Everything else about it
(category, family, severity, noisy, min_engine, the body's other keys such as ``algorithm``
and ``target``) is one entry of a small *class* dictionary, referenced by index. Columns
(ids, then revisions, then classes) put like with like so zstd does well on them. Classes
are sorted by their JSON bytes, so their indexes are canonical too. Anything that does not
fit (another kind, an odd name, an uppercase digest) goes to the generic section as
canonical JSON (``sort_keys``, ``separators=(",", ":")``, UTF-8), losslessly. Either way ids
are unique across sections.

Files (``build_full``/``build_delta``) are a fixed big-endian header (with a CRC-32 of its
fields) followed by one zstd frame (fixed level, content size and checksum written, no
dictionary, no timestamps) of a canonical encoding: the whole state for a full bundle, the
upserted records for a delta. A delta also lists removed ids and names the state hashes
before and after, so a client can tell it has the right base before touching anything.

Engine versions. Every record carries ``min_engine``; a file header carries the engine the
*file format* needs. A client whose engine is older than the header refuses the file. A
client that can read the file but not run some records keeps them in ``State.skipped``: they
are not compiled, yet they stay in the state, because the state hash is defined over the whole
canonical state — dropping them would make every later hash check fail. When the client's
engine is upgraded, loading the same state again moves them to ``State.records``.

Bounds. Every reader checks magic, format, lengths and counts before trusting them and never
decompresses more than ``max_size`` bytes (``MAX_STATE_BYTES`` unless told): a malformed,
truncated or oversized input raises ``CodecError``, never anything else.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import zstandard

from engine.binary import Reader, put_varint, put_varints, write_atomic
from engine.features import RuleRecord

FORMAT_VERSION: Final = 1
# the engine a format-1 file needs; a future format bumps both
FORMAT_MIN_ENGINE: Final = 1
ZSTD_LEVEL: Final = 10
# 1,000,000 hash records encode to about 37 MB; leave room for growth and big yara bodies
MAX_STATE_BYTES: Final = 512 * 1024 * 1024

STATE_MAGIC: Final = b"MTPS"
FULL_MAGIC: Final = b"MTPF"
DELTA_MAGIC: Final = b"MTPD"

# magic, format, min_engine, release, state sha256, payload (uncompressed) length
_FULL_HEADER = struct.Struct(">4sHIQ32sQ")
# magic, format, min_engine, base release, release, base sha256, state sha256, payload length
_DELTA_HEADER = struct.Struct(">4sHIQQ32s32sQ")
# Each header ends with a CRC-32 of the fields before it. The zstd checksum and the state hash
# cover the payload; the CRC catches a flipped bit in the release number of a stored database
# (which would otherwise make a client refuse every update as a "downgrade"). Tampering is
# TUF's to catch, not the CRC's.
_CRC = struct.Struct(">I")

_SEVERITIES: Final = frozenset({"malicious", "suspicious", "riskware"})
_RECORD_KEYS: Final = frozenset(
    {"id", "revision", "name", "kind", "body", "severity", "noisy", "min_engine"}
)


class CodecError(ValueError):
    """The input is not a well-formed bundle, delta or state this engine can read."""


def _canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


# --- varints (engine.binary) --------------------------------------------------------------


def _put_varint(out: bytearray, value: int) -> None:
    put_varint(out, value, CodecError)


def _put_varints(out: bytearray, values: list[int]) -> None:
    put_varints(out, values, CodecError)


def _Reader(buf: bytes) -> Reader:
    return Reader(buf, CodecError)


# --- records <-> canonical encoding --------------------------------------------------------

# category, family, severity, noisy, min_engine, digest key, digest hex length, template
_ClassKey = tuple[str, str, str, bool, int, str, int, tuple[tuple[str, str], ...]]


def _compact_form(record: RuleRecord) -> tuple[_ClassKey, bytes] | None:
    """The class key and raw digest of a hash record that fits the compact section.

    This runs once per record on every encode, so it avoids regexes: the name must be
    ``Andr.`` + category (no dot) + ``.`` + family + ``-<id>-<revision>`` exactly, which makes
    rebuilding it from (category, family, id, revision) give back the same string.
    """
    if record.kind != "hash":
        return None
    body = record.body
    if type(body) is not dict:
        return None
    name = record.name
    tail = f"-{record.id}-{record.revision}"
    if not name.startswith("Andr.") or not name.endswith(tail):
        return None
    category, dot, family = name[5 : len(name) - len(tail)].partition(".")
    if not dot or not category or not family:
        return None
    # exactly one value may look like a digest, so the choice of digest key does not depend
    # on the dict's insertion order (equal records must encode equally)
    digest_key = None
    template: list[tuple[str, str]] = []
    for key, value in body.items():
        if type(key) is not str or type(value) is not str:
            return None
        if _is_digest(value):
            if digest_key is not None:
                return None
            digest_key = key
        else:
            template.append((key, value))
    if digest_key is None:
        return None
    digest = bytes.fromhex(body[digest_key])
    template.sort()
    key_tuple: _ClassKey = (
        category,
        family,
        record.severity,
        record.noisy,
        record.min_engine,
        digest_key,
        len(digest) * 2,
        tuple(template),
    )
    return key_tuple, digest


def _is_digest(value: str) -> bool:
    """Lowercase, separator-free hex of at least 16 bytes: stored raw, rebuilt with .hex()."""
    if len(value) < 32 or len(value) % 2:
        return False
    try:
        return bytes.fromhex(value).hex() == value
    except ValueError:
        return False


def _record_dict(record: RuleRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "revision": record.revision,
        "name": record.name,
        "kind": record.kind,
        "body": record.body,
        "severity": record.severity,
        "noisy": record.noisy,
        "min_engine": record.min_engine,
    }


def _check_record(record: RuleRecord) -> None:
    if not isinstance(record, RuleRecord):
        raise CodecError(f"not a RuleRecord: {type(record).__name__}")
    for attr in ("id", "revision", "min_engine"):
        value = getattr(record, attr)
        if type(value) is not int or value < 0:
            raise CodecError(f"record {record.id!r}: {attr} must be a non-negative int")
    if type(record.noisy) is not bool:
        raise CodecError(f"record {record.id}: noisy must be a bool")
    if record.severity not in _SEVERITIES:
        raise CodecError(f"record {record.id}: unknown severity {record.severity!r}")
    if not isinstance(record.name, str) or not isinstance(record.kind, str):
        raise CodecError(f"record {record.id}: name and kind must be strings")


def encode_state(records: Iterable[RuleRecord]) -> bytes:
    """The canonical encoding of a set of records: the same set gives the same bytes."""
    by_id: dict[int, RuleRecord] = {}
    for record in records:
        _check_record(record)
        if record.id in by_id:
            if by_id[record.id] == record:
                continue
            raise CodecError(f"two records with id {record.id}")
        by_id[record.id] = record
    return _encode_sorted([by_id[i] for i in sorted(by_id)])[0]


# what a decoded state remembers about its compact records, so re-encoding after a delta
# does not have to re-derive every record's class (the bulk of the encoding cost)
_Forms = dict[int, _ClassKey]


def _encode_sorted(
    records: list[RuleRecord], known: Mapping[int, _ClassKey] | None = None
) -> tuple[bytes, _Forms]:
    """Encode records already sorted by id and unique; ``known`` are trusted class keys."""
    compact: list[tuple[RuleRecord, _ClassKey, bytes]] = []
    generic: list[RuleRecord] = []
    forms: _Forms = {}
    for record in records:
        key = known.get(record.id) if known is not None else None
        if key is not None:
            compact.append((record, key, bytes.fromhex(record.body[key[5]])))
            forms[record.id] = key
            continue
        form = _compact_form(record)
        if form is None:
            generic.append(record)
        else:
            compact.append((record, form[0], form[1]))
            forms[record.id] = form[0]

    class_json: dict[_ClassKey, bytes] = {}
    for _, key, _ in compact:
        if key not in class_json:
            cat, fam, sev, noisy, min_engine, dkey, dlen, template = key
            class_json[key] = _canonical_json(
                [cat, fam, sev, noisy, min_engine, dkey, dlen, dict(template)]
            )
    ordered = sorted(class_json.items(), key=lambda item: item[1])
    class_index = {key: i for i, (key, _) in enumerate(ordered)}

    out = bytearray(STATE_MAGIC)
    out.append(FORMAT_VERSION)
    _put_varint(out, len(ordered))
    for _, blob in ordered:
        _put_varint(out, len(blob))
        out += blob

    _put_varint(out, len(compact))
    ids = [record.id for record, _, _ in compact]
    _put_varints(out, [b - a for a, b in zip([0, *ids], ids, strict=False)])
    _put_varints(out, [record.revision for record, _, _ in compact])
    _put_varints(out, [class_index[key] for _, key, _ in compact])
    out += b"".join(digest for _, _, digest in compact)

    _put_varint(out, len(generic))
    for record in generic:
        try:
            blob = _canonical_json(_record_dict(record))
        except (TypeError, ValueError) as exc:
            raise CodecError(f"record {record.id}: body is not JSON: {exc}") from exc
        _put_varint(out, len(blob))
        out += blob
    return bytes(out), forms


def state_sha256(records: Iterable[RuleRecord]) -> str:
    return hashlib.sha256(encode_state(records)).hexdigest()


def decode_state(data: bytes) -> list[RuleRecord]:
    """Records of a canonical encoding, sorted by id; rejects anything non-canonical."""
    return _decode_state(data)[0]


def _decode_state(data: bytes) -> tuple[list[RuleRecord], _Forms]:
    reader = _Reader(data)
    if reader.take(4) != STATE_MAGIC:
        raise CodecError("not a state encoding (bad magic)")
    fmt = reader.take(1)[0]
    if fmt != FORMAT_VERSION:
        raise CodecError(
            f"state format {fmt} is not supported (this engine reads {FORMAT_VERSION})"
        )

    classes: list[tuple[str, str, str, bool, int, str, int, dict[str, str]]] = []
    previous_blob = b""
    for _ in range(reader.count(1)):
        blob = reader.take(reader.varint())
        if classes and blob <= previous_blob:
            raise CodecError("hash classes are not in canonical order")
        previous_blob = blob
        classes.append(_parse_class(blob))
    class_keys: list[_ClassKey] = [(*c[:7], tuple(sorted(c[7].items()))) for c in classes]
    forms: _Forms = {}

    records: list[RuleRecord] = []
    n = reader.count(3)
    ids: list[int] = []
    current = 0
    for i, step in enumerate(reader.varints(n)):
        if i and step == 0:
            raise CodecError("duplicate or unsorted ids in the hash section")
        current += step
        ids.append(current)
    revisions = reader.varints(n)
    class_ids = reader.varints(n)
    for rid, revision, class_id in zip(ids, revisions, class_ids, strict=True):
        if class_id >= len(classes):
            raise CodecError("hash class index out of range")
        cat, fam, sev, noisy, min_engine, dkey, dlen, template = classes[class_id]
        digest = reader.take(dlen // 2).hex()
        forms[rid] = class_keys[class_id]
        body = dict(template)
        body[dkey] = digest
        records.append(
            RuleRecord(
                id=rid,
                revision=revision,
                name=f"Andr.{cat}.{fam}-{rid}-{revision}",
                kind="hash",
                body=body,
                severity=sev,  # type: ignore[arg-type]  # checked in _parse_class
                noisy=noisy,
                min_engine=min_engine,
            )
        )

    generic: list[RuleRecord] = []
    for _ in range(reader.count(1)):
        generic.append(_parse_record(reader.take(reader.varint())))
    if reader.pos != len(data):
        raise CodecError("trailing bytes after the state")
    for a, b in itertools.pairwise(generic):
        if a.id >= b.id:
            raise CodecError("duplicate or unsorted ids in the generic section")
    return _merge_by_id(records, generic), forms


def _merge_by_id(a: list[RuleRecord], b: list[RuleRecord]) -> list[RuleRecord]:
    if not b:
        return a
    if not a:
        return b
    merged = sorted(a + b, key=lambda r: r.id)
    for x, y in itertools.pairwise(merged):
        if x.id == y.id:
            raise CodecError(f"id {x.id} appears twice")
    return merged


def _load_json(blob: bytes) -> Any:
    try:
        value = json.loads(blob.decode("utf-8"))
        # NaN and 1e999 load as floats that canonical JSON cannot hold; deep nesting recurses
        canonical = _canonical_json(value)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CodecError(f"malformed JSON: {exc}") from exc
    if canonical != blob:
        raise CodecError("JSON is not canonical")
    return value


def _parse_class(blob: bytes) -> tuple[str, str, str, bool, int, str, int, dict[str, str]]:
    value = _load_json(blob)
    if not isinstance(value, list) or len(value) != 8:
        raise CodecError("malformed hash class")
    cat, fam, sev, noisy, min_engine, dkey, dlen, template = value
    if not (
        isinstance(cat, str)
        and isinstance(fam, str)
        and sev in _SEVERITIES
        and isinstance(noisy, bool)
        and type(min_engine) is int
        and min_engine >= 0
        and isinstance(dkey, str)
        and type(dlen) is int
        and dlen >= 32
        and dlen % 2 == 0
        and isinstance(template, dict)
        and dkey not in template
        and all(isinstance(v, str) and not _is_digest(v) for v in template.values())
        and cat
        and "." not in cat
        and fam
    ):
        raise CodecError("malformed hash class")
    return cat, fam, sev, noisy, min_engine, dkey, dlen, template


def _parse_record(blob: bytes) -> RuleRecord:
    value = _load_json(blob)
    if not isinstance(value, dict) or set(value) != _RECORD_KEYS:
        raise CodecError("malformed record")
    try:
        record = RuleRecord(**value)
        _check_record(record)
    except TypeError as exc:
        raise CodecError(f"malformed record: {exc}") from exc
    if _compact_form(record) is not None:
        raise CodecError(f"record {record.id} belongs in the hash section")
    return record


# --- states --------------------------------------------------------------------------------


class State:
    """An installed release: every record, split by what this engine can run.

    ``records`` are compiled and matched; ``skipped`` need a newer engine and are only kept so
    that the state (and its hash) stays whole. Treat a State as immutable.
    """

    __slots__ = ("_by_id", "_canonical", "_forms", "engine_version", "release", "sha256")

    def __init__(
        self,
        *,
        release: int,
        records: Iterable[RuleRecord],
        engine_version: int,
    ) -> None:
        self.release = release
        self.engine_version = engine_version
        self._by_id: dict[int, RuleRecord] = {}
        for record in records:
            _check_record(record)
            if record.id in self._by_id:
                raise CodecError(f"two records with id {record.id}")
            self._by_id[record.id] = record
        self._canonical, self._forms = _encode_sorted([self._by_id[i] for i in sorted(self._by_id)])
        self.sha256 = hashlib.sha256(self._canonical).hexdigest()

    @classmethod
    def _trusted(
        cls,
        *,
        release: int,
        by_id: dict[int, RuleRecord],
        engine_version: int,
        canonical: bytes | None,
        forms: _Forms,
    ) -> State:
        """Build from parts this module has already checked (decoded or re-encoded)."""
        self = cls.__new__(cls)
        self.release = release
        self.engine_version = engine_version
        self._by_id = by_id
        if canonical is None:
            canonical, forms = _encode_sorted([by_id[i] for i in sorted(by_id)], forms)
        self._canonical = canonical
        self._forms = forms
        self.sha256 = hashlib.sha256(canonical).hexdigest()
        return self

    @property
    def canonical(self) -> bytes:
        return self._canonical

    @property
    def all_records(self) -> tuple[RuleRecord, ...]:
        return tuple(self._by_id[i] for i in sorted(self._by_id))

    @property
    def records(self) -> tuple[RuleRecord, ...]:
        v = self.engine_version
        return tuple(r for r in self.all_records if r.min_engine <= v)

    @property
    def skipped(self) -> tuple[RuleRecord, ...]:
        v = self.engine_version
        return tuple(r for r in self.all_records if r.min_engine > v)

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, rule_id: int) -> RuleRecord | None:
        return self._by_id.get(rule_id)

    def __repr__(self) -> str:
        return f"<State release={self.release} records={len(self)} sha256={self.sha256[:12]}>"


# --- files ---------------------------------------------------------------------------------


def _compress(payload: bytes) -> bytes:
    cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True, write_checksum=True)
    return cctx.compress(payload)


def _decompress(frame: bytes, expected: int, max_size: int) -> bytes:
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
    return _full_file(release, canonical)


def _full_file(release: int, canonical: bytes) -> bytes:
    header = _FULL_HEADER.pack(
        FULL_MAGIC,
        FORMAT_VERSION,
        FORMAT_MIN_ENGINE,
        release,
        hashlib.sha256(canonical).digest(),
        len(canonical),
    )
    return header + _CRC.pack(zlib.crc32(header)) + _compress(canonical)


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


def _check_format(fmt: int, min_engine: int, engine_version: int) -> None:
    if fmt != FORMAT_VERSION:
        raise CodecError(f"file format {fmt} is not supported (this engine reads {FORMAT_VERSION})")
    if min_engine > engine_version:
        raise CodecError(f"the file needs engine {min_engine}, this is engine {engine_version}")


def _check_crc(data: bytes, size: int) -> None:
    (crc,) = _CRC.unpack_from(data, size)
    if zlib.crc32(data[:size]) != crc:
        raise CodecError("damaged header (CRC mismatch)")


def read_full_header(data: bytes) -> FullHeader:
    if len(data) < _FULL_HEADER.size + _CRC.size:
        raise CodecError("truncated full bundle header")
    magic, fmt, min_engine, release, digest, size = _FULL_HEADER.unpack_from(data)
    if magic != FULL_MAGIC:
        raise CodecError("not a full bundle (bad magic)")
    _check_crc(data, _FULL_HEADER.size)
    _check_format(fmt, 0, 0)
    return FullHeader(release, digest.hex(), min_engine, size)


def read_delta_header(data: bytes) -> DeltaHeader:
    if len(data) < _DELTA_HEADER.size + _CRC.size:
        raise CodecError("truncated delta header")
    magic, fmt, min_engine, base, release, base_digest, digest, size = _DELTA_HEADER.unpack_from(
        data
    )
    if magic != DELTA_MAGIC:
        raise CodecError("not a delta (bad magic)")
    _check_crc(data, _DELTA_HEADER.size)
    _check_format(fmt, 0, 0)
    return DeltaHeader(base, release, base_digest.hex(), digest.hex(), min_engine, size)


def apply_full(data: bytes, engine_version: int, *, max_size: int = MAX_STATE_BYTES) -> State:
    """The state a full bundle describes, after checking its embedded state hash."""
    header = read_full_header(data)
    _check_format(FORMAT_VERSION, header.min_engine, engine_version)
    canonical = _decompress(data[_FULL_HEADER.size + _CRC.size :], header.payload_size, max_size)
    if hashlib.sha256(canonical).hexdigest() != header.state_sha256:
        raise CodecError("state hash mismatch: the bundle does not hold the state it names")
    # the bytes hash to what the header names; decoding also proves they are canonical
    records, forms = _decode_state(canonical)
    return State._trusted(
        release=header.release,
        by_id={r.id: r for r in records},
        engine_version=engine_version,
        canonical=canonical,
        forms=forms,
    )


def build_delta(
    *,
    base_release: int,
    base_sha256: str,
    release: int,
    state_sha256: str,
    upserts: Iterable[RuleRecord],
    removed: Iterable[int],
) -> bytes:
    """A delta from ``base_release`` to ``release`` made from the change set alone.

    ``upserts`` are the added and changed records (whole records: a changed signature ships
    its new revision), ``removed`` the ids that leave. The caller knows both state hashes
    (``state_sha256`` of the new release comes from building its full bundle), so the cost
    here is proportional to the change, not to the database.
    """
    if release <= base_release:
        raise CodecError(f"a delta must go up: {base_release} -> {release}")
    upsert_list = list(upserts)
    removed_ids = sorted(set(removed))
    clash = {r.id for r in upsert_list}.intersection(removed_ids)
    if clash:
        raise CodecError(f"ids both upserted and removed: {sorted(clash)[:5]}")
    body = bytearray()
    _put_varint(body, len(removed_ids))
    previous = 0
    for rid in removed_ids:
        _put_varint(body, rid - previous)
        previous = rid
    body += encode_state(upsert_list)
    try:
        base_digest = bytes.fromhex(base_sha256)
        digest = bytes.fromhex(state_sha256)
    except ValueError as exc:
        raise CodecError(f"state hashes must be hex: {exc}") from exc
    if len(base_digest) != 32 or len(digest) != 32:
        raise CodecError("state hashes must be SHA-256 hex digests")
    header = _DELTA_HEADER.pack(
        DELTA_MAGIC,
        FORMAT_VERSION,
        FORMAT_MIN_ENGINE,
        base_release,
        release,
        base_digest,
        digest,
        len(body),
    )
    return header + _CRC.pack(zlib.crc32(header)) + _compress(bytes(body))


def diff_states(
    base: Mapping[int, RuleRecord], target: Mapping[int, RuleRecord]
) -> tuple[list[RuleRecord], list[int]]:
    """The (upserts, removed ids) that turn ``base`` into ``target``: a helper for callers
    that hold both states in memory (tests, backfills); the portal computes its change set
    from the release's revision pins instead."""
    upserts = [r for rid, r in target.items() if base.get(rid) != r]
    removed = [rid for rid in base if rid not in target]
    return upserts, removed


def apply_delta(
    state: State, data: bytes, engine_version: int, *, max_size: int = MAX_STATE_BYTES
) -> State:
    """A new state: ``state`` with the delta applied. ``state`` itself is left untouched.

    Checks that the delta starts from this exact state (release and hash) and that the
    result hashes to the state hash the delta names.
    """
    header = read_delta_header(data)
    _check_format(FORMAT_VERSION, header.min_engine, engine_version)
    if header.base_release != state.release or header.base_sha256 != state.sha256:
        raise CodecError(
            f"delta {header.base_release}->{header.release} does not apply to the installed "
            f"release {state.release} (state {state.sha256[:12]})"
        )
    if header.release <= header.base_release:
        raise CodecError("a delta must go up")
    payload = _decompress(data[_DELTA_HEADER.size + _CRC.size :], header.payload_size, max_size)
    reader = _Reader(payload)
    removed: list[int] = []
    current = 0
    for i, step in enumerate(reader.varints(reader.count(1))):
        if i and step == 0:
            raise CodecError("duplicate or unsorted removed ids")
        current += step
        removed.append(current)
    upserts, upsert_forms = _decode_state(payload[reader.pos :])

    by_id = dict(state._by_id)
    forms = dict(state._forms)
    for rid in removed:
        if by_id.pop(rid, None) is None:
            raise CodecError(f"delta removes id {rid}, which is not installed")
        forms.pop(rid, None)
    for record in upserts:
        by_id[record.id] = record
        forms.pop(record.id, None)
    forms.update(upsert_forms)
    new_state = State._trusted(
        release=header.release,
        by_id=by_id,
        engine_version=engine_version,
        canonical=None,
        forms=forms,
    )
    if new_state.sha256 != header.state_sha256:
        raise CodecError("state hash mismatch after applying the delta")
    return new_state


# --- persistence ---------------------------------------------------------------------------


def state_file_bytes(state: State) -> bytes:
    """A state as a full bundle: what ``save_state`` writes and ``apply_full`` reads back."""
    return _full_file(state.release, state.canonical)


def save_state(state: State, path: Path) -> None:
    """Write ``state`` to ``path`` atomically: a reader sees the old file or the new one."""
    write_atomic(path, state_file_bytes(state))


def load_state(path: Path, engine_version: int, *, max_size: int = MAX_STATE_BYTES) -> State:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CodecError(f"cannot read {path}: {exc}") from exc
    return apply_full(data, engine_version, max_size=max_size)
