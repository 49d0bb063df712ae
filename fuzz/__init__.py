"""Coverage-guided fuzzing of the engine's own parsers with atheris (docs/fuzzing.md).

One harness per parser, each a module ``fuzz.fuzz_<name>`` that defines ``HARNESS``: its
``one_input(data)`` returns when the input ends in a result or in the parser's own error
(``AnalysisError``, ``DexError``, ``UnitsError``, ``CodecError``) and lets anything else
escape, which is what the fuzzer and the regression replay call a crash.

This module imports neither atheris nor the engine: the fuzzing driver must import the
engine under atheris' instrumentation, and the regression replay must run without atheris.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REGRESSIONS = Path(__file__).resolve().parent / "regressions"
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus" / "apks"
NAMES = ("zip", "dex", "signing_block", "units", "codec", "analyze")


@dataclass(frozen=True, slots=True)
class Harness:
    name: str
    one_input: Callable[[bytes], None]
    max_len: int  # libFuzzer -max_len: longer inputs are cut
    timeout: int  # libFuzzer -timeout: seconds one input may take before it is a finding
    dictionary: tuple[bytes, ...] = ()  # libFuzzer -dict tokens


def load(name: str) -> Harness:
    """The harness called ``name``; importing it imports the engine parsers it drives."""
    if name not in NAMES:
        raise KeyError(f"no harness {name!r}; choose from {', '.join(NAMES)}")
    harness = importlib.import_module(f"fuzz.fuzz_{name}").HARNESS
    if not isinstance(harness, Harness):
        raise TypeError(f"fuzz.fuzz_{name}.HARNESS is not a Harness")
    return harness


def var_dir() -> Path:
    """Scratch space for seeds, the growing corpus and crashes: never inside the repo's tree."""
    root = os.environ.get("PORTAL_VAR_DIR")
    return (Path(root) if root else REPO / "var") / "fuzz"
