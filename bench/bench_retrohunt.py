"""Retro-hunt throughput through real Celery workers on queue ``hunts``.

Run: .venv/bin/python bench/bench_retrohunt.py [--samples 10000] [--workers 1,2]
         [--hash-rules 1000] [--chunk 500] [--var /tmp/bench-retrohunt] [--out F]
     (or ``python bench/run.py retrohunt``). Writes bench/results/retrohunt.json; never asserted.

- A fresh database, broker and media folder under ``--var`` (PORTAL_VAR_DIR; default
  /tmp/bench-retrohunt, wiped first): nothing is written into the repository.
- The corpus (../shared/corpus/apks) is stored once through ``sample_ingest`` and scanned once
  (features stored, as after a normal upload). It is then repeated to ``--samples`` rows:
  each extra ``Sample`` row points at the same stored file (no copy, no link) with a distinct
  *fake* SHA-256 (sha256 of "<real sha>:<n>") and the original's stored features. That is
  fine for a throughput bench: a yara hunt with stored features never re-hashes the file.
- Three hunts per worker count: one YARA rule, twice (Yara-Rules' ``android_meterpreter``,
  slow by its regex, and ``android_metasploit``, four literals; unsaved), and 1,000 hash
  signatures (drafts). 1 then 2 worker processes (concurrency 1 each), started before the
  hunt and ready; time = from ``retrohunt_create`` to the hunt finished.
- ``setup.yara_alone``: yara-x alone over one pass of the corpus's bytes in memory, per rule:
  the ceiling of a yara hunt on this machine. ``setup.units_mb_on_disk``: the unit packs
  (engine/units.py) the scans wrote for the 39 files.
- samples/s = samples covered / time; MB/s = bytes of the stored files covered / time; "per
  worker" divides by the worker count.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from workers import start_worker, stop_workers, wait_ready  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
RESULTS = ROOT / "bench" / "results" / "retrohunt.json"
RULE_FILE = CORPUS / "yara" / "Yara-Rules" / "Android" / "Android_Metasploit.yar"


def _rule(name: str) -> str:
    """One rule of Android_Metasploit.yar: ``android_meterpreter`` (short strings and the
    regex /;.Sk/, whose 2-byte atom "Sk" is everywhere) or ``android_metasploit`` (four
    long literals): the slow and the usual shape of a yara rule."""
    text = RULE_FILE.read_text()
    split = text.index("rule android_metasploit")
    return text[:split] if name == "android_meterpreter" else text[split:]


YARA_RULES = ("android_meterpreter", "android_metasploit")


def _yara_alone() -> dict[str, Any]:
    """What yara-x alone needs for one pass over the corpus's bytes (raw files, manifests,
    DEX; already in memory): the ceiling of a hunt for each rule, whatever the portal does."""
    import statistics

    import yara_x

    from engine.analyze import read_content
    from engine.errors import AnalysisError

    raw, units = [], []
    for path in sorted((CORPUS / "apks").iterdir()):
        if not path.stat().st_size:
            continue
        raw.append(path.read_bytes())
        try:
            content = read_content(path)
        except AnalysisError:
            continue
        units += [content.manifest, *(data for _, data in content.dex)]
    stored = sum(map(len, raw))
    out: dict[str, Any] = {
        "stored_mb": round(stored / 1e6, 1),
        "units_mb": round(sum(map(len, units)) / 1e6, 1),
    }
    for name in YARA_RULES:
        scanner = yara_x.Scanner(yara_x.compile(_rule(name)))
        times = []
        for _ in range(7):
            started = time.perf_counter()
            for data in (*raw, *units):
                scanner.scan(data)
            times.append(time.perf_counter() - started)
        median = statistics.median(times)
        out[name] = {
            "pass_ms": round(median * 1000, 1),
            "stored_mb_per_s": round(stored / 1e6 / median),
        }
    return out


def _setup(var: Path, samples: int, hash_rules: int) -> dict[str, Any]:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.utils import timezone

    from portal.celery import app
    from portal.models import User
    from scans.models import Label, Sample
    from scans.rulesets import EMPTY
    from scans.services import sample_ingest, scan_run
    from threats.models import Category, Family, Severity
    from threats.services import signature_create

    app.control.purge()
    originals = []
    for path in sorted((CORPUS / "apks").iterdir()):
        if not path.stat().st_size:
            continue
        sample, scan, _ = sample_ingest(path=path, label="clean")
        scan_run(scan_id=scan.pk, ruleset_provider=lambda: EMPTY)  # features stored
        sample.refresh_from_db()
        originals.append(sample)
    app.control.purge()  # the scans queued on ingest: done above, in this process
    rows = []
    now = timezone.now()
    for n in range(len(originals), samples):
        o = originals[n % len(originals)]
        rows.append(
            Sample(
                sha256=hashlib.sha256(f"{o.sha256}:{n}".encode()).hexdigest(),
                md5=o.md5,
                sha1=o.sha1,
                size=o.size,
                file=o.file.name,  # the same stored file
                original_name=o.original_name,
                label=Label.CLEAN,
                package=o.package,
                app_label=o.app_label,
                features=o.features,
                features_file=o.features_file,
                features_engine_version=o.features_engine_version,
                last_seen=now,
            )
        )
    Sample.objects.bulk_create(rows, batch_size=1000)
    author = User.objects.create_user("bench-author")
    family = Family.objects.create(
        name="Bench", category=Category.RISKWARE, severity=Severity.SUSPICIOUS
    )
    started = time.perf_counter()
    hash_ids = [
        signature_create(
            actor=author,
            kind="hash",
            body={
                "algorithm": "sha256",
                "target": "apk",
                "value": hashlib.sha256(f"bench-{i}".encode()).hexdigest(),
            },
            family=family,
        ).pk
        for i in range(hash_rules)
    ]
    return {
        "distinct_files": len(originals),
        "samples": Sample.objects.count(),
        "bytes": sum(Sample.objects.values_list("size", flat=True)),
        "hash_ids": hash_ids,
        "hash_signatures_create_s": round(time.perf_counter() - started, 1),
    }


def _hunt(kind: str, hash_ids: list[int], timeout: float) -> dict[str, Any]:
    from scans.models import HuntStatus
    from scans.retrohunts import retrohunt_create

    started = time.perf_counter()
    if kind in YARA_RULES:
        hunt = retrohunt_create(user=None, rule={"kind": "yara", "body": _rule(kind)})
    else:
        hunt = retrohunt_create(user=None, signature_ids=hash_ids)
    while True:
        hunt.refresh_from_db()
        if hunt.is_done:
            break
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"hunt {hunt.pk} not done in {timeout} s")
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    if hunt.status != HuntStatus.FINISHED:
        raise RuntimeError(f"hunt {hunt.pk} {hunt.status}: {hunt.error}")
    workers = set(hunt.chunks.values_list("worker_name", flat=True))
    return {
        "hunt": hunt.pk,
        "seconds": round(elapsed, 2),
        "scanned": hunt.scanned,
        "errors": hunt.errors,
        "bytes": hunt.bytes_scanned,
        "matches": hunt.match_count,
        "chunks": hunt.chunks_total,
        "workers_seen": len(workers),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--hash-rules", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--var", type=Path, default=Path("/tmp/bench-retrohunt"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

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
    )
    os.environ.clear()
    os.environ.update(env)
    setup = _setup(args.var, args.samples, args.hash_rules)
    hash_ids = setup.pop("hash_ids")
    setup["units_mb_on_disk"] = round(
        sum(f.stat().st_size for f in (args.var / "media" / "units").rglob("*") if f.is_file())
        / 1e6,
        1,
    )
    setup["yara_alone"] = _yara_alone()
    print(json.dumps(setup), flush=True)

    runs = []
    for n in (int(w) for w in args.workers.split(",") if w):
        logs = [args.var / f"worker-{n}-{i}.log" for i in range(n)]
        procs = [
            start_worker(env, log, f"bench-hunt{n}-{i}-{os.getpid()}", "hunts")
            for i, log in enumerate(logs)
        ]
        try:
            for log in logs:
                wait_ready(log)
            for kind in (*YARA_RULES, "hash"):
                result = _hunt(kind, hash_ids, args.timeout)
                mb = result["bytes"] / 1e6
                result.update(
                    workers=n,
                    kind=kind,
                    rules=f"1 yara ({kind})" if kind in YARA_RULES else f"{len(hash_ids)} hash",
                    samples_per_s=round(result["scanned"] / result["seconds"], 1),
                    mb_per_s=round(mb / result["seconds"], 1),
                    samples_per_s_per_worker=round(result["scanned"] / result["seconds"] / n, 1),
                    mb_per_s_per_worker=round(mb / result["seconds"] / n, 1),
                )
                runs.append(result)
                print(json.dumps(result), flush=True)
        finally:
            stop_workers(procs)

    speedup = {}
    for kind in (*YARA_RULES, "hash"):
        by_n = {r["workers"]: r for r in runs if r["kind"] == kind}
        if 1 in by_n and 2 in by_n:
            speedup[kind] = round(by_n[1]["seconds"] / by_n[2]["seconds"], 2)
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "python": sys.version.split()[0],
                "cpus": os.cpu_count(),
                "chunk_size": args.chunk,
                "setup": setup,
                "runs": runs,
                "speedup_1_to_2_workers": speedup,
                "note": "repeated rows carry fake SHA-256s and point at the same stored files",
            },
            indent=2,
        )
    )
    print("wrote", args.out, json.dumps(speedup))


if __name__ == "__main__":
    main()
