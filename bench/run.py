"""Run every bench/bench_*.py script in turn; each writes its JSON under bench/results/.

Benchmarks measure; they never assert. Quote medians and ratios from one run, since the
machines are shared and noisy. Pass script names to run only some: `python bench/run.py analyze`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in argv]
    (HERE / "results").mkdir(exist_ok=True)
    failed = []
    for script in scripts:
        print(f"=== {script.name}", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        print(f"=== {script.name}: exit {code} in {time.monotonic() - started:.1f} s", flush=True)
        if code:
            failed.append(script.name)
    print("results in", HERE / "results")
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
