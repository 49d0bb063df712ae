"""Livehunt benchmark: what active watch rules add to each scan, at 0, 100 and 1,000 rules.

    python bench/run.py livehunt
    .venv/bin/python bench/bench_livehunt.py [--rules 0,100,1000] [--repeat 7]
        [--samples InsecureBankv2.apk,ovaa.apk,<tiny>] [--var-dir DIR] [--out F]

Writes bench/results/livehunt.json. Measures, never asserts. Runs in one process under its
own PORTAL_VAR_DIR (``--var-dir``, else $PORTAL_VAR_DIR/bench-livehunt, else
/tmp/bench-livehunt-<uid>) with a fresh SQLite database, so nobody else's data is touched.

Per sample (real corpus APKs, stored through ``sample_ingest``) and per number of active
watch rules, each figure a median of ``--repeat`` runs:

- ``floor_analyze_ms``: ``engine.analyze`` of the file in this process: the least a scan
  costs whatever the portal does around it.
- ``scan_ms``: ``scans.services.scan_run`` of a new scan job (empty release), which includes
  the scan-succeeded hook: with active rules it asks whether any rule is active and sends
  ``livehunt.watch_sample`` to the (filesystem) broker. This is what the verdict waits for.
- ``hook_ms``: that hook alone (one EXISTS query and the message sent), after the scan.
- ``watch_ms``: ``livehunt.services.sample_watch`` as the chained task runs it, with the
  active rules already compiled in this process (the usual case: compiled once per stamp).
- ``watch_cold_ms``: the same right after a rule changed (the stamp moved): the compile of
  every active rule is in it. Paid once per change per worker process.
- ``stamp_ms``: the query that reads the stamp (every task, every machine).
- ``total_ms`` = scan + watch, and its ratio to the total at 0 rules (``total_vs_0_rules``).
  Only the hook in the scan path depends on the rules, so the scan's own swings between
  rows are the shared machine's noise; ``added_ms`` (hook + watch) and
  ``steady_total_vs_0_rules`` ((0-rule scan + added) / 0-rule total) are the steadier view.

The rules are a mix of kinds as researchers keep them: 30% YARA (half facts-only such as
``android.package == …``, a quarter with strings that read the app's bytes, a quarter Koodous
``androguard`` rules), 25% hashes, 20% indicators, 15% package/certificate rules, 10%
behaviour rules. None of them matches the samples, so no notification is written: this is
the cost every scan pays, not the cost of a hit.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
RESULTS = ROOT / "bench" / "results" / "livehunt.json"
CORPUS = ROOT.parent / "shared" / "corpus" / "apks"
TINY = "v1-only-with-rsa-pkcs1-sha256-1.2.840.113549.1.1.11-2048.apk"
DEFAULT_SAMPLES = f"InsecureBankv2.apk,ovaa.apk,{TINY}"


def _default_var_dir() -> Path:
    given = os.environ.get("PORTAL_VAR_DIR")
    return Path(given) / "bench-livehunt" if given else Path(f"/tmp/bench-livehunt-{os.getuid()}")


def _django(var_dir: Path) -> None:
    if var_dir.exists():
        shutil.rmtree(var_dir)
    var_dir.mkdir(parents=True)
    os.environ["PORTAL_VAR_DIR"] = str(var_dir)
    for name in ("DATABASE_URL", "CACHE_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _hex(i: int) -> str:
    return hashlib.sha256(f"bench-livehunt-{i}".encode()).hexdigest()


def rule_body(i: int) -> tuple[str, Any]:
    """The i-th rule of the mix (kinds in the proportions the docstring gives)."""
    slot = i % 20
    if slot < 3:
        return "yara", f'rule w{i} {{ condition: android.package == "com.bench.w{i}" }}'
    if slot < 5:
        return "yara", (
            f'import "androguard"\nrule k{i} {{ condition: '
            f'androguard.package_name("com.bench.k{i}") and androguard.permission(/SEND_SMS/) }}'
        )
    if slot < 6:
        return "yara", f'rule s{i} {{ strings: $a = "bench-marker-{i:06d}" condition: $a }}'
    if slot < 11:
        return "hash", {"algorithm": "sha256", "target": "apk", "value": _hex(i)}
    if slot < 15:
        return "indicator", {"type": "domain", "value": f"c2-{i}.bench.example"}
    if slot < 18:
        return "package_cert", {"package": f"com.bench.bank{i}", "allowed_certs": [_hex(-i)]}
    return "behavior", {
        "permissions": ["android.permission.SEND_SMS", "android.permission.RECEIVE_SMS"],
        "api": [{"class": f"Lcom/bench/Sms{i};", "method": "send"}],
        "score": 5,
    }


def _median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 2)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", default="0,100,1000")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--samples", default=DEFAULT_SAMPLES)
    parser.add_argument("--var-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.rules.split(",")]
    load_start = os.getloadavg()
    _django(args.var_dir or _default_var_dir())

    from django.utils import timezone

    from engine.analyze import analyze
    from livehunt import services
    from livehunt.models import WatchRule
    from livehunt.selectors import active_set
    from portal.models import User
    from portal.roles import sync_roles
    from scans.models import ScanJob, ScanStatus
    from scans.public import ScanDone, scan_succeeded
    from scans.rulesets import ExplicitRuleset
    from scans.services import sample_ingest, scan_run

    sync_roles()
    user = User.objects.create_user("bench-researcher", password=None)
    from django.contrib.auth.models import Group

    user.groups.add(Group.objects.get(name="researcher"))
    empty = ExplicitRuleset.of(())

    samples = []
    for name in args.samples.split(","):
        path = CORPUS / name
        sample, scan, _ = sample_ingest(path=path, user=user)
        scan_run(scan_id=scan.pk, ruleset_provider=lambda: empty)
        scan.refresh_from_db()
        if scan.status != ScanStatus.SUCCEEDED:
            print(f"skipping {name}: {scan.error}", flush=True)
            continue
        samples.append((name, path, sample))

    floors = {}
    for name, path, _ in samples:
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            analyze(str(path))
            times.append(time.perf_counter() - t0)
        floors[name] = _median_ms(times)

    made = 0
    runs: list[dict[str, Any]] = []
    expires = timezone.now() + timedelta(days=30)
    for count in counts:
        t0 = time.perf_counter()
        while made < count:
            kind, body = rule_body(made)
            services.watch_rule_create(user=user, kind=kind, body=body, expires_at=expires)
            made += 1
        create_s = time.perf_counter() - t0
        active = active_set()
        stamp_times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            active_set()
            stamp_times.append(time.perf_counter() - t0)
        services.ruleset_cache_clear()
        t0 = time.perf_counter()
        services.active_ruleset()
        compile_s = time.perf_counter() - t0
        for name, _path, sample in samples:
            # each measurement in its own loop, so one does not pay for another's garbage
            scan_times, hook_times, watch_times, cold_times = [], [], [], []
            jobs = []
            for _ in range(args.repeat):
                job = ScanJob.objects.create(sample=sample, status=ScanStatus.QUEUED)
                t0 = time.perf_counter()
                scan_run(scan_id=job.pk, ruleset_provider=lambda: empty)
                scan_times.append(time.perf_counter() - t0)
                jobs.append(job.pk)
            for job_id in jobs:
                done = ScanDone(scan_id=job_id, sample_id=sample.pk, sha256=sample.sha256)
                t0 = time.perf_counter()
                scan_succeeded(done)
                hook_times.append(time.perf_counter() - t0)
            services.active_ruleset()
            for job_id in jobs:
                t0 = time.perf_counter()
                hits = services.sample_watch(sample_id=sample.pk, scan_id=job_id)
                watch_times.append(time.perf_counter() - t0)
                assert not hits, "the bench rules should not match"
            for job_id in jobs:
                services.ruleset_cache_clear()
                gc.collect()
                t0 = time.perf_counter()
                services.sample_watch(sample_id=sample.pk, scan_id=job_id)
                cold_times.append(time.perf_counter() - t0)
            run = {
                "rules": count,
                "active": len(active.ids),
                "sample": name,
                "floor_analyze_ms": floors[name],
                "scan_ms": _median_ms(scan_times),
                "hook_ms": _median_ms(hook_times),
                "watch_ms": _median_ms(watch_times),
                "watch_cold_ms": _median_ms(cold_times),
                "stamp_ms": _median_ms(stamp_times),
                "compile_ms": round(compile_s * 1000, 1),
                "create_rules_s": round(create_s, 2),
            }
            run["total_ms"] = round(run["scan_ms"] + run["watch_ms"], 2)
            runs.append(run)
            print(json.dumps(run), flush=True)
    base = {r["sample"]: r["total_ms"] for r in runs if r["rules"] == 0}
    for run in runs:
        if run["sample"] in base and base[run["sample"]]:
            run["total_vs_0_rules"] = round(run["total_ms"] / base[run["sample"]], 3)
            zero_scan = next(
                r["scan_ms"] for r in runs if r["rules"] == 0 and r["sample"] == run["sample"]
            )
            run["scan_vs_0_rules"] = round(run["scan_ms"] / zero_scan, 3)
            # the scan path depends on the rules only through the hook (measured alone), so
            # the steadier figure is the 0-rule scan plus what the rules add: hook + watch
            run["added_ms"] = round(run["hook_ms"] + run["watch_ms"], 2)
            run["steady_total_vs_0_rules"] = round(
                (zero_scan + run["added_ms"]) / base[run["sample"]], 3
            )
    kinds: dict[str, int] = {}
    for kind in WatchRule.objects.values_list("kind", flat=True):
        kinds[kind] = kinds.get(kind, 0) + 1
    result = {
        "bench": "livehunt",
        "when": timezone.now().isoformat(),
        "host": platform.node(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "repeat": args.repeat,
        # the machine is shared: the 1-minute load average when the bench began and ended
        "loadavg_1m": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
        "rule_kinds_at_max": kinds,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
