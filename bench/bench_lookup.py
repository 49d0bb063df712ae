"""Cloud look-up benchmark (issue 12 part 5): a 100-hash ``POST /api/v1/devices/lookup/`` at
fixed arrival rates with up to 200 look-ups in flight, against a static floor.

    python bench/run.py lookup
    .venv/bin/python bench/bench_lookup.py [--rates 25,50,100,200] [--duration 10] [--drain 10]
        [--devices 200] [--max-connections 200] [--samples 1000] [--lookup-rate RATE]
        [--var-dir DIR] [--out PATH] [--stack embedded|env] [--before]
    .venv/bin/python bench/bench_lookup.py --profile [--stack embedded|env] [--variants A,B]
        [--procs 4] [--threads 2] [--seconds 10] [--profile-lookups 300]

Writes bench/results/lookup.json. Measures, never asserts. In one run, for each rate in turn:

(a) ``floor``: nginx serving a static JSON file of the same size as a look-up answer (a GET:
    nginx serves no POST from a file), from the bare ``location`` bench_update_check.py
    configures: the best this machine and generator can do.
(b) ``lookup``: ``POST /api/v1/devices/lookup/`` with ``Authorization: Token`` under
    gunicorn started with the very list ``make run`` uses (bench_update_check.py's
    ``start_gunicorn``), on a fresh PORTAL_VAR_DIR. Each body asks about 100 apps: 30 stored
    samples with current verdicts and 70 hashes never seen. ``--devices`` phones enrol
    through the device API, each with its own token and its own body, used in turn.

Before the runs, ``one_at_a_time``: 100 look-ups one after another (nothing queued), the
cost of one look-up on this machine.

Load: bench/loadgen.py's open-loop generator (arrivals at ``t0 + i/rate``, latency from the
scheduled time, so queueing counts) in a process of its own, with at most
``--max-connections`` connections, so at most that many look-ups in flight (200 concurrent
clients). ``--duration`` seconds of arrivals, then ``--drain`` seconds for the answers.

The database (set-up, timed apart): ``--samples`` stored samples with synthetic stored
features (bench/bench_feed.py's helpers), release 1 of 200 SHA-256 hash signatures, 100 of
them hitting a stored sample (the feed path of bench/bench_verdicts.py: import, ONE gate
hunt, approval, publish, build), and ``verdicts_sync``: so the stored samples answer with a
current verdict (malicious for those hit, clean for the others).

``--before`` also serves the look-up from a second gunicorn whose count runs in an explicit
transaction (the code before 2026-11-28) and runs each rate against both ('lookup_before').
``--profile`` replaces the HTTP runs: each stage of a look-up timed alone, cProfile of the
whole request, and the writes under ``--procs`` x ``--threads`` contention (docs/lookup.md).

The stack: ``--stack embedded`` (the default) is SQLite + diskcache + the filesystem broker
under the var folder, whatever the environment says. ``--stack env`` runs the set-up and
gunicorn on the ``DATABASE_URL``, ``CACHE_URL`` and ``CELERY_BROKER_URL`` of the environment
(README "Running on PostgreSQL and Redis"); the set-up EMPTIES that database (drops its
``public`` schema) and that cache, so give it a database of its own::

    DATABASE_URL=postgres://portal:portal@127.0.0.1:5432/portal_lookupbench \
    CACHE_URL=redis://127.0.0.1:6397/1 CELERY_BROKER_URL=redis://127.0.0.1:6397/0 \
    .venv/bin/python bench/bench_lookup.py --stack env --out bench/results/lookup-pg.json

``DEVICE_LOOKUP_RATE`` (per device, default 120/hour) is left at its default when every
device asks fewer times than that in the whole run (the JSON says how many); otherwise, or
with ``--lookup-rate``, it is raised and the JSON says to what.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
RESULTS = ROOT / "bench" / "results" / "lookup.json"
LOOKUP_PATH = "/api/v1/devices/lookup/"
FLOOR_PATH = "/static.json"
STORED, UNKNOWN = 30, 70
SIGNATURES, HITTING = 200, 100
DEFAULT_LOOKUP_PER_HOUR = 120
SEQUENTIAL = 100  # look-ups one after another, before the open-loop runs
RAISED_RATE = "100000000/s"
STACK_VARS = ("DATABASE_URL", "CACHE_URL", "CELERY_BROKER_URL")


def _default_var_dir() -> Path:
    given = os.environ.get("PORTAL_VAR_DIR")
    return Path(given) / "lookup" if given else Path(f"/tmp/bench-lookup-{os.getuid()}")


def _stack(name: str) -> dict[str, str]:
    """The services to run on: {} for the embedded default, else the environment's URLs."""
    if name == "embedded":
        return {}
    missing = [v for v in STACK_VARS if not os.environ.get(v)]
    if missing:
        raise SystemExit(f"--stack env needs {', '.join(missing)} set")
    return {v: os.environ[v] for v in STACK_VARS}


