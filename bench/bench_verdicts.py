"""Current-verdicts benchmark (issue 14): the cost of bringing stored samples' verdicts to a
new release (``scans.verdicts.verdicts_sync``), per release.

    python bench/run.py verdicts
    .venv/bin/python bench/bench_verdicts.py [--samples 10000] [--added 1000] [--hitting 200]
        [--removed 100] [--late 500] [--runs 3] [--var-dir DIR] [--out PATH]

Writes bench/results/verdicts.json. Measures, never asserts. Everything runs under its own
folder (``--var-dir``, else $PORTAL_VAR_DIR/verdicts, else /tmp/bench-verdicts-<uid>), one
fresh SQLite database (WAL) per set-up, nobody else's data touched.

Set-up (timed apart, once per case), each in a process of its own:
- ``--samples`` stored samples with synthetic stored features, made by bench/bench_feed.py's
  own helpers (``_make_corpus``: ``bulk_create`` plus feature keys; no app file exists),
  all at release 0 with a clean verdict, as if scanned before any release;
- release 1: 100 SHA-256 hash signatures (50 hit a stored sample) through the real feed path
  (CSV import, ``signatures_submit_imported`` with ONE gate hunt whose chunks run in this
  process as a hunts worker runs them, bulk approval, ``release_publish`` and the build task's
  body), then ``verdicts_sync`` brings every sample to release 1;
- release 2 adds ``--added`` hash signatures the same way, ``--hitting`` of them on stored
  (not clean) samples, all gated by ONE gate hunt; published, not yet synced.
- case ``late`` differs in one thing: ``--late`` more samples are stored after release 2's
  gate hunt ran and before its approval (the first 50 of them hit by release 2's
  signatures), so no gate hunt covered them and ``verdicts_sync`` matches them again from
  their stored features (the re-match path).

Measured (``--runs`` times each, on a fresh copy of the set-up folder, in a fresh process; the
median is quoted): the wall time of ``verdicts_sync()`` and what it reports.
- ``add``: release 1 -> 2 (``--added`` signatures added, gate-hunt matches used);
- ``remove``: then ``--removed`` of release 2's hitting signatures are disabled and release 3
  published; release 2 -> 3;
- ``late``: release 1 -> 2 with ``--late`` samples stored after the gate hunt.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
RESULTS = ROOT / "bench" / "results" / "verdicts.json"
BASE_SIGNATURES = 100
BASE_HITTING = 50
LATE_HIT = 50


def _default_var_dir() -> Path:
    given = os.environ.get("PORTAL_VAR_DIR")
    return Path(given) / "verdicts" if given else Path(f"/tmp/bench-verdicts-{os.getuid()}")


# --- set-up ---------------------------------------------------------------------------------


def _hash_rows(targets: list[int], count: int, tag: str) -> list[str]:
    """``count`` CSV rows of SHA-256 hash signatures; the first hit the samples ``targets``
    (bench_feed's synthetic APK hash is ``_hex(f"apk-{i}")``), the rest nothing stored."""
    from bench_feed import _hex

    rows = []
    for n in range(count):
        value = _hex(f"apk-{targets[n]}") if n < len(targets) else _hex(f"{tag}-{n}")
        rows.append(f"hash,{value},Joker,malicious")
    return rows


def _not_clean(samples: int) -> list[int]:
    """Sample ids that are not labelled clean (bench_feed labels i % 10 < 3 clean), so that
    no hit blocks approval."""
    return [i for i in range(1, samples + 1) if i % 10 >= 3]


def _import_and_gate(var_dir: Path, author: Any, rows: list[str], name: str) -> list[int]:
    """Import a CSV feed, submit it with ONE gate hunt and run its chunks here; the ids."""
    import scans.retrohunts as retrohunts
    from scans import hunt_plan
    from threats.services import signatures_import_paths, signatures_submit_imported

    feed = var_dir / f"{name}.csv"
    feed.write_text("kind,body,family,severity\n" + "\n".join(rows) + "\n")
    summary = signatures_import_paths(actor=author, paths=[feed])
    retrohunts.chunks_enqueue = lambda *, chunk_ids: None  # chunks run just below
    submitted = signatures_submit_imported(actor=author, summary=summary)
    from scans.models import RetroHunt

    hunt = RetroHunt.objects.order_by("-pk").first()
    assert hunt is not None
    for chunk_id in hunt.chunks.order_by("index").values_list("id", flat=True):
        retrohunts.retrohunt_chunk_run(chunk_id=chunk_id, worker_name="bench")
    hunt_plan.ruleset_cache_clear()
    return list(submitted.succeeded)


def _approve_and_publish(approver: Any, ids: list[int]) -> int:
    from releases.services import release_publish
    from releases.tasks import build_release
    from threats.services import signature_bulk_action

    done = signature_bulk_action(actor=approver, ids=ids, action="approve", reason="bench")
    if done.failed:
        raise SystemExit(f"approval refused: {done.failed[:3]}")
    release = release_publish(by=approver, enqueue=False)
    build_release.apply(args=(release.number,)).get()
    return release.number


def _late_samples(first: int, count: int) -> None:
    """``count`` samples stored now (ids from ``first``), at release 1 like the others."""
    from bench_feed import _summary
    from django.utils import timezone

    from engine import ENGINE_VERSION
    from scans.featurekeys import sample_keys_store
    from scans.models import Sample

    now = timezone.now()
    rows = []
    for i in range(first, first + count):
        summary = _summary(i)
        rows.append(
            Sample(
                id=i,
                sha256=summary["sha256"],
                md5=summary["md5"],
                sha1=summary["sha1"],
                size=summary["size"],
                file=f"samples/bench/{i}",
                original_name=f"app{i}.apk",
                package=summary["manifest"]["package"],
                features=summary,
                features_file=f"features/bench/{i}",
                features_engine_version=ENGINE_VERSION,
                last_seen=now,
                verdict="clean",
                verdict_score=0,
                verdict_release=1,
            )
        )
    Sample.objects.bulk_create(rows, batch_size=1000)
    sample_keys_store(samples=rows)


def setup_phase(case: str, args: argparse.Namespace, var_dir: Path, out: Path) -> None:
    from bench_feed import _django, _make_corpus, _timed, _users

    _django(var_dir)  # empties var_dir, migrates
    from django.db import connection

    from releases.repository import init_dev_repository
    from scans.models import Sample
    from scans.verdicts import verdicts_sync
    from threats.models import Category, Family, Severity

    with connection.cursor() as cur:
        cur.execute("PRAGMA journal_mode=WAL")
    init_dev_repository()
    author, approver = _users()
    Family.objects.create(name="Joker", category=Category.SMS_FRAUD, severity=Severity.MALICIOUS)
    started = time.perf_counter()
    corpus = _make_corpus(args.samples)
    Sample.objects.update(verdict="clean", verdict_score=0, verdict_release=0)
    targets = _not_clean(args.samples)

    base = _hash_rows(targets[:BASE_HITTING], BASE_SIGNATURES, "base")
    _approve_and_publish(approver, _import_and_gate(var_dir, author, base, "base"))
    first_sync, first_s = _timed(verdicts_sync)

    hitting = targets[BASE_HITTING : BASE_HITTING + args.hitting]
    late_ids = list(range(args.samples + 1, args.samples + 1 + args.late))
    if case == "late":
        hitting = hitting[: args.hitting - LATE_HIT] + late_ids[:LATE_HIT]
    added = _import_and_gate(var_dir, author, _hash_rows(hitting, args.added, "add"), "add")
    if case == "late":
        _late_samples(late_ids[0], args.late)
    release = _approve_and_publish(approver, added)
    with connection.cursor() as cur:
        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    out.write_text(
        json.dumps(
            {
                "corpus": corpus,
                "samples": Sample.objects.count(),
                "release_1_sync": {
                    "seconds": first_s,
                    "samples_changed": first_sync.samples_changed,
                },
                "published": release,
                "setup_seconds": round(time.perf_counter() - started, 1),
            }
        )
    )


# --- measured runs ----------------------------------------------------------------------------


def _django_here(var_dir: Path) -> None:
    os.environ["PORTAL_VAR_DIR"] = str(var_dir)
    for name in ("DATABASE_URL", "RELEASE_REPO_DIR", "TUF_KEYS_DIR", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def _synced() -> dict[str, Any]:
    from scans.models import Sample
    from scans.verdicts import verdicts_sync

    started = time.perf_counter()
    result = verdicts_sync()
    seconds = time.perf_counter() - started
    return {
        "release": result.release,
        "seconds": round(seconds, 3),
        "samples_changed": result.samples_changed,
        "samples_matched": result.samples_matched,
        "samples_at_release": Sample.objects.filter(verdict_release=result.release).count(),
        "malicious": Sample.objects.filter(verdict="malicious").count(),
    }


def run_phase(case: str, removed: int, var_dir: Path, out: Path) -> None:
    _django_here(var_dir)
    result: dict[str, Any] = {}
    result["add" if case == "add" else "late"] = _synced()
    if case == "add":
        from releases.public import current_release_number
        from scans.models import CurrentMatch
        from threats.models import Signature
        from threats.services import signature_bulk_action

        at = current_release_number()
        approver = _approver()
        # release 2's signatures that hit a stored sample (a hash signature hits one app)
        ids = list(
            Signature.objects.filter(pk__in=CurrentMatch.objects.values("signature_id"))
            .order_by("-pk")
            .values_list("pk", flat=True)[:removed]
        )
        signature_bulk_action(actor=approver, ids=ids, action="disable", reason="bench")
        from releases.services import release_publish
        from releases.tasks import build_release

        release = release_publish(by=approver, enqueue=False)
        build_release.apply(args=(release.number,)).get()
        result["remove"] = {"from": at, "disabled": len(ids), **_synced()}
    out.write_text(json.dumps(result))


def _approver() -> Any:
    from portal.models import User

    return User.objects.get(username="bench-reviewer")


# --- driver -----------------------------------------------------------------------------------


def _child(*argv: str) -> None:
    subprocess.run([sys.executable, __file__, *argv], check=True, cwd=ROOT)


def _median(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    rows = [r[key] for r in runs]
    return {
        "seconds_median": round(statistics.median(r["seconds"] for r in rows), 3),
        "seconds_runs": [r["seconds"] for r in rows],
        "samples_changed": rows[0]["samples_changed"],
        "samples_matched": rows[0]["samples_matched"],
        "same_outcome_every_run": all(
            (r["samples_changed"], r["samples_matched"], r["malicious"])
            == (rows[0]["samples_changed"], rows[0]["samples_matched"], rows[0]["malicious"])
            for r in rows
        ),
        "last_run": rows[-1],
    }


def main(argv: list[str]) -> int:
    if argv and argv[0] == "_setup":
        ns = argparse.Namespace(**json.loads(argv[4]))
        setup_phase(argv[1], ns, Path(argv[2]), Path(argv[3]))
        return 0
    if argv and argv[0] == "_run":
        run_phase(argv[1], int(argv[2]), Path(argv[3]), Path(argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--added", type=int, default=1000)
    parser.add_argument("--hitting", type=int, default=200)
    parser.add_argument("--removed", type=int, default=100)
    parser.add_argument("--late", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--var-dir", type=Path, default=_default_var_dir())
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    var_dir = args.var_dir.resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    params = {k: getattr(args, k) for k in ("samples", "added", "hitting", "late")}
    results: dict[str, Any] = {
        "command": "python bench/bench_verdicts.py " + " ".join(argv),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_1min_at_start": round(os.getloadavg()[0], 2),
        "database": "sqlite (WAL), a fresh copy of the set-up database per run",
        "parameters": {**params, "removed": args.removed, "runs": args.runs},
        "cases": {},
    }
    for case in ("add", "late"):
        setup_dir, part = var_dir / f"{case}-setup", var_dir / f"{case}-setup.json"
        print(f"  set-up {case} in {setup_dir}", file=sys.stderr, flush=True)
        _child("_setup", case, str(setup_dir), str(part), json.dumps(params))
        setup = json.loads(part.read_text())
        runs = []
        for n in range(args.runs):
            run_dir = var_dir / f"{case}-run"
            if run_dir.exists():
                shutil.rmtree(run_dir)
            shutil.copytree(setup_dir, run_dir)
            out = var_dir / f"{case}-run-{n}.json"
            _child("_run", case, str(args.removed), str(run_dir), str(out))
            runs.append(json.loads(out.read_text()))
            print(f"    run {n + 1}: {json.dumps(runs[-1])}", file=sys.stderr, flush=True)
        keys = ("add", "remove") if case == "add" else ("late",)
        results["cases"][case] = {"setup": setup, **{k: _median(runs, k) for k in keys}}
    results["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
