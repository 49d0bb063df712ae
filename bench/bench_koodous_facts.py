"""Koodous androguard rules over stored facts vs over bytes, per worker (one process).

Run: .venv/bin/python bench/bench_koodous_facts.py [--samples 5000] [--repeat 3] [--out F]
     (or ``python bench/run.py koodous_facts``). Writes bench/results/koodous_facts.json; never
     asserted.

- Rules: every corpus rule in a file that imports androguard and that runs here (455), split
  by ``engine.ruleset.reads_bytes`` into the ones that read no bytes (242: conditions on
  facts only) and the others (strings, filesize, modules).
- Samples: the corpus APKs, analysed once; their ``android_globals`` facts (what unit packs
  and stored features keep) repeated to ``--samples``.
- ``facts_only``: ``FactsScanner.match`` over the facts-only rules (one yara-x evaluation of
  the conditions over no bytes, set_global included): what a hunt of such rules costs per
  stored sample. ``set_global_only``: the part of it spent handing the facts to yara-x.
- ``bytes``: ``engine.ruleset.match`` over the same rules with the app's content in memory
  (the whole file from the page cache, manifest, every DEX): what a hunt costs today.
- ``bytes_all``: the same for all 455 running Koodous rules.
- samples/s is the median of ``--repeat`` runs, single process.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.analyze import analyze_with_content  # noqa: E402
from engine.errors import AnalysisError  # noqa: E402
from engine.features import AppContent, AppFeatures, RuleRecord  # noqa: E402
from engine.importers import parse_path  # noqa: E402
from engine.kinds import _yara_source  # noqa: E402
from engine.ruleset import FactsScanner, android_globals, compile_ruleset, match  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
RESULTS = ROOT / "bench" / "results" / "koodous_facts.json"


def koodous_records() -> list[RuleRecord]:
    records: list[RuleRecord] = []
    root = CORPUS / "yara"
    for path in sorted(root.rglob("*.yar*")):
        parsed = _yara_source.parse(path.read_text(encoding="utf-8", errors="replace"))
        if not any(m == "androguard" for m, _ in parsed.imports):
            continue
        for candidate in parse_path(path, root=root):
            if candidate.ok:
                n = len(records) + 1
                records.append(
                    RuleRecord(n, 1, f"Andr.K.F-{n}-1", "yara", candidate.body, "suspicious")
                )
    return records


def apps() -> list[tuple[AppFeatures, AppContent]]:
    found = []
    for path in sorted((CORPUS / "apks").iterdir()):
        try:
            found.append(analyze_with_content(path))
        except AnalysisError:
            continue
    return found


def rate(run: Any, samples: int, repeat: int) -> float:
    rates = []
    for _ in range(repeat):
        started = time.perf_counter()
        run(samples)
        rates.append(samples / (time.perf_counter() - started))
    return statistics.median(rates)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    records = koodous_records()
    everything = compile_ruleset(records)
    facts_only = compile_ruleset(
        [r for i, r in enumerate(records) if i not in everything.yara_byte_readers]
    )
    corpus = apps()
    facts = [android_globals(f) for f, _ in corpus]
    scanner = FactsScanner(facts_only)
    print(f"{len(records)} Koodous rules run, {len(facts_only)} read no bytes; {len(corpus)} apps")

    def facts_run(n: int) -> None:
        for i in range(n):
            scanner.match(facts[i % len(facts)])

    def set_global_run(n: int) -> None:
        for i in range(n):
            scanner.scanner.set_global("android", facts[i % len(facts)])

    def bytes_run(ruleset: Any) -> Any:
        def run(n: int) -> None:
            for i in range(n):
                features, content = corpus[i % len(corpus)]
                match(features, ruleset, content, first_hit=True)

        return run

    # the bytes paths are slower: a tenth of the samples gives a steady figure
    byte_samples = max(len(corpus), args.samples // 10)
    figures = {
        "facts_only": rate(facts_run, args.samples, args.repeat),
        "set_global_only": rate(set_global_run, args.samples, args.repeat),
        "bytes": rate(bytes_run(facts_only), byte_samples, args.repeat),
        "bytes_all": rate(bytes_run(everything), byte_samples, args.repeat),
    }
    result = {
        "bench": "koodous_facts",
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "rules_running": len(records),
        "rules_facts_only": len(facts_only),
        "apps": len(corpus),
        "samples": args.samples,
        "samples_per_s_per_worker": {k: round(v) for k, v in figures.items()},
        "goal_samples_per_s": 50000,
    }
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