def _portal_env(var_dir: Path, stack: dict[str, str]) -> dict[str, str]:
    from bench_update_check import _env

    env = _env(var_dir)  # drops DATABASE_URL and CELERY_BROKER_URL: the embedded stack
    env.pop("CACHE_URL", None)
    env.update(stack)
    return env


def _stack_brief() -> dict[str, str]:
    """What the portal ran on, without credentials."""
    from django.conf import settings
    from django.db import connection

    return {
        "database": connection.vendor,
        "cache": str(settings.CACHES["default"]["BACKEND"]),
        "broker": str(settings.CELERY_BROKER_URL).split(":", 1)[0],
    }


def _django_fresh(var_dir: Path) -> None:
    """bench_feed._django on the stack of the environment: an empty var_dir, an empty
    database (PostgreSQL: its public schema dropped) and cache, migrated."""
    if var_dir.exists():
        shutil.rmtree(var_dir)
    var_dir.mkdir(parents=True)
    for role in ("ROOT", "TARGETS", "SNAPSHOT", "TIMESTAMP"):
        os.environ.pop(f"TUF_{role}_KEY", None)
    import django

    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    cache.clear()
    call_command("migrate", verbosity=0)


# --- set-up: stored samples with current verdicts (a child process) --------------------------


def setup_phase(var_dir: Path, samples: int, out: Path, stack: dict[str, str]) -> None:
    for name in STACK_VARS:
        os.environ.pop(name, None)
    os.environ.update(_portal_env(var_dir, stack))
    from bench_feed import _django, _make_corpus, _users
    from bench_verdicts import _approve_and_publish, _hash_rows, _import_and_gate, _not_clean

    if stack:
        _django_fresh(var_dir)
    else:
        _django(var_dir)  # empties var_dir, migrates
    from django.db import connection

    from releases.repository import init_dev_repository
    from scans.models import Sample
    from scans.verdicts import verdicts_sync
    from threats.models import Category, Family, Severity

    if connection.vendor == "sqlite":
        with connection.cursor() as cur:
            cur.execute("PRAGMA journal_mode=WAL")
    init_dev_repository()
    author, approver = _users()
    Family.objects.create(name="Joker", category=Category.SMS_FRAUD, severity=Severity.MALICIOUS)
    started = time.perf_counter()
    _make_corpus(samples)
    Sample.objects.update(verdict="clean", verdict_score=0, verdict_release=0)
    rows = _hash_rows(_not_clean(samples)[:HITTING], SIGNATURES, "lookup")
    release = _approve_and_publish(approver, _import_and_gate(var_dir, author, rows, "lookup"))
    synced = verdicts_sync()
    hashes = list(Sample.objects.order_by("id").values_list("sha256", "verdict"))
    out.write_text(
        json.dumps(
            {
                "release": release,
                "samples": len(hashes),
                "malicious": sum(1 for _, v in hashes if v == "malicious"),
                "verdicts_sync_seconds": synced.seconds,
                "setup_seconds": round(time.perf_counter() - started, 1),
                "stack": _stack_brief(),
                "stored": hashes,
            }
        )
    )


