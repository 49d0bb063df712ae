"""Fuzz the ZIP directory reader (``engine.apk.archive``): whole APKs in, entries read out.

Every entry is peeked (the DEX sniff) and read under the DEX limit, as analysis does; a
hostile archive may end in ``AnalysisError`` and nothing else.
"""

from __future__ import annotations

import io

from engine.apk.archive import Limits, open_archive
from engine.errors import AnalysisError
from fuzz import Harness

LIMITS = Limits()


def one_input(data: bytes) -> None:
    try:
        arc = open_archive(io.BytesIO(data), len(data), LIMITS)
    except AnalysisError:
        return
    for entry in arc.entries:
        arc.peek(entry, 8)
        try:
            arc.read(entry, LIMITS.max_dex_size)
        except AnalysisError:
            continue


HARNESS = Harness(
    name="zip",
    one_input=one_input,
    max_len=256 << 10,
    timeout=10,
    dictionary=(b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06", b"PK\x07\x08", b"\xff\xff\xff\xff"),
)
