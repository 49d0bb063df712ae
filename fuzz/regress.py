"""Replay the committed inputs that once crashed a harness (``fuzz/regressions/<harness>/``).

Each file goes through its harness' ``one_input``, which returns for a result or the parser's
own error; anything else it raises is a regression. No atheris needed: this also runs in the
normal test suite (``engine/tests/test_fuzz_regressions.py``).
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from fuzz import NAMES, REGRESSIONS, load


@dataclass(frozen=True, slots=True)
class Outcome:
    harness: str
    path: Path
    seconds: float
    error: str | None  # the traceback when the input escaped as another exception


def inputs(name: str) -> list[Path]:
    folder = REGRESSIONS / name
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def replay(name: str, path: Path) -> Outcome:
    one_input = load(name).one_input
    start = time.monotonic()
    try:
        one_input(path.read_bytes())
    except Exception:
        return Outcome(name, path, time.monotonic() - start, traceback.format_exc())
    return Outcome(name, path, time.monotonic() - start, None)


def replay_all(names: tuple[str, ...] = NAMES) -> list[Outcome]:
    return [replay(name, path) for name in names for path in inputs(name)]
