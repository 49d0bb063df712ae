from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def corpus() -> Path:
    path = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
    if not path.is_dir():
        pytest.fail(f"the test corpus is missing: {path}")
    return path
