"""Fuzz the DEX table reader (``engine.dex.read_tables``): classes.dex images in.

A malformed DEX must end in ``DexError`` (an ``AnalysisError``) or in tables, and the reader
must not "allocate wildly" (its docstring's promise): in a valid DEX every string has its own
``string_data_item``, so the decoded strings never hold more characters than the file has
bytes. More than that means string ids share or overlap their data, and a small file could
make the reader allocate gigabytes: that is a finding too (``AmplificationError``).
"""

from __future__ import annotations

from engine.dex import DexError, is_dex, read_tables
from fuzz import Harness


class AmplificationError(AssertionError):
    """The reader produced far more than the input holds."""


def one_input(data: bytes) -> None:
    is_dex(data[:8])
    try:
        tables = read_tables(data)
    except DexError:
        return
    decoded = sum(map(len, tables.strings))
    if decoded > len(data):
        raise AmplificationError(f"{len(data)} bytes of DEX decoded to {decoded} string characters")


HARNESS = Harness(
    name="dex",
    one_input=one_input,
    max_len=128 << 10,
    timeout=10,
    dictionary=(b"dex\n035\x00", b"dex\n039\x00", b"\x78\x56\x34\x12", b"\xc0\x80", b"\xed\xa0"),
)
