"""Deltas: a release as the change from the one before, and applying it to a state.

A delta lists removed ids and the upserted records (a canonical encoding of them), and names
the state hashes before and after, so a client can tell it has the right base before
touching anything and that the result is the state the release names.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping

from engine.codec.files import (
    DELTA_HEADER,
    DELTA_MAGIC,
    FORMAT_MIN_ENGINE,
    HEADER_CRC,
    MAX_STATE_BYTES,
    check_format,
    compress,
    decompress,
    read_delta_header,
)
from engine.codec.records import (
    FORMAT_VERSION,
    CodecError,
    codec_reader,
    decode_state_forms,
    encode_state,
    put_codec_varint,
)
from engine.codec.state import State
from engine.features import RuleRecord


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
    put_codec_varint(body, len(removed_ids))
    previous = 0
    for rid in removed_ids:
        put_codec_varint(body, rid - previous)
        previous = rid
    body += encode_state(upsert_list)
    try:
        base_digest = bytes.fromhex(base_sha256)
        digest = bytes.fromhex(state_sha256)
    except ValueError as exc:
        raise CodecError(f"state hashes must be hex: {exc}") from exc
    if len(base_digest) != 32 or len(digest) != 32:
        raise CodecError("state hashes must be SHA-256 hex digests")
    header = DELTA_HEADER.pack(
        DELTA_MAGIC,
        FORMAT_VERSION,
        FORMAT_MIN_ENGINE,
        base_release,
        release,
        base_digest,
        digest,
        len(body),
    )
    return header + HEADER_CRC.pack(zlib.crc32(header)) + compress(bytes(body))


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
    check_format(FORMAT_VERSION, header.min_engine, engine_version)
    if header.base_release != state.release or header.base_sha256 != state.sha256:
        raise CodecError(
            f"delta {header.base_release}->{header.release} does not apply to the installed "
            f"release {state.release} (state {state.sha256[:12]})"
        )
    if header.release <= header.base_release:
        raise CodecError("a delta must go up")
    payload = decompress(data[DELTA_HEADER.size + HEADER_CRC.size :], header.payload_size, max_size)
    reader = codec_reader(payload)
    removed: list[int] = []
    current = 0
    for i, step in enumerate(reader.varints(reader.count(1))):
        if i and step == 0:
            raise CodecError("duplicate or unsorted removed ids")
        current += step
        removed.append(current)
    upserts, upsert_forms = decode_state_forms(payload[reader.pos :])

    new_state = state.with_changes(
        release=header.release,
        removed=removed,
        upserts=upserts,
        upsert_forms=upsert_forms,
        engine_version=engine_version,
    )
    if new_state.sha256 != header.state_sha256:
        raise CodecError("state hash mismatch after applying the delta")
    return new_state
