"""The canonical encoding of a state: records <-> bytes (the payload of every release file).

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

Kinds. The hash section is part of format 1 and holds ``hash`` records only (its classes do
not name a kind, so decoding gives them back as ``hash``); that is a fact of the wire format,
not a behaviour a kind could opt into without a new format. Every other kind, including one
added later, ships in the generic section with no change here: its body only has to be JSON.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from engine.binary import Reader, put_varint, put_varints
from engine.features import RuleRecord

FORMAT_VERSION: Final = 1
STATE_MAGIC: Final = b"MTPS"
# the kind whose records fit the compact hash section of format 1 (see the docstring)
COMPACT_KIND: Final = "hash"

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


# varints (engine.binary), raising CodecError


def put_codec_varint(out: bytearray, value: int) -> None:
    put_varint(out, value, CodecError)


def put_codec_varints(out: bytearray, values: list[int]) -> None:
    put_varints(out, values, CodecError)


def codec_reader(buf: bytes) -> Reader:
    return Reader(buf, CodecError)


# category, family, severity, noisy, min_engine, digest key, digest hex length, template
_ClassKey = tuple[str, str, str, bool, int, str, int, tuple[tuple[str, str], ...]]


def _compact_form(record: RuleRecord) -> tuple[_ClassKey, bytes] | None:
    """The class key and raw digest of a hash record that fits the compact section.

    This runs once per record on every encode, so it avoids regexes: the name must be
    ``Andr.`` + category (no dot) + ``.`` + family + ``-<id>-<revision>`` exactly, which makes
    rebuilding it from (category, family, id, revision) give back the same string.
    """
    if record.kind != COMPACT_KIND:
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


def check_record(record: RuleRecord) -> None:
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
        check_record(record)
        if record.id in by_id:
            if by_id[record.id] == record:
                continue
            raise CodecError(f"two records with id {record.id}")
        by_id[record.id] = record
    return encode_sorted([by_id[i] for i in sorted(by_id)])[0]


# what a decoded state remembers about its compact records, so re-encoding after a delta
# does not have to re-derive every record's class (the bulk of the encoding cost)
Forms = dict[int, _ClassKey]


def encode_sorted(
    records: list[RuleRecord], known: Mapping[int, _ClassKey] | None = None
) -> tuple[bytes, Forms]:
    """Encode records already sorted by id and unique; ``known`` are trusted class keys."""
    compact: list[tuple[RuleRecord, _ClassKey, bytes]] = []
    generic: list[RuleRecord] = []
    forms: Forms = {}
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
    put_codec_varint(out, len(ordered))
    for _, blob in ordered:
        put_codec_varint(out, len(blob))
        out += blob

    put_codec_varint(out, len(compact))
    ids = [record.id for record, _, _ in compact]
    put_codec_varints(out, [b - a for a, b in zip([0, *ids], ids, strict=False)])
    put_codec_varints(out, [record.revision for record, _, _ in compact])
    put_codec_varints(out, [class_index[key] for _, key, _ in compact])
    out += b"".join(digest for _, _, digest in compact)

    put_codec_varint(out, len(generic))
    for record in generic:
        try:
            blob = _canonical_json(_record_dict(record))
        except (TypeError, ValueError) as exc:
            raise CodecError(f"record {record.id}: body is not JSON: {exc}") from exc
        put_codec_varint(out, len(blob))
        out += blob
    return bytes(out), forms


def state_sha256(records: Iterable[RuleRecord]) -> str:
    return hashlib.sha256(encode_state(records)).hexdigest()


def decode_state(data: bytes) -> list[RuleRecord]:
    """Records of a canonical encoding, sorted by id; rejects anything non-canonical."""
    return decode_state_forms(data)[0]


def decode_state_forms(data: bytes) -> tuple[list[RuleRecord], Forms]:
    reader = codec_reader(data)
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
    forms: Forms = {}

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
                kind=COMPACT_KIND,
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
        check_record(record)
    except TypeError as exc:
        raise CodecError(f"malformed record: {exc}") from exc
    if _compact_form(record) is not None:
        raise CodecError(f"record {record.id} belongs in the hash section")
    return record
