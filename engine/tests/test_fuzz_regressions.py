"""Inputs that once crashed a fuzz harness (fuzz/regressions/<harness>/) stay fixed.

Each is replayed through its harness' one-input function, as ``python -m fuzz regress`` does:
a hostile input must end in the parser's own error (AnalysisError, DexError, UnitsError,
CodecError) or in a result, never in IndexError, zlib.error, RecursionError and the like,
which a worker would report as "unexpected". No atheris needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz import NAMES
from fuzz.regress import inputs, replay

CASES = [(name, path) for name in NAMES for path in inputs(name)]


def test_the_regression_inputs_are_found() -> None:
    # a crash found and fixed leaves its input here; an empty suite would prove nothing
    assert CASES, "fuzz/regressions/ holds no inputs"


@pytest.mark.parametrize(
    ("harness", "path"), CASES, ids=[f"{name}/{path.name}" for name, path in CASES]
)
def test_a_past_crash_ends_in_our_error_or_a_result(harness: str, path: Path) -> None:
    outcome = replay(harness, path)

    assert outcome.error is None, f"{harness} {path.name} escaped:\n{outcome.error}"
    assert outcome.seconds < 10, f"{harness} {path.name} took {outcome.seconds:.1f} s"
