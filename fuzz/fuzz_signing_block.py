"""Fuzz the APK Signing Block parser (``engine.apk.signing``): v2, v3, v3.1 and lineage.

The input is what lies before the central directory: the harness appends an empty central
directory and its EOCD, so every mutation lands in the signing block rather than in ZIP
structure the ZIP harness already covers. The certificates found are described (X.509 parsing)
as analysis does. A malformed block is reported in ``SigningInfo.problems``; only
``AnalysisError`` may escape.
"""

from __future__ import annotations

import io
import struct

from engine.apk.archive import Limits, open_archive
from engine.apk.signing import SIG_BLOCK_MAGIC, describe, read_signing
from engine.errors import AnalysisError
from fuzz import Harness

LIMITS = Limits()
_EOCD = struct.Struct("<4sHHHHIIH")


def wrap(before_cd: bytes) -> bytes:
    """An APK whose central directory (empty) starts right after ``before_cd``."""
    return before_cd + _EOCD.pack(b"PK\x05\x06", 0, 0, 0, 0, 0, len(before_cd), 0)


def one_input(data: bytes) -> None:
    apk = wrap(data)
    try:
        arc = open_archive(io.BytesIO(apk), len(apk), LIMITS)
        info = read_signing(arc)
    except AnalysisError:
        return
    for der, schemes in info.certs.items():
        describe(der, tuple(schemes))


HARNESS = Harness(
    name="signing_block",
    one_input=one_input,
    max_len=64 << 10,
    timeout=10,
    dictionary=(
        SIG_BLOCK_MAGIC,
        struct.pack("<I", 0x7109871A),  # v2
        struct.pack("<I", 0xF05368C0),  # v3
        struct.pack("<I", 0x1B93AD61),  # v3.1
        struct.pack("<I", 0x3BA06F8C),  # proof-of-rotation
        b"\x30\x82",  # DER SEQUENCE with a two-byte length
    ),
)
