"""Fuzz the whole analysis (``engine.analyze``): APK and XAPK files in, ``AppFeatures`` out.

``analyze_with_content`` and ``read_content`` turn any unexpected exception into an
``AnalysisError`` ("the file could not be analysed (unexpected ...)"), so that a parser bug
never takes a worker down. For the fuzzer that safety net hides the bug: an error it made
is re-raised as its cause, a crash. ``AnalysisError`` raised on purpose is a result.
"""

from __future__ import annotations

import atexit
import os
from pathlib import Path

from engine.analyze import analyze_with_content, read_content
from engine.errors import AnalysisError
from fuzz import Harness, var_dir


def _scratch() -> Path:
    """One file per process under the var dir, rewritten for every input (analysis takes a path)."""
    folder = var_dir() / "analyze" / "scratch"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"input-{os.getpid()}.apk"
    atexit.register(path.unlink, missing_ok=True)
    return path


_PATH: Path | None = None


def _hidden_by_safety_net(exc: AnalysisError) -> BaseException | None:
    """The exception the safety net around analysis turned into ``exc``, if it made ``exc``."""
    cause = exc.__cause__
    if cause is None or isinstance(cause, AnalysisError):
        return None
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None and tb.tb_frame.f_code.co_name == "_as_analysis_error":
        return cause
    return None


def one_input(data: bytes) -> None:
    global _PATH
    if _PATH is None:
        _PATH = _scratch()
    _PATH.write_bytes(data)
    try:
        analyze_with_content(_PATH)
        read_content(_PATH)
    except AnalysisError as exc:
        hidden = _hidden_by_safety_net(exc)
        if hidden is not None:
            raise hidden from None
        return


HARNESS = Harness(
    name="analyze",
    one_input=one_input,
    max_len=256 << 10,
    timeout=20,
    dictionary=(
        b"PK\x03\x04",
        b"PK\x01\x02",
        b"PK\x05\x06",
        b"AndroidManifest.xml",
        b"classes.dex",
        b"manifest.json",
        b"base.apk",
        b"dex\n035\x00",
        b"\x03\x00\x08\x00",  # AXML file header
        b"\x01\x00\x1c\x00",  # string pool chunk
        b"\x02\x01\x10\x00",  # start element chunk
    ),
)