# --- requests ---------------------------------------------------------------------------------


def bodies(stored: list[tuple[str, str]], devices: int) -> list[bytes]:
    """One body per device: 30 stored samples (every third of them malicious, where there are
    enough) and 70 hashes no sample has, different for each device."""
    import hashlib

    bad = [s for s, v in stored if v == "malicious"]
    good = [s for s, v in stored if v != "malicious"]
    out = []
    for d in range(devices):
        known = [bad[(d * 10 + k) % len(bad)] for k in range(10)] if bad else []
        known += [good[(d * 20 + k) % len(good)] for k in range(STORED - len(known))]
        unseen = [hashlib.sha256(f"unseen-{d}-{k}".encode()).hexdigest() for k in range(UNKNOWN)]
        out.append(json.dumps({"sha256s": known + unseen}).encode())
    return out


def raw_posts(port: int, tokens: list[str], payloads: list[bytes]) -> list[str]:
    """Raw HTTP/1.1 POSTs (loadgen.build_requests makes GETs only), one per device."""
    out = []
    for token, body in zip(tokens, payloads, strict=True):
        head = (
            f"POST {LOOKUP_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Token {token}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        out.append(head + body.decode())
    return out


def load_phase(port: int, requests_file: Path, rate: float, args: list[str]) -> None:
    """One open-loop run of loadgen's generator over these raw requests; its JSON."""
    import loadgen

    duration, drain, connections = float(args[0]), float(args[1]), int(args[2])
    raw = [r.encode("latin-1") for r in json.loads(requests_file.read_text())]
    priority = loadgen._prefer_this_process()
    with asyncio.Runner(loop_factory=loadgen._loop) as runner:
        result = runner.run(
            loadgen.run_rate("127.0.0.1", port, raw, rate, duration, drain, connections)
        )
    result["generator_priority"] = priority
    print(json.dumps(result), flush=True)


def load(port: int, requests_file: Path, rate: float, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "_load", str(port), str(requests_file), f"{rate:g}"]
    cmd += [str(args.duration), str(args.drain), str(args.max_connections)]
    out = subprocess.run(
        cmd, capture_output=True, text=True, check=True, timeout=args.duration + args.drain + 120
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    return result


def _count_in_transaction() -> None:
    """The count as it was before 2026-11-28: the same statement in an explicit transaction
    (on SQLite BEGIN IMMEDIATE, INSERT, COMMIT)."""
    from django.db import transaction

    import scans.lookup

    one_statement = scans.lookup.lookups_count

    def in_transaction(sha256s: Sequence[str]) -> None:
        with transaction.atomic():
            one_statement(sha256s)

    scans.lookup.lookups_count = in_transaction


def count_in_transaction_app() -> Any:
    """gunicorn's app for ``--before``: the portal with the count in a transaction."""
    from portal.wsgi import application

    _count_in_transaction()
    return application


def start_gunicorn(
    var_dir: Path, port: int, stack: dict[str, str], before: bool = False
) -> tuple[subprocess.Popen[bytes], list[str]]:
    """bench_update_check.start_gunicorn (``make run``'s command line) on this stack; with
    ``before``, the same serving ``count_in_transaction_app`` instead of portal.wsgi."""
    from bench_update_check import STATIC_PATH, _wait_http, web_command

    cmd = web_command(port)
    name = "gunicorn"
    if before:
        cmd = [c if c != "portal.wsgi" else "bench_lookup:count_in_transaction_app()" for c in cmd]
        cmd.append(f"--pythonpath={ROOT / 'bench'}")
        name = "gunicorn-before"
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=_portal_env(var_dir, stack),
        stdout=(var_dir / f"{name}-access.log").open("wb"),  # --access-logfile=- : stdout
        stderr=(var_dir / f"{name}-error.log").open("wb"),
        start_new_session=True,
    )
    _wait_http(port, STATIC_PATH, proc, var_dir / f"{name}-error.log")
    return proc, cmd


def _post(port: int, token: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{LOOKUP_PATH}",
        data=body,
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
        return int(answer.status), answer.read()


# --- profile: where one look-up's time goes, and what the writes cost under contention ---------

PROFILE_STAGES = (
    "request",
    "auth",
    "throttle",
    "validate",
    "samples",
    "strongest",
    "refs",
    "as_of",
    "count",
    "json",
)
VARIANTS = (
    "request",
    "request-count-in-transaction",
    "request-no-count",
    "request-no-throttle",
    "reads",
    "count",
    "count-in-transaction",
    "throttle",
)


def _profile_django(var_dir: Path, stack: dict[str, str]) -> None:
    for name in STACK_VARS:
        os.environ.pop(name, None)
    os.environ.update(_portal_env(var_dir, stack))
    os.environ["DEVICE_LOOKUP_RATE"] = RAISED_RATE
    import django

    django.setup()


def _profile_tokens(count: int) -> list[str]:
    from bench_update_check import ENROLLMENT_KEY
    from django.test import Client

    client, out = Client(HTTP_HOST="127.0.0.1"), []
    body = {"enrollment_key": ENROLLMENT_KEY, "model": "bench", "app_version": "1.0"}
    for _ in range(count):
        answer = client.post("/api/v1/devices/register/", body, content_type="application/json")
        out.append(str(answer.json()["token"]))
    return out


def _stage_calls(tokens: list[str], payloads: list[bytes]) -> dict[str, Any]:
    """{stage: f(i)} each doing that part of look-up i once, as the view does it."""
    from django.test import Client
    from rest_framework.renderers import JSONRenderer

    from releases.public import DeviceTokenAuthentication
    from scans import lookup
    from scans.apis_lookup import DeviceLookupThrottle
    from scans.verdicts import verdicts_as_of
    from threats.public import signature_refs

    client = Client(HTTP_HOST="127.0.0.1")
    auth = DeviceTokenAuthentication()
    n = len(tokens)
    hashes = [lookup.lookup_hashes(json.loads(b)["sha256s"]) for b in payloads]
    principals = [auth.authenticate_credentials(t)[0] for t in tokens]
    answer = json.loads(
        client.post(
            LOOKUP_PATH, payloads[0], "application/json", HTTP_AUTHORIZATION=f"Token {tokens[0]}"
        ).content
    )
    from scans.models import Sample

    def samples(i: int) -> list[tuple[Any, ...]]:
        return list(
            Sample.objects.filter(sha256__in=hashes[i % n]).values_list(
                "sha256", "verdict", "label", "family__name", "verdict_release"
            )
        )

    stored = [[r[0] for r in samples(i) if r[1]] for i in range(n)]
    strongest = [lookup._strongest_signatures(s) for s in stored]

    def throttle(i: int) -> object:
        request = type("R", (), {"user": principals[i % n], "META": {}})()
        return DeviceLookupThrottle().allow_request(request, None)  # type: ignore[arg-type]

    return {
        "request": lambda i: client.post(
            LOOKUP_PATH,
            payloads[i % n],
            "application/json",
            HTTP_AUTHORIZATION=f"Token {tokens[i % n]}",
        ),
        "auth": lambda i: auth.authenticate_credentials(tokens[i % n]),
        "throttle": throttle,
        "validate": lambda i: lookup.lookup_hashes(json.loads(payloads[i % n])["sha256s"]),
        "samples": samples,
        "strongest": lambda i: lookup._strongest_signatures(stored[i % n]),
        "refs": lambda i: signature_refs({s for _, s in strongest[i % n].values()}),
        "as_of": lambda i: verdicts_as_of(),
        "count": lambda i: lookup.lookups_count(hashes[i % n]),
        "json": lambda i: JSONRenderer().render(answer),
        "reads": lambda i: (
            samples(i),
            signature_refs({s for _, s in lookup._strongest_signatures(stored[i % n]).values()}),
            verdicts_as_of(),
        ),
        "principals": principals,
    }


def profile_worker(var_dir: Path, stack: dict[str, str], argv: list[str]) -> None:
    """One process of the contention runs: ``threads`` threads calling one variant in a
    closed loop from ``start_at`` for ``seconds``; prints its latencies (ms) as JSON."""
    import threading

    variant, threads, start_at, seconds = argv[0], int(argv[1]), float(argv[2]), float(argv[3])
    setup = json.loads((var_dir / "profile-input.json").read_text())
    _profile_django(var_dir, stack)
    from django.db import connection

    import scans.lookup

    if variant.endswith("-count-in-transaction"):
        _count_in_transaction()
    if variant == "request-no-count":  # measurement only: these look-ups are not counted
        scans.lookup.lookups_count = lambda sha256s: None
    if variant == "request-no-throttle":  # measurement only: no throttle history kept
        from scans.apis_lookup import DeviceLookupApi

        DeviceLookupApi.throttle_classes = []
    lat: list[float] = []
    errors: list[str] = []

    def run(k: int) -> None:
        calls = _stage_calls(setup["tokens"], [b.encode() for b in setup["payloads"]])
        call = calls[variant.split("-")[0]]
        i = k * 1000
        while time.time() < start_at:
            time.sleep(0.005)
        while time.time() < start_at + seconds:
            t0 = time.perf_counter()
            try:
                got = call(i)
                if variant == "request" and got.status_code != 200:
                    errors.append(str(got.status_code))
            except Exception as exc:
                errors.append(type(exc).__name__)
            lat.append((time.perf_counter() - t0) * 1000)
            i += 1
        connection.close()

    pool = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    print(json.dumps({"latency_ms": lat, "errors": errors}), flush=True)


def profile(args: argparse.Namespace, stack: dict[str, str]) -> dict[str, Any]:
    """(1) each stage of a look-up alone, one after another, in this process; cProfile of the
    whole request; (2) ``--procs`` processes x ``--threads`` threads (gunicorn's 4 x 2) calling
    one variant at a time in a closed loop: the whole request (test client); the same with the
    count in an explicit transaction (BEGIN IMMEDIATE, INSERT, COMMIT: the code before
    2026-11-28); the same without the count or without the throttle (measurement only: what
    each write costs the request under contention); the reads, the count upsert (one
    statement, or in a transaction) and the throttle alone."""
    import cProfile
    import io
    import pstats
    import statistics

    from loadgen import percentiles

    var_dir = args.var_dir.resolve()
    setup_out = var_dir.parent / f"{var_dir.name}-setup.json"
    setup_cmd = [sys.executable, __file__, "_setup", str(var_dir), str(args.samples)]
    subprocess.run([*setup_cmd, str(setup_out), args.stack], check=True, cwd=ROOT)
    setup = json.loads(setup_out.read_text())
    stored = [tuple(x) for x in setup.pop("stored")]
    _profile_django(var_dir, stack)
    tokens = _profile_tokens(args.devices)
    payloads = bodies(stored, len(tokens))
    (var_dir / "profile-input.json").write_text(
        json.dumps({"tokens": tokens, "payloads": [b.decode() for b in payloads]})
    )
    calls = _stage_calls(tokens, payloads)
    n = args.profile_lookups
    stages: dict[str, Any] = {}
    for name in PROFILE_STAGES:
        times = []
        for i in range(n):
            t0 = time.perf_counter()
            calls[name](i)
            times.append((time.perf_counter() - t0) * 1000)
        stages[name] = {
            "median_ms": round(statistics.median(times), 3),
            "mean_ms": round(statistics.fmean(times), 3),
        }
        print(f"  {name:9} median {stages[name]['median_ms']} ms", file=sys.stderr, flush=True)
    prof = cProfile.Profile()
    prof.enable()
    for i in range(n):
        calls["request"](i)
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(40)
    (var_dir / "profile-request.txt").write_text(text.getvalue())

    from django.db import connections

    connections.close_all()
    contention: dict[str, Any] = {}
    for variant in args.variants.split(","):
        start_at = time.time() + 8.0  # every process set up by then
        cmd = [sys.executable, __file__, "_profile_worker", str(var_dir), args.stack, variant]
        cmd += [str(args.threads), f"{start_at:.3f}", f"{args.seconds:g}"]
        procs = [
            subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
            for _ in range(args.procs)
        ]
        lat: list[float] = []
        errors: list[str] = []
        for proc in procs:
            out, _ = proc.communicate(timeout=args.seconds + 120)
            got = json.loads(out.strip().splitlines()[-1])
            lat += got["latency_ms"]
            errors += got["errors"]
        key = variant
        while key in contention:  # a variant named again: runs interleaved, kept apart
            key += "'"
        contention[key] = {
            "calls": len(lat),
            "per_second": round(len(lat) / args.seconds, 1),
            "latency_ms": percentiles([x / 1000 for x in lat]),
            "errors": len(errors),
            "error_kinds": sorted(set(errors)),
        }
        c = contention[key]
        print(
            f"  {key:9} {c['per_second']}/s p50 {c['latency_ms']['p50']} p99 "
            f"{c['latency_ms']['p99']} ms errors {c['errors']}",
            file=sys.stderr,
            flush=True,
        )
    return {
        "stack": setup.get("stack"),
        "stages_one_at_a_time": stages,
        "stage_lookups": n,
        "cprofile": str(var_dir / "profile-request.txt"),
        "contention": contention,
        "contention_method": (
            f"{args.procs} processes x {args.threads} threads (gunicorn's workers x threads), "
            f"closed loop for {args.seconds:g} s per variant, all starting together"
        ),
    }


# --- driver -----------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    if argv and argv[0] == "_setup":
        setup_phase(Path(argv[1]), int(argv[2]), Path(argv[3]), _stack(argv[4]))
        return 0
    if argv and argv[0] == "_profile_worker":
        profile_worker(Path(argv[1]), _stack(argv[2]), argv[3:])
        return 0
    if argv and argv[0] == "_load":
        load_phase(int(argv[1]), Path(argv[2]), float(argv[3]), argv[4:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="25,50,100,200", help="look-ups per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of arrivals")
    parser.add_argument("--drain", type=float, default=10.0, help="then seconds for answers")
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--max-connections", type=int, default=200, help="look-ups in flight")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--lookup-rate", default=None, help="DEVICE_LOOKUP_RATE for the portal")
    parser.add_argument("--var-dir", type=Path, default=_default_var_dir())
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--note", default="", help="free text kept in the JSON (e.g. commit)")
    parser.add_argument(
        "--stack",
        choices=["embedded", "env"],
        default="embedded",
        help="embedded: SQLite + diskcache (default); env: DATABASE_URL, CACHE_URL and "
        "CELERY_BROKER_URL from the environment (the set-up EMPTIES that database)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of the HTTP runs: each stage of a look-up timed alone, cProfile of the "
        "request, and the writes under contention (--procs x --threads, --seconds each)",
    )
    parser.add_argument(
        "--before",
        action="store_true",
        help="also run each rate against a second gunicorn whose count is in an explicit "
        "transaction (the code before 2026-11-28): 'lookup_before' in the JSON",
    )
    parser.add_argument("--profile-lookups", type=int, default=300)
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args(argv)
    stack = _stack(args.stack)
    if args.profile:
        started = time.monotonic()
        result = {"command": "python bench/bench_lookup.py " + " ".join(argv), "note": args.note}
        result["load_average_1min_at_start"] = round(os.getloadavg()[0], 2)
        result.update(profile(args, stack))
        result["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
        result["total_seconds"] = round(time.monotonic() - started, 1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
        return 0
    rates = [float(r) for r in args.rates.split(",") if r]
    var_dir = args.var_dir.resolve()
    started = time.monotonic()

    warm_rate, warm_seconds = 20.0, 2.0
    per_device = (
        sum(rates) * args.duration + warm_rate * warm_seconds + SEQUENTIAL + 1
    ) / args.devices
    lookup_rate = args.lookup_rate
    if lookup_rate is None and per_device > DEFAULT_LOOKUP_PER_HOUR * 0.9:
        lookup_rate = RAISED_RATE
    if lookup_rate:
        os.environ["DEVICE_LOOKUP_RATE"] = lookup_rate
    else:
        os.environ.pop("DEVICE_LOOKUP_RATE", None)

    print(f"  set-up in {var_dir}", file=sys.stderr, flush=True)
    setup_out = var_dir.parent / f"{var_dir.name}-setup.json"
    setup_cmd = [sys.executable, __file__, "_setup", str(var_dir), str(args.samples)]
    subprocess.run(
        [*setup_cmd, str(setup_out), args.stack],
        check=True,
        cwd=ROOT,
    )
    setup = json.loads(setup_out.read_text())
    stored = [tuple(x) for x in setup.pop("stored")]

    from bench_update_check import (
        _free_port,
        _settle,
        _stop,
        _tree_cpu,
        register_devices,
        start_nginx,
    )

    for name in STACK_VARS:
        os.environ.pop(name, None)
    os.environ.update(_portal_env(var_dir, stack))
    from django.conf import settings
    from loadgen import percentiles

    portal_port, floor_port, static_port = _free_port(), _free_port(), _free_port()
    gunicorn, web_cmd = start_gunicorn(var_dir, portal_port, stack)
    procs = [gunicorn]
    before_port = _free_port()
    before_proc = None
    if args.before:
        before_proc = start_gunicorn(var_dir, before_port, stack, before=True)[0]
    if before_proc is not None:
        procs.append(before_proc)
    try:
        tokens = register_devices(portal_port, args.devices)
        payloads = bodies(stored, len(tokens))
        requests_file = var_dir / "lookup-requests.json"
        requests_file.write_text(json.dumps(raw_posts(portal_port, tokens, payloads)))
        before_file = var_dir / "lookup-before-requests.json"
        before_file.write_text(json.dumps(raw_posts(before_port, tokens, payloads)))
        status, answer = _post(portal_port, tokens[0], payloads[0])
        sample = json.loads(answer)
        verdicts: dict[str, int] = {}
        for r in sample["results"]:
            verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1

        repo_dir = Path(settings.RELEASE_REPO_DIR)
        nginx, conf_dir = start_nginx(var_dir, repo_dir, floor_port, static_port, portal_port)
        procs.append(nginx)
        # the floor serves a file of the answer's very size (nginx reads it per request)
        (conf_dir / "floor" / "static.json").write_bytes(answer)
        floor_file = var_dir / "floor-requests.json"
        floor_file.write_text(
            json.dumps(
                [
                    f"GET {FLOOR_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{floor_port}\r\n"
                    "Accept: application/json\r\n\r\n"
                ]
            )
        )

        warm = argparse.Namespace(**{**vars(args), "duration": warm_seconds})
        load(floor_port, floor_file, warm_rate, warm)
        load(portal_port, requests_file, warm_rate, warm)
        if args.before:
            load(before_port, before_file, warm_rate, warm)
        _settle(procs)
        # one look-up at a time (nothing queued): what a single look-up costs
        alone = []
        for n in range(SEQUENTIAL):
            t0 = time.perf_counter()
            _post(portal_port, tokens[n % len(tokens)], payloads[n % len(payloads)])
            alone.append(time.perf_counter() - t0)
        _settle(procs)

        results: dict[str, Any] = {
            "command": "python bench/bench_lookup.py " + " ".join(argv),
            "note": args.note,
            "load_average_1min_at_start": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cores": os.cpu_count(),
            "method": (
                "open loop (bench/loadgen.py's generator, one process per run): look-up i is "
                "due at t0 + i/rate and its latency runs from that scheduled time, so queueing "
                f"counts; at most {args.max_connections} keep-alive connections, so at most "
                f"{args.max_connections} look-ups in flight; {args.duration:g} s of arrivals "
                f"then {args.drain:g} s to drain, answers still owed then count as errors "
                "('timeout'). generator_limited: see bench/loadgen.py."
            ),
            "stack": setup.get("stack"),
            "setup": setup,
            "lookup_body": f"{STORED} stored samples with current verdicts and {UNKNOWN} "
            f"unseen hashes per look-up; one body per device, {len(tokens)} devices",
            "sample_answer": {
                "status": status,
                "bytes": len(answer),
                "release": sample["release"],
                "cache_seconds": sample["cache_seconds"],
                "verdicts": verdicts,
            },
            "one_at_a_time": {
                "lookups": SEQUENTIAL,
                "latency_ms": percentiles(alone),
                "note": "one look-up after another over new connections (urllib), nothing "
                "queued: the cost of a single look-up",
            },
            "floor": f"nginx, GET of a static JSON file of {len(answer)} bytes (the answer's "
            "size) from a bare location",
            "gunicorn_command": web_cmd,
            "nginx": subprocess.run(
                ["nginx", "-v"], capture_output=True, text=True, check=False
            ).stderr.strip(),
            "devices": len(tokens),
            "device_lookup_rate": (
                f"DEVICE_LOOKUP_RATE={lookup_rate}: raised so the per-device throttle is not "
                "what is measured"
                if lookup_rate
                else f"default ({settings.DEVICE_LOOKUP_RATE}): each device asks about "
                f"{per_device:.0f} times in the whole run, below it"
            ),
            "rates": [],
        }
        runs = [("lookup", gunicorn, portal_port, requests_file)]
        if before_proc is not None:
            runs.append(("lookup_before", before_proc, before_port, before_file))
        for n, rate in enumerate(rates):
            entry: dict[str, Any] = {"rate": rate}
            entry["floor"] = load(floor_port, floor_file, rate, args)
            _settle(procs)
            for key, proc, port, file in runs if n % 2 == 0 else runs[::-1]:
                cpu0 = _tree_cpu(proc)
                entry[key] = load(port, file, rate, args)
                entry[key]["gunicorn_cpu_seconds"] = round(_tree_cpu(proc) - cpu0, 3)
                entry[f"settle_seconds_after_{key}"] = _settle(procs)
            for key in ("floor", *(r[0] for r in runs)):
                r = entry[key]
                lat = r["latency_ms"]
                flag = " GENERATOR-LIMITED" if r["generator_limited"] else ""
                print(
                    f"  {rate:g}/s {key:6}: ok {r['ok']} errors {r['error_count']} p50 "
                    f"{lat['p50']} p99 {lat['p99']} ms, {r['achieved_rate']}/s{flag}",
                    file=sys.stderr,
                    flush=True,
                )
            f, lk = entry["floor"]["latency_ms"], entry["lookup"]["latency_ms"]
            entry["lookup_over_floor"] = {
                q: round(lk[q] / f[q], 1) if f[q] else None for q in ("p50", "p99")
            }
            results["rates"].append(entry)
    finally:
        for proc in reversed(procs):
            _stop(proc)
    results["total_seconds"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
