"""Time engine.analyze over the corpus APKs; write bench/results/analyze.json.

    .venv/bin/python bench/bench_analyze.py [--runs N] [--corpus DIR]

Each file is analysed once to warm caches, then N times. Peak RSS is the process's high-water
mark after that file (ru_maxrss), so it only grows; it shows which file raised it.
Results are for people; tests never assert them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.analyze import analyze  # noqa: E402
from engine.errors import AnalysisError  # noqa: E402


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "analyze.json")
    args = parser.parse_args()

    files = sorted(p for p in (args.corpus / "apks").iterdir() if p.is_file())
    per_file = []
    medians: list[float] = []
    for path in files:
        outcome = "ok"
        try:
            analyze(path)
        except AnalysisError as exc:
            outcome = f"AnalysisError: {exc.message}"
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            with contextlib.suppress(AnalysisError):
                analyze(path)
            times.append((time.perf_counter() - start) * 1000)
        med = statistics.median(times)
        medians.append(med)
        per_file.append(
            {
                "file": path.name,
                "bytes": path.stat().st_size,
                "outcome": outcome,
                "median_ms": round(med, 2),
                "p95_ms": round(_p95(times), 2),
                "peak_rss_mib": round(_rss_mib(), 1),
            }
        )
        print(f"{path.name[:50]:50} {med:8.1f} ms  {outcome[:60]}")
    result = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "runs_per_file": args.runs,
        "files": len(files),
        "overall": {
            "median_ms": round(statistics.median(medians), 2),
            "p95_ms": round(_p95(medians), 2),
            "max_ms": round(max(medians), 2),
            "peak_rss_mib": round(_rss_mib(), 1),
        },
        "per_file": per_file,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["overall"]))


if __name__ == "__main__":
    main()
