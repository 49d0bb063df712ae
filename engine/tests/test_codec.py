"""engine.codec: canonical states, full bundles, deltas, old engines, hostile input."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import random
import struct
import zlib
from pathlib import Path

import pytest
import zstandard

from engine import codec
from engine.codec import CodecError, State
from engine.features import RuleRecord


def hash_record(
    i: int, revision: int = 1, *, family: str = "Joker", min_engine: int = 1
) -> RuleRecord:
    return RuleRecord(
        id=i,
        revision=revision,
        name=f"Andr.Trojan.{family}-{i}-{revision}",
        kind="hash",
        body={
            "algorithm": "sha256",
            "target": "apk",
            "value": hashlib.sha256(f"{i}/{revision}".encode()).hexdigest(),
        },
        severity="malicious",
        min_engine=min_engine,
    )


def other_records() -> list[RuleRecord]:
    return [
        RuleRecord(
            id=500_001,
            revision=2,
            name="Andr.SmsFraud.Premium-500001-2",
            kind="indicator",
            body={"type": "short_code", "value": "7781", "note": "ünïcode ok"},
            severity="suspicious",
        ),
        RuleRecord(
            id=500_002,
            revision=1,
            name="Andr.Spy.OtpThief-500002-1",
            kind="yara",
            body='rule otp { strings: $a = "SmsRetriever" condition: $a }',
            severity="malicious",
        ),
        RuleRecord(
            id=500_003,
            revision=1,
            name="Andr.Adware.Junk-500003-1",
            kind="behavior",
            body={"permissions": ["android.permission.SEND_SMS"], "score": 60},
            severity="riskware",
            noisy=True,
        ),
        # a hash record that does not fit the compact form (hand-written name)
        RuleRecord(
            id=500_004,
            revision=1,
            name="legacy clamav name",
            kind="hash",
            body={"algorithm": "md5", "target": "apk", "value": "0" * 32},
            severity="malicious",
        ),
    ]


def sample_state(n: int = 200) -> list[RuleRecord]:
    return [hash_record(i) for i in range(1, n + 1)] + other_records()


def test_round_trip_keeps_every_record_exactly() -> None:
    records = sample_state()
    state = codec.apply_full(codec.build_full(7, records), engine_version=1)
    assert state.release == 7
    assert list(state.all_records) == sorted(records, key=lambda r: r.id)
    assert state.sha256 == codec.state_sha256(records)
    assert codec.decode_state(codec.encode_state(records)) == sorted(records, key=lambda r: r.id)


def test_same_records_in_any_order_give_the_same_bytes_and_hash() -> None:
    records = sample_state()
    shuffled = records[:]
    random.Random(4).shuffle(shuffled)
    # equal bodies written in another key order are the same record
    reordered_body = [
        dataclasses.replace(r, body=dict(reversed(list(r.body.items()))))
        if isinstance(r.body, dict)
        else r
        for r in shuffled
    ]
    assert codec.encode_state(records) == codec.encode_state(shuffled)
    assert codec.encode_state(records) == codec.encode_state(reordered_body)
    assert codec.build_full(3, records) == codec.build_full(3, shuffled)


def test_any_change_to_a_record_changes_the_state_hash() -> None:
    records = sample_state(10)
    base = codec.state_sha256(records)
    changed = [*records[:3], hash_record(4, revision=2), *records[4:]]
    noisy = [dataclasses.replace(records[0], noisy=True), *records[1:]]
    assert len({base, codec.state_sha256(changed), codec.state_sha256(noisy)}) == 3


def test_hash_names_are_rebuilt_not_stored() -> None:
    records = [hash_record(i) for i in range(1, 1001)]
    encoded = codec.encode_state(records)
    assert b"Joker-5-1" not in encoded
    assert codec.decode_state(encoded)[4].name == "Andr.Trojan.Joker-5-1"


def test_a_chain_of_deltas_reaches_the_same_state_as_the_full_bundle() -> None:
    releases = [sample_state(100)]
    rng = random.Random(9)
    for n in range(4):
        current = {r.id: r for r in releases[-1]}
        for rid in rng.sample(sorted(current), 5):
            del current[rid]
        hashes = sorted(rid for rid, r in current.items() if r.kind == "hash")
        for rid in rng.sample(hashes, 5):
            current[rid] = hash_record(rid, revision=current[rid].revision + 1)
        for i in range(10):
            new = hash_record(1000 * (n + 1) + i)
            current[new.id] = new
        releases.append(list(current.values()))

    state = codec.apply_full(codec.build_full(1, releases[0]), engine_version=1)
    for number, (before, after) in enumerate(itertools.pairwise(releases), start=2):
        upserts, removed = codec.diff_states({r.id: r for r in before}, {r.id: r for r in after})
        delta = codec.build_delta(
            base_release=number - 1,
            base_sha256=codec.state_sha256(before),
            release=number,
            state_sha256=codec.state_sha256(after),
            upserts=upserts,
            removed=removed,
        )
        state = codec.apply_delta(state, delta, engine_version=1)
    full = codec.apply_full(codec.build_full(len(releases), releases[-1]), engine_version=1)
    assert state.release == full.release == 5
    assert state.sha256 == full.sha256
    assert state.canonical == full.canonical


def _delta(base: list[RuleRecord], target: list[RuleRecord], **overrides: object) -> bytes:
    upserts, removed = codec.diff_states({r.id: r for r in base}, {r.id: r for r in target})
    args: dict[str, object] = {
        "base_release": 1,
        "base_sha256": codec.state_sha256(base),
        "release": 2,
        "state_sha256": codec.state_sha256(target),
        "upserts": upserts,
        "removed": removed,
    }
    args.update(overrides)
    return codec.build_delta(**args)  # type: ignore[arg-type]


def test_delta_refuses_a_different_base_and_leaves_it_untouched() -> None:
    base = sample_state(20)
    other = sample_state(21)
    target = sample_state(30)
    installed = codec.apply_full(codec.build_full(1, other), engine_version=1)
    before = installed.canonical
    with pytest.raises(CodecError, match="does not apply"):
        codec.apply_delta(installed, _delta(base, target), engine_version=1)
    assert installed.canonical == before


def test_delta_with_a_wrong_target_hash_is_refused() -> None:
    base, target = sample_state(20), sample_state(30)
    installed = codec.apply_full(codec.build_full(1, base), engine_version=1)
    with pytest.raises(CodecError, match="state hash mismatch"):
        codec.apply_delta(installed, _delta(base, target, state_sha256="ab" * 32), engine_version=1)


def test_old_engine_skips_newer_records_but_still_verifies_the_state_hash() -> None:
    base = sample_state(20)
    future = hash_record(900, min_engine=2)
    future_kind = RuleRecord(
        id=901,
        revision=1,
        name="Andr.Spy.X-901-1",
        kind="dexpattern",
        body={"p": "x"},
        severity="malicious",
        min_engine=3,
    )
    target = [*base, future, future_kind]

    old = codec.apply_full(codec.build_full(1, base), engine_version=1)
    updated = codec.apply_delta(old, _delta(base, target), engine_version=1)
    assert updated.sha256 == codec.state_sha256(target)
    assert {r.id for r in updated.skipped} == {900, 901}
    assert 900 not in {r.id for r in updated.records}
    assert len(updated.records) + len(updated.skipped) == len(updated) == len(target)

    # the skipped records survive the next delta and a reload with a newer engine
    later = [*target, hash_record(902)]
    newer = codec.apply_delta(
        updated, _delta(target, later, base_release=2, release=3), engine_version=1
    )
    assert newer.sha256 == codec.state_sha256(later)
    upgraded = codec.apply_full(codec.state_file_bytes(newer), engine_version=2)
    assert {r.id for r in upgraded.skipped} == {901}


def test_a_file_needing_a_newer_engine_is_refused() -> None:
    bundle = bytearray(codec.build_full(1, sample_state(5)))
    struct.pack_into(">I", bundle, 6, 9)  # the header's min_engine field
    struct.pack_into(">I", bundle, 58, zlib.crc32(bundle[:58]))  # a well-formed header
    with pytest.raises(CodecError, match="needs engine 9"):
        codec.apply_full(bytes(bundle), engine_version=1)


@pytest.mark.parametrize("cut", [0, 3, 20, 70, -1, -10])
def test_truncated_bundles_are_refused(cut: int) -> None:
    bundle = codec.build_full(1, sample_state(50))
    with pytest.raises(CodecError):
        codec.apply_full(bundle[:cut], engine_version=1)


def test_corrupted_and_padded_bundles_are_refused() -> None:
    bundle = codec.build_full(1, sample_state(50))
    for position in (0, 10, 30, len(bundle) // 2, len(bundle) - 2):
        damaged = bytearray(bundle)
        damaged[position] ^= 0x40
        with pytest.raises(CodecError):
            codec.apply_full(bytes(damaged), engine_version=1)
    with pytest.raises(CodecError, match="trailing"):
        codec.apply_full(bundle + b"\0", engine_version=1)
    with pytest.raises(CodecError):
        codec.apply_full(b"", engine_version=1)


def test_oversized_payload_is_refused_before_decompressing() -> None:
    records = sample_state(50)
    bundle = codec.build_full(1, records)
    with pytest.raises(CodecError, match="exceeds the limit"):
        codec.apply_full(bundle, engine_version=1, max_size=100)

    # a header that lies about the size is caught against the zstd frame's own
    bomb_payload = b"\0" * 10_000_000
    frame = zstandard.ZstdCompressor(write_content_size=True).compress(bomb_payload)
    header = struct.pack(">4sHIQ32sQ", b"MTPF", 1, 1, 1, hashlib.sha256(bomb_payload).digest(), 10)
    header += struct.pack(">I", zlib.crc32(header))
    with pytest.raises(CodecError):
        codec.apply_full(header + frame, engine_version=1)


def test_non_canonical_state_encodings_are_refused() -> None:
    encoded = codec.encode_state([hash_record(1), hash_record(2)])
    with pytest.raises(CodecError):
        codec.decode_state(encoded + b"\0")
    with pytest.raises(CodecError):
        codec.decode_state(b"XXXX" + encoded[4:])
    duplicate = codec.encode_state([other_records()[0]])
    doubled = duplicate[:-1]  # drop part of the last record
    with pytest.raises(CodecError):
        codec.decode_state(doubled)


def test_duplicate_ids_are_refused_when_encoding() -> None:
    with pytest.raises(CodecError, match="two records with id 1"):
        codec.encode_state([hash_record(1), hash_record(1, revision=2)])


def test_deltas_cost_under_40_bytes_per_added_hash_signature() -> None:
    base = [hash_record(i) for i in range(1, 5001)]
    added = [hash_record(i) for i in range(5001, 6001)]
    delta = _delta(base, base + added)
    assert len(delta) / len(added) < 40
    removal = _delta(base, base[:4000])
    assert len(removal) / 1000 < 4


def test_full_bundle_costs_under_40_bytes_per_hash_signature() -> None:
    records = [hash_record(i, family=f"F{i % 50}") for i in range(1, 20_001)]
    assert len(codec.build_full(1, records)) / len(records) < 40


def test_save_and_load_state_round_trip(tmp_path: Path) -> None:
    state = State(release=4, records=sample_state(30), engine_version=1)
    target = tmp_path / "db" / "state.bin"
    codec.save_state(state, target)
    loaded = codec.load_state(target, engine_version=1)
    assert (loaded.release, loaded.sha256) == (4, state.sha256)
    assert [p.name for p in target.parent.iterdir()] == ["state.bin"]  # no temp file left
