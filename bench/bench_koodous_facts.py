"""Koodous androguard rules over stored facts: per worker, through a real Celery worker.

Run: .venv/bin/python bench/bench_koodous_facts.py [--samples 50000] [--before-samples 2000]
         [--repeat 3] [--chunk 500] [--var /tmp/bench-koodous-facts] [--out F] [--no-celery]
     (or ``python bench/run.py koodous_facts``). Writes bench/results/koodous_facts.json; never
     asserted.

- Rules: every corpus rule in a file that imports androguard and that runs here, split by
  ``engine.ruleset.reads_bytes``; the hunts run the ones that read no bytes (242).
- ``in_process`` (one process, no database; the reference): the 37 analysable corpus apps'
  stored summaries (features less the DEX tables, as ``Sample.features`` keeps them),
  repeated to ``--samples``:
  - ``per_sample_yara``: ``summary → AppFeatures → android_globals → FactsScanner.match``,
    what a hunt chunk did per sample before the batch (``sample_match``);
  - ``batch_repeated``: ``engine.facts_batch.summary_facts`` + ``FactsBatch.match`` per 500
    samples (a chunk) over the repeated summaries: their values are answered once, then
    remembered;
  - ``batch_unique``: the same over summaries made unique per copy (package, label, every
    component name and URL get a per-copy suffix; permissions and filters stay as they are):
    every app-specific value is new, the worst case for the value cache;
  - ``batch_unique_stored_facts``: the unique rows' compact facts as a row keeps them
    (``Sample.facts``, ``engine.facts_summary.stored_facts``) as JSON text: ``json.loads`` +
    ``FactsBatch.match`` per 5,000 (a facts hunt's chunk), what a chunk now does per sample
    (with Python's cycle collector on, which a chunk pauses: ``scans.hunt_match``);
  - ``segments_unique``: the unique rows' facts as segments (``engine.facts_segment``, one per
    block of 4,096 ids, encoded beforehand as a hunt keeps them): ``Segment.decode`` +
    ``segment_match`` per block, what a chunk now does per block;
  - ``batch_eval_only``: ``FactsBatch.match`` alone on ready facts (repeated);
  - ``bytes``/``bytes_all``: ``match`` with the app's content in memory, for scale.
- ``celery``: a fresh database, broker and media under ``--var`` (wiped first). The corpus is
  ingested and scanned once (features and compact facts stored); rows are repeated with fake
  SHA-256s pointing at the same files, their summaries made unique as in ``batch_unique`` and
  their compact facts stored with them, as a scan stores them. The 242 rules become
  draft yara signatures; one hunt over them is timed from ``retrohunt_create`` to finished on
  one worker (concurrency 1, prefetch 1), ``--repeat`` times (the batched path once more
  before, timed apart as ``first_hunt``: it builds the blocks' facts segments, which the
  later hunts read; ``scans.hunt_match``): first sample by sample
  (``RETROHUNT_FACTS_BATCH = False``) over ``--before-samples`` rows, then batched over
  ``--samples`` rows (chunks of ``--chunk``, and 10 times that for the batched facts hunt over
  current samples: ``scans.retrohunts.FACTS_CHUNK_FACTOR``). ``chunk_samples_per_s``
  divides the samples by the chunks' own run time (claim to commit), without the hunt's start
  (compiling the rules) and the broker's latency; ``steady_chunk_samples_per_s`` leaves out
  the worker's first chunk too, which compiles the hunt's rules (``hunt_plan``, the batch):
  the rate once a hunt is under way, what a million-app hunt runs at.
  ``one_process``: the same hunts with every chunk run in this process (``retrohunt_run_sync``,
  database included, no broker).
- samples/s are medians of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from workers import spawn, stop_workers, wait_ready  # noqa: E402

from engine.analyze import analyze_with_content  # noqa: E402
from engine.errors import AnalysisError  # noqa: E402
from engine.facts_batch import FactsBatch, summary_facts  # noqa: E402
from engine.facts_segment import (  # noqa: E402
    SEGMENT_IDS,
    Segment,
    SegmentPlan,
    positions_mask,
    segment_encode,
    segment_match,
)
from engine.facts_summary import stored_facts  # noqa: E402
from engine.features import AppContent, AppFeatures, RuleRecord  # noqa: E402
from engine.importers import parse_path  # noqa: E402
from engine.kinds import _yara_source  # noqa: E402
from engine.ruleset import FactsScanner, android_globals, compile_ruleset, match  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
RESULTS = ROOT / "bench" / "results" / "koodous_facts.json"
CHUNK = 500
FACTS_CHUNK = 5000  # a facts hunt's chunk over current samples (scans.retrohunts)


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


def facts_only_records(records: list[RuleRecord]) -> list[RuleRecord]:
    """The records that read no bytes (``reads_bytes`` says no)."""
    everything = compile_ruleset(records)
    return [r for i, r in enumerate(everything.records) if i not in everything.yara_byte_readers]


def apps() -> list[tuple[AppFeatures, AppContent]]:
    found = []
    for path in sorted((CORPUS / "apks").iterdir()):
        try:
            found.append(analyze_with_content(path))
        except AnalysisError:
            continue
    return found


def summary(data: dict[str, Any]) -> dict[str, Any]:
    """What ``Sample.features`` keeps (``scans.storage.features_summary``)."""
    out = {k: v for k, v in data.items() if k not in ("strings", "types", "methods")}
    out["parts"] = [summary(p) for p in data.get("parts") or ()]
    return out


def unique(data: dict[str, Any], n: int) -> dict[str, Any]:
    """``data`` with its app-specific strings made this copy's own (permissions and intent
    filters stay shared, as they are between real apps)."""
    out = copy.deepcopy(data)
    manifest = out.get("manifest") or {}
    if manifest.get("package"):
        manifest["package"] += f".u{n}"
    if manifest.get("app_label"):
        manifest["app_label"] += f" {n}"
    for comp in manifest.get("components") or ():
        if comp.get("name"):
            comp["name"] += f"U{n}"
    out["url_strings"] = [f"{u}/u{n}" for u in out.get("url_strings") or ()]
    indicators = out.get("indicators") or {}
    if indicators.get("urls"):
        indicators["urls"] = [f"{u}/u{n}" for u in indicators["urls"]]
    return out


def rate(run: Any, samples: int, repeat: int) -> float:
    rates = []
    for _ in range(repeat):
        started = time.perf_counter()
        run(samples)
        rates.append(samples / (time.perf_counter() - started))
    return statistics.median(rates)


def in_process(
    records: list[RuleRecord], corpus: list[tuple[AppFeatures, AppContent]], args: Any
) -> dict[str, Any]:
    everything = compile_ruleset(records)
    facts_only = compile_ruleset(facts_only_records(records))
    summaries = [summary(f.to_dict()) for f, _ in corpus]
    scanner = FactsScanner(facts_only)
    n = args.samples

    def per_sample(count: int) -> None:
        for i in range(count):
            scanner.match(android_globals(AppFeatures.from_dict(summaries[i % len(summaries)])))

    def batch_over(rows: list[dict[str, Any]], fresh: bool) -> Any:
        def run(count: int) -> None:
            if fresh:  # every value new to this run: no answer remembered from the last
                for entry in warm.by_fact.values():
                    entry.answers.clear()
            for start in range(0, count, CHUNK):
                warm.match([summary_facts(s) for s in rows[start : min(count, start + CHUNK)]])

        return run

    warm = FactsBatch(facts_only.records, facts_only.yara_namespaces.values())
    repeated = [summaries[i % len(summaries)] for i in range(n)]
    uniques = [unique(summaries[i % len(summaries)], i) for i in range(n)]
    ready = [summary_facts(s) for s in repeated]

    stored = [json.dumps(stored_facts(s)) for s in uniques]

    def stored_run(count: int) -> None:
        for entry in warm.by_fact.values():
            entry.answers.clear()
        for start in range(0, count, FACTS_CHUNK):
            warm.match([json.loads(t) for t in stored[start : min(count, start + FACTS_CHUNK)]])

    plan = SegmentPlan(warm)
    segments = [
        segment_encode(
            block,
            list(range(block * SEGMENT_IDS, min(n, (block + 1) * SEGMENT_IDS))),
            [json.loads(t) for t in stored[block * SEGMENT_IDS : (block + 1) * SEGMENT_IDS]],
        )
        for block in range((n + SEGMENT_IDS - 1) // SEGMENT_IDS)
    ]

    def segments_run(count: int) -> None:
        for data in segments[: (count + SEGMENT_IDS - 1) // SEGMENT_IDS]:
            segment = Segment.decode(data)
            segment_match(plan, segment, positions_mask(list(segment.positions)))

    def eval_only(count: int) -> None:
        for start in range(0, count, CHUNK):
            warm.match(ready[start : min(count, start + CHUNK)])

    def bytes_run(ruleset: Any) -> Any:
        def run(count: int) -> None:
            for i in range(count):
                features, content = corpus[i % len(corpus)]
                match(features, ruleset, content, first_hit=True)

        return run

    slow = max(len(corpus), min(n, 3000) // 10)
    figures = {
        "per_sample_yara": rate(per_sample, min(n, 3000), args.repeat),
        "batch_repeated": rate(batch_over(repeated, False), n, args.repeat),
        "batch_unique": rate(batch_over(uniques, True), n, args.repeat),
        "batch_unique_stored_facts": rate(stored_run, n, args.repeat),
        "segments_unique": rate(segments_run, n, args.repeat),
        "batch_eval_only": rate(eval_only, n, args.repeat),
    }
    if not args.no_bytes:
        figures["bytes"] = rate(bytes_run(facts_only), slow, args.repeat)
        figures["bytes_all"] = rate(bytes_run(everything), slow, args.repeat)
    return {
        "rules_running": len(records),
        "rules_facts_only": len(facts_only),
        "rules_batched": len(warm.rules),
        "rules_left_to_yara_x": len(warm.rest),
        "predicates": len(warm.preds),
        "apps": len(corpus),
        "samples": n,
        "samples_per_s": {k: round(v) for k, v in figures.items()},
    }


# --------------------------------------------------------------------------------------------
# through Celery

WORKER = """
import django
django.setup()
from django.conf import settings
settings.RETROHUNT_FACTS_BATCH = {batch}
from portal.celery import app
app.worker_main(["worker", "-Q", "hunts", "--concurrency=1", "--prefetch-multiplier=1",
                 "--loglevel=INFO", "-n", "{name}@%h", "--without-mingle", "--without-gossip"])
