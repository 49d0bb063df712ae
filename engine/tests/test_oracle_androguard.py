"""Our analysis agrees with androguard's on every corpus APK androguard can read.

androguard is the reference parser researchers know; we do not run it in the product (it is
slower and lacks the v3 lineage, see docs/decisions.md), but it keeps our own parsers honest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.analyze import analyze
from engine.errors import AnalysisError

CORPUS_APKS = sorted((Path(__file__).resolve().parents[2].parent / "shared/corpus/apks").glob("*"))


def _androguard_view(path: Path) -> tuple[str | None, set[str]] | None:
    from androguard.core.apk import APK
    from loguru import logger

    logger.disable("androguard")
    try:
        apk = APK(str(path))
        package = apk.get_package()
        certs = {
            c.sha256.hex() if isinstance(c.sha256, bytes) else str(c.sha256).lower()
            for c in apk.get_certificates()
        }
    except Exception:
        return None  # androguard cannot read it; our own tests cover these files
    return package, certs


_REFERENCE = {p: _androguard_view(p) for p in CORPUS_APKS}
_COMPARABLE = sorted(p for p, ref in _REFERENCE.items() if ref is not None and ref[0])


def test_androguard_reads_most_of_the_corpus() -> None:
    # the comparison below means something only if it covers most files
    assert len(_COMPARABLE) >= 30


@pytest.mark.parametrize("path", _COMPARABLE, ids=lambda p: p.name)
def test_package_and_signers_agree_with_androguard(path: Path) -> None:
    reference = _REFERENCE[path]
    assert reference is not None
    package, certs = reference
    try:
        ours = analyze(path)
    except AnalysisError as exc:
        pytest.fail(f"androguard reads {path.name} (package {package}) but we refuse it: {exc}")
    assert ours.manifest.package == package
    # androguard reports the signers of the highest scheme it verifies; ours lists every
    # scheme's signers, so theirs must be among ours.
    assert certs <= {c.sha256 for c in ours.certificates}
