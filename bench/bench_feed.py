"""Feed benchmark: CSV import -> submit -> gate -> bulk approve -> publish, per stage.

    python bench/run.py feed
    .venv/bin/python bench/bench_feed.py [--cases hash:10000,hash:100000,indicator:10000]
        [--samples 10000] [--var-dir DIR] [--out PATH]

Writes bench/results/feed.json. Measures, never asserts. Each case runs in its own process
under its own PORTAL_VAR_DIR (``--var-dir``, else $PORTAL_VAR_DIR, else
/tmp/bench-feed-<uid>), one fresh SQLite database per case, nobody else's data touched.

Per case:
- **corpus** (set-up, timed apart): ``--samples`` stored samples made with ``bulk_create``
  whose stored features (the summary in ``Sample.features``: hashes, one or two DEX, a
  signing certificate, package, domains, URLs, an IP) are synthesised, 30 % labelled clean,
  20 % malicious; their feature keys written through ``scans.featurekeys.sample_keys_store``
  (what a scan does when it stores features). No app file exists: the gate must not read one.
- **import**: a CSV feed (``kind,body,family,severity``) through ``signatures_import_paths``,
  the service ``manage.py import_signatures`` calls. 1 % of the rows hit a stored sample
  (10 of them a clean one), the rest nothing.
- **submit**: ``signatures_submit_imported`` (what ``--submit`` does), whose submit hook
  creates the ONE gate hunt (the broker send is replaced by nothing: the next stage runs the
  chunks).
- **gate**: every chunk of that hunt through ``retrohunt_chunk_run`` in this process (one
  worker, exactly the task's body), until the hunt is finished and each revision's result
  recorded (``revisions_record_gate``) and the hit statistics refreshed.
- **approve**: ``signature_bulk_action(action="approve")`` by a reviewer (the bulk API's
  service); revisions with clean hits are refused (no override), as on the page.
- **publish**: ``release_publish`` and the ``releases.build_release`` task's body (``.apply``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
RESULTS = ROOT / "bench" / "results" / "feed.json"
CLEAN_HITS = 10


def _default_var_dir() -> Path:
    given = os.environ.get("PORTAL_VAR_DIR")
    return Path(given) if given else Path(f"/tmp/bench-feed-{os.getuid()}")


def _timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, round(time.perf_counter() - start, 3)


def _hex(text: str, n: int = 64) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _django(var_dir: Path) -> None:
    if var_dir.exists():
        shutil.rmtree(var_dir)
    var_dir.mkdir(parents=True)
    os.environ["PORTAL_VAR_DIR"] = str(var_dir)
    for name in ("DATABASE_URL", "RELEASE_REPO_DIR", "TUF_KEYS_DIR", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    for role in ("ROOT", "TARGETS", "SNAPSHOT", "TIMESTAMP"):
        os.environ.pop(f"TUF_{role}_KEY", None)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _users() -> tuple[Any, Any]:
    from portal.models import User
    from portal.roles import sync_roles
    from portal.services import user_set_roles

    sync_roles()
    author = User.objects.create_user("bench-researcher", password=None)
    approver = User.objects.create_user("bench-reviewer", password=None)
    user_set_roles(user=author, roles=["researcher"], actor=None)
    user_set_roles(user=approver, roles=["reviewer"], actor=None)
    return author, approver


def _summary(i: int) -> dict[str, Any]:
    """A stored features summary as ``scans.storage.features_summary`` writes it."""
    from engine import ENGINE_VERSION
    from engine.features import AppFeatures, Certificate, DexFile, Indicators, Manifest
    from scans.storage import features_summary

    package = f"com.bench.app{i}"
    features = AppFeatures(
        engine_version=ENGINE_VERSION,
        file_type="apk",
        size=1_000_000,
        md5=_hex(f"md5-{i}", 32),
        sha1=_hex(f"sha1-{i}", 40),
        sha256=_hex(f"apk-{i}"),
        manifest=Manifest(package=package, permissions=("android.permission.INTERNET",)),
        certificates=(
            Certificate(
                sha256=_hex(f"cert-{i % 500}"),
                sha1=_hex(f"cert1-{i % 500}", 40),
                subject="CN=bench",
                issuer="CN=bench",
                serial="1",
                not_before="2020-01-01T00:00:00Z",
                not_after="2050-01-01T00:00:00Z",
            ),
        ),
        dex=tuple(
            DexFile(path=f"classes{n + 1}.dex", sha256=_hex(f"dex-{i}-{n}"), size=100_000)
            for n in range(1 + i % 2)
        ),
        indicators=Indicators(
            urls=(f"https://api{i}.bench.example/v1/collect", f"http://cdn{i % 97}.example/x"),
            domains=tuple(f"host{n}.app{i}.example" for n in range(5)),
            ips=(f"198.51.100.{i % 250}",),
        ),
    )
    return features_summary(features.to_dict())


def _make_corpus(samples: int) -> dict[str, Any]:
    from django.utils import timezone

    from engine import ENGINE_VERSION
    from scans.featurekeys import sample_keys_store
    from scans.models import Label, Sample

    now = timezone.now()

    def label(i: int) -> str:
        return Label.CLEAN if i % 10 < 3 else Label.MALICIOUS if i % 10 < 5 else Label.UNKNOWN

    rows = []
    for i in range(1, samples + 1):
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
                label=label(i),
                package=summary["manifest"]["package"],
                features=summary,
                features_file=f"features/bench/{i}",  # never read: the gate reads no app
                features_engine_version=ENGINE_VERSION,
                last_seen=now,
            )
        )
    _, made_s = _timed(lambda: Sample.objects.bulk_create(rows, batch_size=1000))

    def keys() -> int:
        n = 0
        for start in range(0, len(rows), 1000):
            n += sum(len(k) for k in sample_keys_store(samples=rows[start : start + 1000]).values())
        return n

    key_count, keys_s = _timed(keys)
    return {
        "samples": samples,
        "clean": sum(1 for i in range(1, samples + 1) if label(i) == Label.CLEAN),
        "bulk_create_seconds": made_s,
        "feature_keys": key_count,
        "feature_keys_seconds": keys_s,
    }


def _feed_rows(kind: str, count: int, samples: int) -> tuple[list[str], int]:
    """CSV rows; 1 % hit a stored sample, the first CLEAN_HITS of those a clean one."""
    rng = random.Random(count)
    rows: list[str] = []
    clean_targets = [i for i in range(1, samples + 1) if i % 10 < 3][:CLEAN_HITS]
    other_targets = [i for i in range(1, samples + 1) if i % 10 >= 3]
    hits = max(CLEAN_HITS, count // 100)
    targets = clean_targets + rng.sample(other_targets, min(hits - CLEAN_HITS, len(other_targets)))
    for n in range(count):
        target = targets[n] if n < len(targets) else None
        if kind == "hash":
            value = _hex(f"apk-{target}") if target else _hex(f"feed-{n}")
            rows.append(f"hash,{value},Joker,malicious")
        else:
            value = f"app{target}.example" if target else f"feed{n}.bench-bad.example"
            rows.append(f"indicator,{value},Joker,malicious")
    return rows, len(targets)


def case_phase(kind: str, count: int, samples: int, var_dir: Path, out: Path) -> None:
    _django(var_dir)
    from django.db import connection

    import scans.retrohunts as retrohunts
    from releases.models import Release, ReleaseState
    from releases.repository import init_dev_repository
    from releases.services import release_publish
    from releases.tasks import build_release
    from scans import hunt_plan
    from scans.models import HuntStatus, RetroHunt
    from threats.models import Category, Family, Severity, SignatureRevision, Status
    from threats.services import (
        signature_bulk_action,
        signatures_import_paths,
        signatures_submit_imported,
    )

    if connection.vendor == "sqlite":
        with connection.cursor() as cur:
            cur.execute("PRAGMA journal_mode=WAL")
    init_dev_repository()
    author, approver = _users()
    Family.objects.create(name="Joker", category=Category.SMS_FRAUD, severity=Severity.MALICIOUS)
    result: dict[str, Any] = {"kind": kind, "signatures": count}
    result["corpus"] = _make_corpus(samples)
    print(f"  {kind} {count}: corpus {json.dumps(result['corpus'])}", file=sys.stderr, flush=True)

    rows, hitting = _feed_rows(kind, count, samples)
    feed = var_dir / "feed.csv"
    feed.write_text("kind,body,family,severity\n" + "\n".join(rows) + "\n")
    stages: dict[str, float] = {}

    summary, stages["import"] = _timed(lambda: signatures_import_paths(actor=author, paths=[feed]))
    # the hook's hunt is created for real; its chunks run in the next stage, not via a broker
    retrohunts.chunks_enqueue = lambda *, chunk_ids: None
    submitted, stages["submit"] = _timed(
        lambda: signatures_submit_imported(actor=author, summary=summary)
    )
    hunts = list(RetroHunt.objects.values_list("id", flat=True))

    def gate() -> Any:
        hunt = RetroHunt.objects.get(pk=hunts[0])
        for chunk_id in hunt.chunks.order_by("index").values_list("id", flat=True):
            retrohunts.retrohunt_chunk_run(chunk_id=chunk_id, worker_name="bench")
        return RetroHunt.objects.get(pk=hunt.pk)

    hunt, stages["gate"] = _timed(gate)
    # the gate ran as a hunts worker runs it; the approval is a web request in another
    # process, which does not hold the worker's compiled hunt (100,000 rules)
    hunt_plan.ruleset_cache_clear()
    revisions = SignatureRevision.objects.filter(signature_id__in=submitted.succeeded)
    gated = revisions.filter(gate_hunt_id=hunt.pk, gated_at__isnull=False).count()
    with_clean = revisions.filter(clean_hits__gt=0).count()
    approved, stages["approve"] = _timed(
        lambda: signature_bulk_action(
            actor=approver, ids=submitted.succeeded, action="approve", reason="feed"
        )
    )

    def publish() -> Any:
        release = release_publish(by=approver, enqueue=False)
        build_release.apply(args=(release.number,)).get()
        return Release.objects.get(pk=release.pk)

    release, stages["publish"] = _timed(publish)
    result.update(
        {
            "imported": summary.imported,
            "rows_hitting_a_stored_sample": hitting,
            "submitted": len(submitted.succeeded),
            "gate_hunts": len(hunts),
            "hunt": {
                "status": hunt.status,
                "chunks": hunt.chunks_total,
                "scanned": hunt.scanned,
                "errors": hunt.errors,
                "matches": hunt.match_count,
                "clean_count": hunt.clean_count,
            },
            "revisions_gated": gated,
            "revisions_with_clean_hits": with_clean,
            "approved": len(approved.succeeded),
            "refused": len(approved.failed),
            "refusals": sorted({f["message"].split(" (")[0] for f in approved.failed})[:3],
            "release": {
                "number": release.number,
                "state": release.state,
                "signatures": release.signature_count,
                "published": release.state == ReleaseState.PUBLISHED,
            },
            "deployed": Status.DEPLOYED,
            "seconds": stages,
            "import_to_release_seconds": round(sum(stages.values()), 3),
            "finished": hunt.status == HuntStatus.FINISHED,
        }
    )
    result.pop("deployed")
    print(f"  {kind} {count}: {json.dumps(result['seconds'])}", file=sys.stderr, flush=True)
    out.write_text(json.dumps(result))


def main(argv: list[str]) -> int:
    if argv and argv[0] == "_case":
        case_phase(argv[1], int(argv[2]), int(argv[3]), Path(argv[4]), Path(argv[5]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="hash:10000,hash:100000,indicator:10000")
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--var-dir", type=Path, default=_default_var_dir())
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    var_dir = args.var_dir.resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "command": "python bench/bench_feed.py " + " ".join(argv),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "database": "sqlite (WAL), one fresh database per case",
        "cases": [],
    }
    for case in [c for c in args.cases.split(",") if c]:
        kind, count = case.split(":")
        print(f"case {case} over {args.samples} samples", file=sys.stderr, flush=True)
        part = var_dir / f"{kind}-{count}.json"
        code = subprocess.call(
            [
                sys.executable,
                __file__,
                "_case",
                kind,
                count,
                str(args.samples),
                str(var_dir / f"{kind}-{count}"),
                str(part),
            ],
            cwd=ROOT,
        )
        if code:
            results["cases"].append({"case": case, "error": f"exit {code}"})
            continue
        results["cases"].append(json.loads(part.read_text()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
