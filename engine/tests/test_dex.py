"""engine.dex: the DEX table reader must be right on real DEX and safe on broken ones."""

from __future__ import annotations

import contextlib
import random
import struct
from pathlib import Path

import pytest

from engine.analyze import analyze_with_content
from engine.dex import DexError, decode_mutf8, is_dex, read_tables


@pytest.fixture(scope="module")
def small_dex(corpus: Path) -> bytes:
    _, content = analyze_with_content(corpus / "apks" / "krvarma-android-samples-smsdemo.apk")
    return content.dex[0][1]


def test_reads_strings_types_and_api_calls(small_dex: bytes) -> None:
    tables = read_tables(small_dex)
    assert tables.version == "035"
    assert "Landroid/telephony/SmsManager;" in tables.types
    assert (
        "Landroid/telephony/SmsManager;",
        "sendTextMessage",
        "(Ljava/lang/String;Ljava/lang/String;Ljava/lang/String;"
        "Landroid/app/PendingIntent;Landroid/app/PendingIntent;)V",
    ) in tables.methods
    # the app's own classes are defined here, so their methods are not "API calls"
    assert not any(cls in tables.defined_classes for cls, _, _ in tables.methods)


def test_mutf8_nul_and_supplementary_characters() -> None:
    # U+1F600 as a CESU-8 surrogate pair, and NUL as C0 80
    assert decode_mutf8(b"a\xc0\x80b") == "a\x00b"
    assert decode_mutf8(b"\xed\xa0\xbd\xed\xb8\x80") == "\U0001f600"
    assert decode_mutf8(b"\xed\xa0\xbd") == "\ufffd"  # a lone surrogate never leaks out
    assert decode_mutf8(b"\xff") == "\ufffd"


def test_magic() -> None:
    assert is_dex(b"dex\n035\x00")
    assert is_dex(b"dex\n041\x00")
    assert not is_dex(b"dey\n035\x00")
    assert not is_dex(b"dex\n")


def test_truncated_and_out_of_range_tables_raise(small_dex: bytes) -> None:
    with pytest.raises(DexError):
        read_tables(small_dex[:0x40])
    broken = bytearray(small_dex)
    struct.pack_into("<I", broken, 0x38, 0x7FFFFFFF)  # string_ids_size
    with pytest.raises(DexError, match="string_ids"):
        read_tables(bytes(broken))


def test_random_corruption_never_escapes_as_another_exception(small_dex: bytes) -> None:
    rng = random.Random(1234)
    for _ in range(300):
        data = bytearray(small_dex)
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(8, min(len(data), 0x200))
            data[pos] = rng.randrange(256)
        with contextlib.suppress(DexError):
            read_tables(bytes(data))
