"""Fuzz the unit-pack reader (``engine.units.read_units``): packs written by ``write_units``.

A damaged or foreign pack must end in ``UnitsError`` (the caller then reads the app itself)
or in an ``AppContent``.
"""

from __future__ import annotations

import io

from engine.apk.archive import Limits
from engine.units import MAGIC, UnitsError, read_units
from fuzz import Harness

# the owner key every seed pack is written for (the portal uses a file name's SHA-256)
OWNER = bytes(range(32))
LIMITS = Limits()


def one_input(data: bytes) -> None:
    try:
        read_units(io.BytesIO(data), OWNER, "/fuzz/app.apk", LIMITS)
    except UnitsError:
        return


HARNESS = Harness(
    name="units",
    one_input=one_input,
    max_len=64 << 10,
    timeout=10,
    dictionary=(
        MAGIC,
        OWNER,
        b"facts",
        b"AndroidManifest.xml",
        b'{"',
        b'":',
        b"[[[[",
        b"NaN",
        b"Infinity",
        b"1e999",
        b"\\u00",
    ),
)
