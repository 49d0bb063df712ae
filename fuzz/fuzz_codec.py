"""Fuzz the release codec (``engine.codec``): ``apply_full`` and ``apply_delta``.

The first input byte picks what the rest is (bits 0-1) and the client's engine version
(bit 2: this engine, or one newer):

- 0: a full bundle file, as downloaded;
- 1: a canonical state encoding, which the harness wraps in a well-formed full bundle (header,
  CRC, state hash, zstd) so that mutations reach the state decoder past the hash check;
- 2: a delta file, applied to ``base_state()``;
- 3: a delta payload (removed ids + upserts), wrapped in a well-formed delta header for
  ``base_state()``: it decodes and applies, then fails the (unknowable) target hash check.

A hostile file must end in ``CodecError`` or in a ``State``.
"""

from __future__ import annotations

import functools
import hashlib
import zlib

from engine import ENGINE_VERSION, codec
from engine.codec import CodecError, State
from engine.features import RuleRecord
from fuzz import Harness


def hash_record(i: int, revision: int = 1, *, min_engine: int = 1) -> RuleRecord:
    """A hash record in the compact form (as the portal publishes millions of them)."""
    return RuleRecord(
        id=i,
        revision=revision,
        name=f"Andr.Trojan.Joker-{i}-{revision}",
        kind="hash",
        body={
            "algorithm": "sha256",
            "target": "apk",
            "value": hashlib.sha256(f"{i}/{revision}".encode()).hexdigest(),
        },
        severity="malicious",
        min_engine=min_engine,
    )


def generic_records() -> list[RuleRecord]:
    """One record of every other shape: they land in the generic (JSON) section."""
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
            body={"permissions": ["android.permission.SEND_SMS"], "score": 60, "w": 0.5},
            severity="riskware",
            noisy=True,
        ),
        RuleRecord(
            id=500_004,
            revision=1,
            name="legacy clamav name",
            kind="hash",
            body={"algorithm": "md5", "target": "apk", "value": "0" * 32},
            severity="malicious",
            min_engine=2,
        ),
    ]


def base_records() -> list[RuleRecord]:
    return [hash_record(i) for i in range(1, 21)] + generic_records()


@functools.cache
def base_state() -> State:
    """The installed state every delta input is applied to."""
    return State(release=1, records=base_records(), engine_version=ENGINE_VERSION)


def full_file(canonical: bytes, release: int = 3) -> bytes:
    """A well-formed full bundle around any canonical-state bytes (hash and CRC correct)."""
    return codec._full_file(release, canonical)


def delta_file(payload: bytes) -> bytes:
    """A well-formed delta for ``base_state()`` around any payload; its target hash is zero."""
    base = base_state()
    header = codec._DELTA_HEADER.pack(
        codec.DELTA_MAGIC,
        codec.FORMAT_VERSION,
        codec.FORMAT_MIN_ENGINE,
        base.release,
        base.release + 1,
        bytes.fromhex(base.sha256),
        bytes(32),
        len(payload),
    )
    return header + codec._CRC.pack(zlib.crc32(header)) + codec._compress(payload)


def one_input(data: bytes) -> None:
    if not data:
        return
    mode, rest = data[0] & 3, data[1:]
    engine_version = ENGINE_VERSION + ((data[0] >> 2) & 1)
    try:
        if mode == 0:
            codec.apply_full(rest, engine_version)
        elif mode == 1:
            codec.apply_full(full_file(rest), engine_version)
        elif mode == 2:
            codec.apply_delta(base_state(), rest, engine_version)
        else:
            codec.apply_delta(base_state(), delta_file(rest), engine_version)
    except CodecError:
        return


HARNESS = Harness(
    name="codec",
    one_input=one_input,
    max_len=64 << 10,
    timeout=10,
    dictionary=(
        codec.FULL_MAGIC,
        codec.DELTA_MAGIC,
        codec.STATE_MAGIC,
        b'"body":',
        b'"id":',
        b'"kind":"hash"',
        b'"min_engine":',
        b'"name":"Andr.',
        b'"noisy":true',
        b'"revision":',
        b'"severity":"malicious"',
        b"[[[[",
        b"{}",
        b"null",
        b"true",
        b"1e999",
        b"NaN",
        b"Infinity",
        b"-0.0",
        b"\\u00",
        b"\x80\x80\x80\x80",
    ),
)
