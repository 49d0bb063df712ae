"""Scan path benchmarks: per-APK analyse/match times and memory, compile and worker start-up
at each ruleset size, and scans per second through real Celery workers.

Run: PORTAL_VAR_DIR=var/bench .venv/bin/python bench/bench_scan.py \
         [--sizes 1000,100000,1000000] [--scans 120] [--workers 1,2] [--skip-workers] [--out F]
Writes bench/results/scan.json. Never asserted anywhere.

- Rulesets come from bench_ruleset.records (vendor mix: 1,000 behaviour rules, YARA capped at
  1% of the records so 10,000 at 1M, the rest hashes 60% / indicators 40%). Each size runs in
  its own forked process so its peak RSS is its own.
- Per APK over ../shared/corpus/apks: analyse_with_content and match times (median, p95) for
  the files that analyse; tracemalloc peak of analyse+match per APK (separate pass).
- Worker start-up at a size = a real ``celery worker`` boot (until "ready") + the compile
  time, since a worker compiles the current release on its first scan and keeps it.
- Scans per second: ``--scans`` scans queued in a fresh database under PORTAL_VAR_DIR, drained
  by 1 and 2 worker processes (concurrency 1 each); the ruleset is that database's current
  release (none: empty), so this measures the pipeline (broker, DB, analysis), not matching.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_ruleset import records as generate_records  # noqa: E402
from workers import start_worker, stop_workers, wait_ready  # noqa: E402

from engine.analyze import analyze_with_content  # noqa: E402
from engine.errors import AnalysisError  # noqa: E402
from engine.ruleset import compile_ruleset, match  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "apks"
RESULTS = ROOT / "bench" / "results" / "scan.json"


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _ms(values: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(values) * 1000, 2) if values else 0.0,
        "p95_ms": round(_pct(values, 0.95) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2) if values else 0.0,
    }


def _size_run(size: int, repeat: int, out: Any) -> None:
    rng = random.Random(size)
    t0 = time.perf_counter()
    recs = generate_records(size, 10_000, rng)
    generate_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ruleset = compile_ruleset(recs)
    compile_s = time.perf_counter() - t0
    del recs
    rss_after_compile = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    files = sorted(p for p in CORPUS.iterdir() if p.is_file())
    analyse: list[float] = []
    matching: list[float] = []
    failed = 0
    for _ in range(repeat):
        for path in files:
            t0 = time.perf_counter()
            try:
                features, content = analyze_with_content(path)
            except AnalysisError:
                failed += 1
                continue
            t1 = time.perf_counter()
            match(features, ruleset, content)
            t2 = time.perf_counter()
            analyse.append(t1 - t0)
            matching.append(t2 - t1)
    peaks: list[float] = []
    for path in files:
        tracemalloc.start()
        try:
            features, content = analyze_with_content(path)
            match(features, ruleset, content)
        except AnalysisError:
            pass
        peaks.append(tracemalloc.get_traced_memory()[1] / 1024 / 1024)
        tracemalloc.stop()
    out.put(
        {
            "signatures": size,
            "counts": ruleset.counts(),
            "generate_s": round(generate_s, 2),
            "compile_s": round(compile_s, 3),
            "apks_analysed": len(analyse) // max(1, repeat),
            "apks_refused": failed // max(1, repeat),
            "analyse": _ms(analyse),
            "match": _ms(matching),
            "analyse_plus_match": _ms([a + m for a, m in zip(analyse, matching, strict=True)]),
            "per_apk_peak_alloc_mb": {
                "median": round(statistics.median(peaks), 2),
                "max": round(max(peaks), 2),
            },
            "process_peak_rss_mb": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
            ),
            "rss_after_compile_mb": round(rss_after_compile, 1),
        }
    )


def _django_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PORTAL_VAR_DIR", str(ROOT / "var" / "bench"))
    env["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    return env


def worker_boot_seconds() -> float:
    env = _django_env()
    log = Path(env["PORTAL_VAR_DIR"]) / "bench-boot.log"
    log.unlink(missing_ok=True)
    proc = start_worker(env, log, f"boot-{os.getpid()}", "scans")
    try:
        return wait_ready(log)
    finally:
        stop_workers([proc])


def scans_per_second(n_scans: int, workers: int) -> dict[str, Any]:
    env = _django_env()
    os.environ.update({k: env[k] for k in ("PORTAL_VAR_DIR", "DJANGO_SETTINGS_MODULE")})
    import django

    django.setup()
    from django.core.management import call_command

    from portal.celery import app
    from scans.models import Sample, ScanJob, ScanStatus
    from scans.services import sample_ingest, scan_create

    call_command("migrate", verbosity=0)
    app.control.purge()
    samples = [sample_ingest(path=p)[0] for p in sorted(CORPUS.iterdir()) if p.stat().st_size]
    app.control.purge()
    ScanJob.objects.all().delete()
    var = Path(env["PORTAL_VAR_DIR"])
    logs = [var / f"bench-w{workers}-{i}.log" for i in range(workers)]
    for log in logs:
        log.unlink(missing_ok=True)
    procs = [
        start_worker(env, log, f"bench{workers}-{i}-{os.getpid()}", "scans")
        for i, log in enumerate(logs)
    ]
    try:
        for log in logs:
            wait_ready(log)
        started = time.perf_counter()
        ids = [scan_create(sample=samples[i % len(samples)], user=None).pk for i in range(n_scans)]
        while True:
            done = ScanJob.objects.filter(
                pk__in=ids, status__in=[ScanStatus.SUCCEEDED, ScanStatus.FAILED]
            ).count()
            if done == len(ids):
                break
            if time.perf_counter() - started > 1800:
                raise RuntimeError("scans did not drain in 30 minutes")
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
    finally:
        stop_workers(procs)
    return {
        "workers": workers,
        "scans": n_scans,
        "distinct_samples": Sample.objects.count(),
        "seconds": round(elapsed, 2),
        "scans_per_second": round(n_scans / elapsed, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the corpus")
    parser.add_argument("--scans", type=int, default=120)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--skip-workers", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]

    boot = None if args.skip_workers else worker_boot_seconds()
    per_size = []
    ctx = multiprocessing.get_context("fork")
    for size in sizes:
        queue: Any = ctx.Queue()
        proc = ctx.Process(target=_size_run, args=(size, args.repeat, queue))
        proc.start()
        result = queue.get()
        proc.join()
        if boot is not None:
            result["worker_startup_s"] = round(boot + result["compile_s"], 2)
        per_size.append(result)
        print(json.dumps(result), flush=True)

    throughput = []
    if not args.skip_workers:
        for n in (int(w) for w in args.workers.split(",") if w):
            throughput.append(scans_per_second(args.scans, n))
            print(json.dumps(throughput[-1]), flush=True)

    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "python": sys.version.split()[0],
                "cpus": os.cpu_count(),
                "corpus_files": len(list(CORPUS.iterdir())),
                "worker_boot_s": None if boot is None else round(boot, 2),
                "sizes": per_size,
                "throughput": throughput,
            },
            indent=2,
        )
    )
    print("wrote", args.out)


if __name__ == "__main__":
    main()
