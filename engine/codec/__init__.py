"""The release codec: a canonical encoding of a signature database, full bundles and deltas.

Where each concern lives:

- ``engine.codec.records``: the canonical encoding of a *state* (a set of ``RuleRecord``),
  ``encode_state``/``decode_state`` and ``state_sha256``, the name of a state that clients
  check after every update; the format's layout and why it has that shape;
- ``engine.codec.state``: ``State``, an installed release with its encoding and hash;
- ``engine.codec.files``: the file container (headers with a CRC, one zstd frame, size
  bounds), full bundles, and saving and loading a state;
- ``engine.codec.deltas``: deltas, from a change set to a file and applied to a state.

Every public name is importable from ``engine.codec`` itself, as callers (the portal, the
reference client, the fuzz harnesses) always have.

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

from engine.codec.deltas import apply_delta, build_delta, diff_states
from engine.codec.files import (
    DELTA_HEADER,
    DELTA_MAGIC,
    FORMAT_MIN_ENGINE,
    FULL_HEADER,
    FULL_MAGIC,
    HEADER_CRC,
    MAX_STATE_BYTES,
    ZSTD_LEVEL,
    DeltaHeader,
    FullHeader,
    apply_full,
    build_full,
    compress,
    full_file,
    load_state,
    read_delta_header,
    read_full_header,
    save_state,
    state_file_bytes,
)
from engine.codec.records import (
    FORMAT_VERSION,
    STATE_MAGIC,
    CodecError,
    decode_state,
    encode_state,
    state_sha256,
)
from engine.codec.state import State

# the names the fuzz harnesses and seeds build hostile files with (fuzz/fuzz_codec.py)
_full_file = full_file
_compress = compress
_CRC = HEADER_CRC
_DELTA_HEADER = DELTA_HEADER
_FULL_HEADER = FULL_HEADER

__all__ = [
    "DELTA_MAGIC",
    "FORMAT_MIN_ENGINE",
    "FORMAT_VERSION",
    "FULL_MAGIC",
    "MAX_STATE_BYTES",
    "STATE_MAGIC",
    "ZSTD_LEVEL",
    "CodecError",
    "DeltaHeader",
    "FullHeader",
    "State",
    "apply_delta",
    "apply_full",
    "build_delta",
    "build_full",
    "decode_state",
    "diff_states",
    "encode_state",
    "load_state",
    "read_delta_header",
    "read_full_header",
    "save_state",
    "state_file_bytes",
    "state_sha256",
]
