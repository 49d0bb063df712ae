"""How much cheaper read_content is than a full analysis; write bench/results/analyze_ratio.json.

    .venv/bin/python bench/bench_analyze_ratio.py [--runs N] [--corpus DIR] [--file NAME]

Retro-hunts call ``engine.analyze.read_content`` when a sample's features are stored already;
it should cost well under half of ``analyze_with_content`` on the same file. This was a test
assertion (engine/tests/test_analyze.py) until issue 15: a wall-clock ratio on a shared, busy
machine is a measurement, not a check. Both are warmed once, then timed N times each,
interleaved so that a burst of load hits both alike. Results are for people; nothing asserts.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.analyze import analyze_with_content, read_content  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--file", default="InsecureBankv2.apk")
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench" / "results" / "analyze_ratio.json"
    )
    args = parser.parse_args()

    path = args.corpus / "apks" / args.file
    analyze_with_content(path)
    read_content(path)  # warm both
    analysed: list[float] = []
    read: list[float] = []
    for _ in range(args.runs):
        start = time.perf_counter()
        analyze_with_content(path)
        analysed.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        read_content(path)
        read.append((time.perf_counter() - start) * 1000)
    analyse_ms, read_ms = statistics.median(analysed), statistics.median(read)
    result = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "file": args.file,
        "runs": args.runs,
        "analyze_with_content_median_ms": round(analyse_ms, 2),
        "read_content_median_ms": round(read_ms, 2),
        # the old test asked for read / analyse < 0.5
        "read_over_analyse": round(read_ms / analyse_ms, 3),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