"""


def celery_setup(records: list[RuleRecord]) -> dict[str, Any]:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from portal.celery import app
    from portal.models import User
    from scans.models import Sample
    from scans.rulesets import EMPTY
    from scans.services import sample_ingest, scan_run
    from threats.models import Category, Family, Severity
    from threats.services import signature_create

    app.control.purge()
    for path in sorted((CORPUS / "apks").iterdir()):
        if path.stat().st_size:
            _, scan, _ = sample_ingest(path=path, label="clean")
            scan_run(scan_id=scan.pk, ruleset_provider=lambda: EMPTY)  # features stored
    app.control.purge()
    facts_only = facts_only_records(records)
    author = User.objects.create_user("bench-author")
    family = Family.objects.create(
        name="Bench", category=Category.RISKWARE, severity=Severity.SUSPICIOUS
    )
    ids, refused = [], 0
    for record in facts_only:
        try:
            ids.append(
                signature_create(actor=author, kind="yara", body=record.body, family=family).pk
            )
        except Exception:  # a duplicate body, or one the portal refuses
            refused += 1
    originals = Sample.objects.count()
    return {"signatures": len(ids), "refused": refused, "ids": ids, "originals": originals}


def grow(total: int, originals_count: int) -> int:
    """Repeat the stored rows up to ``total``, each with unique app-specific strings."""
    from django.utils import timezone

    from scans.models import Label, Sample

    originals = [
        o for o in Sample.objects.order_by("id")[:originals_count] if o.features_file and o.features
    ]
    have = Sample.objects.count()
    rows = []
    now = timezone.now()
    for n in range(have, total):
        o = originals[n % len(originals)]
        rows.append(
            Sample(
                sha256=hashlib.sha256(f"{o.sha256}:{n}".encode()).hexdigest(),
                md5=o.md5,
                sha1=o.sha1,
                size=o.size,
                file=o.file.name,
                original_name=o.original_name,
                label=Label.CLEAN,
                package=o.package,
                app_label=o.app_label,
                features=(features := unique(o.features or {}, n)),
                facts=stored_facts(features),  # as a scan stores them (scans.storage)
                features_file=o.features_file,
                features_engine_version=o.features_engine_version,
                last_seen=now,
            )
        )
        if len(rows) >= 5000:
            Sample.objects.bulk_create(rows, batch_size=1000)
            rows = []
    Sample.objects.bulk_create(rows, batch_size=1000)
    return Sample.objects.count()


def celery_hunt(ids: list[int], timeout: float) -> dict[str, Any]:
    from scans.models import HuntStatus
    from scans.retrohunts import retrohunt_create

    started = time.perf_counter()
    hunt = retrohunt_create(user=None, signature_ids=ids)
    while True:
        hunt.refresh_from_db()
        if hunt.is_done:
            break
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"hunt {hunt.pk} not done in {timeout} s")
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    if hunt.status != HuntStatus.FINISHED:
        raise RuntimeError(f"hunt {hunt.pk} {hunt.status}: {hunt.error}")
    timed = sorted(
        (c.started_at, (c.finished_at - c.started_at).total_seconds(), c.sample_count)
        for c in hunt.chunks.all()
        if c.started_at and c.finished_at
    )
    chunk_seconds = sum(seconds for _, seconds, _ in timed)
    # without the worker's first chunk, which compiles the hunt's rules (hunt_plan, the batch)
    steady = (sum(n for _, _, n in timed[1:]), sum(seconds for _, seconds, _ in timed[1:]))
    return {
        "seconds": elapsed,
        "chunks": hunt.chunks_total,
        "chunk_seconds": chunk_seconds,
        "steady": steady,
        "scanned": hunt.scanned,
        "errors": hunt.errors,
        "matches": hunt.match_count,
    }


def sync_runs(ids: list[int], batch: bool, args: Any) -> dict[str, Any]:
    """The same hunt with every chunk in this process (``retrohunt_run_sync``): no broker."""
    from django.conf import settings

    from scans.retrohunts import retrohunt_run_sync

    settings.RETROHUNT_FACTS_BATCH = batch
    rates = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        hunt = retrohunt_run_sync(user=None, signature_ids=ids)
        rates.append(hunt.scanned / (time.perf_counter() - started))
    settings.RETROHUNT_FACTS_BATCH = True
    return {
        "path": "batch" if batch else "per_sample",
        "samples": hunt.scanned,
        "samples_per_s_one_process": round(statistics.median(rates)),
    }


def celery_runs(env: dict[str, str], var: Path, ids: list[int], batch: bool, args: Any) -> Any:
    from django.conf import settings

    # the hunt is created here: its chunks are cut for the path the worker takes
    settings.RETROHUNT_FACTS_BATCH = batch
    name = f"bench-koodous-{'batch' if batch else 'each'}-{os.getpid()}"
    log = var / f"{name}.log"
    code = WORKER.format(batch=batch, name=name)
    proc = spawn([sys.executable, "-c", code], env, log)
    try:
        wait_ready(log, proc=proc)
        # the first batched hunt builds the blocks' facts segments (scans.hunt_match): timed
        # apart; the runs after it read them, as every later hunt does
        first = celery_hunt(ids, args.timeout) if batch else None
        runs = [celery_hunt(ids, args.timeout) for _ in range(args.repeat)]
    finally:
        stop_workers([proc])
        settings.RETROHUNT_FACTS_BATCH = True
    walls = [r["scanned"] / r["seconds"] for r in runs]
    chunks = [r["scanned"] / r["chunk_seconds"] for r in runs if r["chunk_seconds"]]
    steady = [r["steady"][0] / r["steady"][1] for r in runs if r["steady"][1]]
    return {
        "path": "segments" if batch else "per_sample",
        **(
            {
                "first_hunt_seconds": round(first["seconds"], 2),
                "first_hunt_samples_per_s_per_worker": round(first["scanned"] / first["seconds"]),
            }
            if first
            else {}
        ),
        "samples": runs[0]["scanned"],
        "chunks": runs[0]["chunks"],
        "errors": runs[0]["errors"],
        "matches": runs[0]["matches"],
        "hunt_seconds": [round(r["seconds"], 2) for r in runs],
        "samples_per_s_per_worker": round(statistics.median(walls)),
        "chunk_samples_per_s_per_worker": round(statistics.median(chunks)) if chunks else None,
        "steady_chunk_samples_per_s_per_worker": (
            round(statistics.median(steady)) if steady else None
        ),
    }


def celery(records: list[RuleRecord], args: Any) -> dict[str, Any]:
    shutil.rmtree(args.var, ignore_errors=True)
    args.var.mkdir(parents=True)
    env = dict(os.environ)
    for name in ("DATABASE_URL", "CELERY_BROKER_URL"):
        env.pop(name, None)  # this bench's own database and broker under --var
    env.update(
        PORTAL_VAR_DIR=str(args.var),
        DJANGO_SETTINGS_MODULE="portal.settings",
        RETROHUNT_CHUNK_SIZE=str(args.chunk),
        RETROHUNT_TEST_DELAY_SECONDS="0",
        PYTHONPATH=str(ROOT),
    )
    os.environ.clear()
    os.environ.update(env)
    setup = celery_setup(records)
    ids = setup.pop("ids")
    originals = setup["originals"]
    runs, sync = [], []
    if args.before_samples:
        grow(args.before_samples, originals)
        runs.append(celery_runs(env, args.var, ids, False, args))
        sync.append(sync_runs(ids, False, args))
        print(json.dumps([runs[-1], sync[-1]]), flush=True)
    grow(args.samples, originals)
    runs.append(celery_runs(env, args.var, ids, True, args))
    sync.append(sync_runs(ids, True, args))
    print(json.dumps([runs[-1], sync[-1]]), flush=True)
    return {"chunk_size": args.chunk, "workers": 1, **setup, "runs": runs, "one_process": sync}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--before-samples", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=CHUNK)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--var", type=Path, default=Path("/tmp/bench-koodous-facts"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-celery", action="store_true")
    parser.add_argument("--no-bytes", action="store_true")
    args = parser.parse_args()

    records = koodous_records()
    corpus = apps()
    result: dict[str, Any] = {
        "bench": "koodous_facts",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "goal_samples_per_s_per_worker": 50_000,
        "goal_aggregate_16_workers_per_worker": 3_125,
    }
    result["in_process"] = in_process(records, corpus, args)
    print(json.dumps(result["in_process"]), flush=True)
    if not args.no_celery:
        result["celery"] = celery(records, args)
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
