"""Do scans keep up with uploads? A burst of scans through ``make run``'s own worker, against
the in-process analysis rate of the same files (issue "Many machines", point 3).

Run: PORTAL_VAR_DIR=var/bench .venv/bin/python bench/bench_scan_burst.py
         [--stack embedded|postgres|both] [--broker-transport ours|stock|both]
         [--scans 200] [--batch 1] [--via create|upload|both] [--phases] [--cprofile]
         [--concurrency 2] [--prefetch-multiplier N] [--polling-interval S]
         [--db-reuse-max N] [--label L] [--out F]
     (or ``python bench/run.py scan_burst``). Writes bench/results/scan_burst.json; never
     asserted.

- Floor: the corpus files that analyse (../shared/corpus/apks), through
  ``engine.analyze.analyze_with_content`` and ``engine.ruleset.match`` against an empty
  ruleset (what a scan does with no release published), in this one process; files/s is the
  median of ``--passes`` passes, measured before and after the bursts: the ratios use the
  faster of the two (the machine is shared, so this is the harder goal).
- Burst, per configuration, in a child process with its own settings: a fresh database and
  media folder under ``$PORTAL_VAR_DIR/scan-burst/<config>`` (PostgreSQL: the database is
  dropped and created again), migrated; the same files stored as samples with nothing sent
  to the broker; then ONE worker started as ``run_portal`` starts it (all queues,
  ``--concurrency=2``, ``-n worker1@%h``) and, once it is ready, ``--scans`` scans created at
  once over the samples round-robin with ``scan_create``, ``--batch`` per transaction (1:
  one transaction per scan, like separate uploads; the message goes on commit). With
  ``--via upload`` (or ``both``: a second burst on the same, now warm, worker) each scan
  comes through ``sample_upload`` instead, the upload service (hash, dedupe, record, queue).
- Figures come from the ScanJob rows: end-to-end scans/s = scans / (last ``finished_at`` -
  first ``queued_at``); latency = ``finished_at`` - ``queued_at`` (p50/p95/max); also
  queued->sent, sent->started, started->finished, and the per-slot gap between one scan's
  ``finished_at`` and the next ``started_at`` in the same pool process (ack, broker poll,
  hand-over to the pool, claim). CPU seconds of the worker, its pool and this process, and of
  the whole machine (others' tests share it), over the burst; the worker's CPU ms per scan
  (steadier than scans/s on a shared machine).
- Configurations: ``embedded`` = SQLite WAL + the filesystem broker, with ``ours`` (the
  ``filesystem`` alias as portal.celery sets it, portal/broker.py) and/or ``stock`` (the alias
  pointed back at ``kombu.transport.filesystem:Transport`` in the worker and in this
  producer, by this script only); ``postgres`` = PostgreSQL + Redis (DATABASE_URL /
  CELERY_BROKER_URL if set, else postgres://portal:portal@127.0.0.1:5432/portal_bench and
  redis://127.0.0.1:6390/5; started as .ci/run does when they are not running).
- The worker is the ``celery`` program itself, unless a configuration needs this script's
  wrapper (``python bench/bench_scan_burst.py _worker <celery args>``): the stock transport,
  the experiments ``--polling-interval`` (the filesystem broker's, settings say 0.1 s) and
  ``--db-reuse-max`` (Celery's CELERY_DB_REUSE_MAX: without it Celery's Django fixup closes
  the DB connection before and after every task), ``--phases`` (per-scan time of each step of
  ``scans.services.scan_run``, by wrapping its functions in the pool processes, plus the
  broker's get calls in the main process) or ``--cprofile`` (cProfile of scan_run in the pool
  processes). The wrapper imports portal.celery, applies those, then runs celery's main.
  ``--concurrency`` and ``--prefetch-multiplier`` are passed on the worker's command line.
- Goals (the issue): end-to-end scans/s >= half the in-process files/s, and p95 latency < 5 s.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from workers import run_portal_worker_args, spawn, wait_ready  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "apks"
RESULTS = ROOT / "bench" / "results" / "scan_burst.json"
STOCK_TRANSPORT = "kombu.transport.filesystem:Transport"
DEFAULT_PG = "postgres://portal:portal@127.0.0.1:5432/portal_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6390/5"
GOAL_RATIO = 0.5
GOAL_P95_S = 5.0
# Read only by this script's worker wrapper and its producer child; never by the product.
ENV_TRANSPORT = "BENCH_BURST_TRANSPORT"
ENV_POLLING = "BENCH_BURST_POLLING_INTERVAL"
ENV_DB_REUSE = "BENCH_BURST_DB_REUSE_MAX"
ENV_PHASES = "BENCH_BURST_PHASES_DIR"
ENV_CPROFILE = "BENCH_BURST_CPROFILE_DIR"


# --- small helpers -------------------------------------------------------------------------------
def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _dist(values: list[float], unit: float = 1.0, digits: int = 3) -> dict[str, float]:
    if not values:
        return {}
    return {
        "p50": round(statistics.median(values) * unit, digits),
        "p95": round(_pct(values, 0.95) * unit, digits),
        "max": round(max(values) * unit, digits),
        "mean": round(statistics.fmean(values) * unit, digits),
    }


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def analysable_files() -> list[Path]:
    """The corpus files that analyse: the floor and the burst use exactly these."""
    from engine.analyze import analyze_with_content
    from engine.errors import AnalysisError

    files = []
    for path in sorted(p for p in CORPUS.iterdir() if p.is_file()):
        try:
            analyze_with_content(path)
        except AnalysisError:
            continue
        files.append(path)
    return files


# --- 1. the floor: analysis in this one process ------------------------------------------------
def floor(files: list[Path], passes: int) -> dict[str, Any]:
    from engine.analyze import analyze_with_content
    from engine.ruleset import compile_ruleset, match

    ruleset = compile_ruleset(())
    for path in files:  # warm the page cache and the imports
        features, content = analyze_with_content(path)
        match(features, ruleset, content)
    rates = []
    before = _cpu(os.getpid())
    for _ in range(passes):
        started = time.perf_counter()
        for path in files:
            features, content = analyze_with_content(path)
            match(features, ruleset, content)
        rates.append(len(files) / (time.perf_counter() - started))
    cpu = _cpu_delta(before, _cpu(os.getpid()))
    return {
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "passes": passes,
        "files_per_s_each_pass": [round(r, 2) for r in rates],
        "files_per_s": round(statistics.median(rates), 2),
        # CPU time per file: steadier than files/s on a shared machine
        "cpu_ms_per_file": round(cpu["producer_cpu_s"] * 1000 / (passes * len(files)), 2),
        "others_cores": cpu["others_cores"],
    }


# --- PostgreSQL and Redis, as .ci/run starts them ----------------------------------------------
def _run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, **kw)


def _as_postgres(sql_or_cmd: str) -> subprocess.CompletedProcess[str]:
    return _run(["su", "postgres", "-c", sql_or_cmd])


def ensure_postgres(url: str) -> str | None:
    """Start the local cluster and create the bench role/database if needed; None when ready,
    else why not. Only for the default URL: a given DATABASE_URL is used as it is."""
    from urllib.parse import urlparse

    u = urlparse(url)
    host, port = u.hostname or "127.0.0.1", str(u.port or 5432)
    if _run(["pg_isready", "-h", host, "-p", port]).returncode != 0:
        versions = sorted(Path("/etc/postgresql").glob("*"), key=lambda p: float(p.name))
        if not versions:
            return "PostgreSQL is not installed (/etc/postgresql is empty)"
        _run(["pg_ctlcluster", versions[-1].name, "main", "start"])
        for _ in range(30):
            if _run(["pg_isready", "-h", host, "-p", port]).returncode == 0:
                break
            time.sleep(1)
        else:
            return "PostgreSQL did not start"
    user, password, name = u.username or "portal", u.password or "portal", u.path.lstrip("/")
    if not all(re.fullmatch(r"[A-Za-z0-9_]+", v) for v in (user, password, name)):
        return "the bench creates only plain [A-Za-z0-9_] role, password and database names"
    # the names are checked just above, so building the SQL text is safe
    probe = _as_postgres(f"psql -q -tc \"SELECT 1 FROM pg_roles WHERE rolname='{user}'\"")  # noqa: S608
    if probe.returncode == 0 and "1" not in probe.stdout:
        _as_postgres(f"psql -q -c \"CREATE ROLE {user} LOGIN PASSWORD '{password}' CREATEDB\"")
    env = {**os.environ, "PGPASSWORD": password}
    common = ["-h", host, "-p", port, "-U", user]
    drop = _run(["dropdb", *common, "--if-exists", "--force", name], env=env)
    if drop.returncode != 0:
        return f"cannot drop {name}: {drop.stderr.strip()}"
    create = _run(["createdb", *common, "-O", user, name], env=env)
    if create.returncode != 0:
        return f"cannot create {name}: {create.stderr.strip()}"
    return None


def ensure_redis(url: str) -> str | None:
    from urllib.parse import urlparse

    u = urlparse(url)
    port, db = str(u.port or 6379), (u.path.lstrip("/") or "0")
    if _run(["redis-cli", "-p", port, "ping"]).returncode != 0:
        _run(
            [
                "redis-server",
                "--port",
                port,
                "--daemonize",
                "yes",
                "--save",
                "",
                "--appendonly",
                "no",
            ]
        )
        for _ in range(30):
            if _run(["redis-cli", "-p", port, "ping"]).stdout.strip() == "PONG":
                break
            time.sleep(0.5)
        else:
            return "redis-server did not start"
    _run(["redis-cli", "-p", port, "-n", db, "flushdb"])
    return None


# --- the worker wrapper (runs in the worker: ``bench_scan_burst.py _worker <celery args>``) ---
_current: dict[str, float] = {}


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _current[name] = _current.get(name, 0.0) + time.perf_counter() - t0

    return wrapper


def _install_phase_timers(folder: Path) -> None:
    """In a pool process: time each step of scans.services.scan_run (wrapping the module's
    functions in this process only) and write one JSON line per scan."""
    from celery.signals import task_postrun, task_prerun

    import scans.services as services

    out = (folder / f"phases-{os.getpid()}.jsonl").open("a", buffering=1)
    for name, attr in (
        ("claim", "claim"),
        ("ruleset_source", "current_ruleset"),
        ("ruleset_compile", "compiled"),
        ("analyze", "analyze_with_content"),
        ("match", "engine_match"),
        ("verdict", "engine_verdict"),
        ("features_save", "sample_features_store"),
        ("units_write", "sample_units_store"),
        ("hits_record", "hits_record"),
    ):
        setattr(services, attr, _timed(name, getattr(services, attr)))
    local_path = services.local_path

    @contextlib.contextmanager
    def timed_local_path(storage_name: str) -> Iterator[str]:
        t0 = time.perf_counter()
        with local_path(storage_name) as path:
            _current["storage_open"] = time.perf_counter() - t0
            yield path

    services.local_path = timed_local_path
    execute = _timed("execute", services._scan_execute)
    services._scan_execute = execute
    scan_run = services.scan_run
    task_times: dict[str, float] = {}

    def timed_scan_run(*, scan_id: int, **kwargs: Any) -> Any:
        _current.clear()
        t0, w0, c0 = time.perf_counter(), time.time(), time.process_time()
        try:
            return scan_run(scan_id=scan_id, **kwargs)
        finally:
            row = {k: round(v, 6) for k, v in _current.items()}
            row.update(
                scan=scan_id,
                pid=os.getpid(),
                start=w0,
                scan_run=round(time.perf_counter() - t0, 6),
                scan_run_cpu=round(time.process_time() - c0, 6),
                task_prerun=task_times.get("prerun", 0.0),
            )
            out.write(json.dumps(row) + "\n")

    services.scan_run = timed_scan_run

    @task_prerun.connect(weak=False)
    def _prerun(**_: Any) -> None:
        task_times["prerun"] = time.time()

    @task_postrun.connect(weak=False)
    def _postrun(**_: Any) -> None:
        out.write(json.dumps({"pid": os.getpid(), "postrun": time.time()}) + "\n")


def _install_cprofile(folder: Path) -> None:
    import cProfile

    from celery.signals import worker_process_shutdown

    import scans.services as services

    profiler = cProfile.Profile()
    scan_run = services.scan_run
    count = [0]
    path = folder / f"cprofile-{os.getpid()}.pstats"

    def profiled(**kwargs: Any) -> Any:
        profiler.enable()
        try:
            return scan_run(**kwargs)
        finally:
            profiler.disable()
            count[0] += 1
            if count[0] % 25 == 0:
                profiler.dump_stats(path)

    services.scan_run = profiled

    @worker_process_shutdown.connect(weak=False)
    def _dump(**_: Any) -> None:
        profiler.dump_stats(path)


def _install_poll_counter(folder: Path) -> None:
    """In the worker's main process: count and time the filesystem broker's get calls."""
    from celery.signals import worker_shutdown
    from kombu.transport import get_transport_cls

    transport: Any = get_transport_cls("filesystem")
    channel = transport.Channel
    get = channel._get
    stats: dict[str, Any] = {"calls": 0, "empty": 0, "seconds": 0.0}
    stats["transport"] = f"{transport.__module__}:{transport.__name__}"

    def counted(self: Any, queue: str, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return get(self, queue, *args, **kwargs)
        except Exception:
            stats["empty"] += 1
            raise
        finally:
            stats["calls"] += 1
            stats["seconds"] += time.perf_counter() - t0

    channel._get = counted

    @worker_shutdown.connect(weak=False)
    def _dump(**_: Any) -> None:
        (folder / "broker-gets.json").write_text(json.dumps(stats))


def worker_wrapper(argv: list[str]) -> None:
    """``celery`` main, after this bench's patches (chosen by BENCH_BURST_* variables)."""
    os.chdir(ROOT)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    from celery.signals import worker_init, worker_process_init
    from kombu.transport import TRANSPORT_ALIASES

    from portal.celery import app

    if os.environ.get(ENV_TRANSPORT) == "stock":
        TRANSPORT_ALIASES["filesystem"] = STOCK_TRANSPORT
    polling = os.environ.get(ENV_POLLING)
    if polling:
        from django.conf import settings

        options = dict(settings.CELERY_BROKER_TRANSPORT_OPTIONS)
        options["polling_interval"] = float(polling)
        app.conf.broker_transport_options = options
    reuse = os.environ.get(ENV_DB_REUSE)
    if reuse:
        # Celery's Django fixup closes every DB connection before and after each task unless
        # CELERY_DB_REUSE_MAX is set (CONN_MAX_AGE does not stop it); this keeps them.
        app.conf["CELERY_DB_REUSE_MAX"] = int(reuse)
    phases = os.environ.get(ENV_PHASES)
    profile = os.environ.get(ENV_CPROFILE)
    if phases:

        @worker_init.connect(weak=False)
        def _main_process(**_: Any) -> None:
            if str(app.conf.broker_url or "").startswith("filesystem"):
                _install_poll_counter(Path(phases))

    if phases or profile:

        @worker_process_init.connect(weak=False)
        def _pool_process(**_: Any) -> None:
            if phases:
                _install_phase_timers(Path(phases))
            if profile:
                _install_cprofile(Path(profile))

    from celery.bin.celery import main as celery_main

    sys.argv = ["celery", *argv]
    sys.exit(celery_main())


# --- 2. one burst configuration (runs in a child process with its own settings) -------------
def _cpu(pid: int) -> dict[str, float]:
    import psutil

    try:
        proc = psutil.Process(pid)
        times = {"worker_main": sum(proc.cpu_times()[:2])}
        times["worker_pool"] = sum(sum(c.cpu_times()[:2]) for c in proc.children(recursive=True))
    except psutil.Error:
        times = {"worker_main": 0.0, "worker_pool": 0.0}
    times["producer"] = sum(psutil.Process().cpu_times()[:2])
    total = psutil.cpu_times()
    times["machine_busy"] = sum(total) - total.idle - getattr(total, "iowait", 0.0)
    times["wall"] = time.time()
    return times


def _cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    d = {k: after[k] - before[k] for k in before}
    wall = max(d.pop("wall"), 1e-9)
    ours = d["worker_main"] + d["worker_pool"] + d["producer"]
    return {
        "wall_s": round(wall, 2),
        **{f"{k}_cpu_s": round(v, 2) for k, v in d.items()},
        "ours_cores": round(ours / wall, 2),
        "others_cores": round(max(0.0, d["machine_busy"] - ours) / wall, 2),
        "machine_busy_cores": round(d["machine_busy"] / wall, 2),
    }


def _burst_figures(ids: list[int], created_s: float) -> dict[str, Any]:
    from scans.models import ScanJob, ScanStatus

    rows: list[dict[str, Any]] = [
        dict(r)
        for r in ScanJob.objects.filter(pk__in=ids).values(
            "id", "status", "queued_at", "sent_at", "started_at", "finished_at", "worker"
        )
    ]
    done = [r for r in rows if r["finished_at"] is not None and r["started_at"] is not None]
    out: dict[str, Any] = {
        "scans": len(ids),
        "finished": len(done),
        "failed": sum(r["status"] == ScanStatus.FAILED for r in rows),
        "create_s": round(created_s, 3),
    }
    if not done:
        return out
    first_queued = min(r["queued_at"] for r in rows)
    last_finished = max(r["finished_at"] for r in done)
    span = (last_finished - first_queued).total_seconds()
    latency = [(r["finished_at"] - r["queued_at"]).total_seconds() for r in done]
    sent = [(r["sent_at"] - r["queued_at"]).total_seconds() for r in done if r["sent_at"]]
    waited = [(r["started_at"] - r["sent_at"]).total_seconds() for r in done if r["sent_at"]]
    service = [(r["finished_at"] - r["started_at"]).total_seconds() for r in done]
    by_process: dict[str, list[dict[str, Any]]] = {}
    for r in done:
        by_process.setdefault(r["worker"], []).append(r)
    gaps = []
    for scans in by_process.values():
        scans.sort(key=lambda r: r["started_at"])
        gaps += [
            (b["started_at"] - a["finished_at"]).total_seconds()
            for a, b in itertools.pairwise(scans)
        ]
    busy = sum(service)
    out.update(
        {
            "span_s": round(span, 3),
            "scans_per_s": round(len(done) / span, 2) if span > 0 else 0.0,
            "latency_s": _dist(latency),
            "queued_to_sent_s": _dist(sent),
            "sent_to_started_s": _dist(waited),
            "started_to_finished_ms": _dist(service, 1000, 1),
            "slot_gap_ms": _dist(gaps, 1000, 1),
            "pool_processes": {k.rsplit(":", 1)[-1]: len(v) for k, v in by_process.items()},
            # share of the pool's slot time spent inside scan_run (rest: waiting for work)
            "slot_busy_share": round(busy / (span * max(1, len(by_process))), 3) if span else 0,
        }
    )
    return out


def _phase_figures(folder: Path, ids: set[int]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    postruns: dict[int, list[float]] = {}
    for path in folder.glob("phases-*.jsonl"):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if "postrun" in row:
                postruns.setdefault(row["pid"], []).append(row["postrun"])
            elif row.get("scan") in ids:
                rows.append(row)
    if not rows:
        return {}
    names = [
        "claim",
        "ruleset_source",
        "ruleset_compile",
        "storage_open",
        "analyze",
        "match",
        "verdict",
        "features_save",
        "units_write",
        "hits_record",
    ]
    for row in rows:
        inner = sum(row.get(n, 0.0) for n in names[1:])
        row["final_save_and_rest"] = max(0.0, row.get("execute", 0.0) - inner)
        row["prerun_to_scan_run"] = max(0.0, row["start"] - row.get("task_prerun", row["start"]))
    names += ["final_save_and_rest", "prerun_to_scan_run", "scan_run", "scan_run_cpu"]

    def table(group: list[dict[str, Any]]) -> dict[str, Any]:
        if not group:
            return {}
        return {
            n: {
                "mean_ms": round(statistics.fmean(r.get(n, 0.0) for r in group) * 1000, 2),
                "p50_ms": round(statistics.median(r.get(n, 0.0) for r in group) * 1000, 2),
                "p95_ms": round(_pct([r.get(n, 0.0) for r in group], 0.95) * 1000, 2),
                "total_s": round(sum(r.get(n, 0.0) for r in group), 3),
            }
            for n in names
        }

    # A sample's first scan writes its features file (and unit pack); later scans skip both.
    first = [r for r in rows if r.get("features_save", 0.0) > 0.001]
    repeat = [r for r in rows if r.get("features_save", 0.0) <= 0.001]
    # task_postrun of one task to task_prerun of the next in the same pool process: the ack,
    # the broker fetch (poll) and the hand-over to the pool
    handover = []
    by_pid: dict[int, list[float]] = {}
    for r in rows:
        by_pid.setdefault(r["pid"], []).append(r["task_prerun"])
    for pid, starts in by_pid.items():
        ends = sorted(postruns.get(pid, []))
        for start in sorted(starts):
            before = [e for e in ends if e <= start]
            if before:
                handover.append(start - before[-1])
    out: dict[str, Any] = {
        "scans_timed": len(rows),
        "per_scan": table(rows),
        "first_scan_of_sample": {"scans": len(first), **table(first)},
        "repeat_scan": {"scans": len(repeat), **table(repeat)},
        "postrun_to_next_prerun_ms": _dist(
            [h for h in handover if h < 60], 1000, 1
        ),  # same process only; larger gaps are before the burst
    }
    gets = folder / "broker-gets.json"
    if gets.exists():
        out["broker_get_calls"] = json.loads(gets.read_text())
    return out


def _cprofile_summary(folder: Path, top: int = 30) -> dict[str, Any]:
    import io
    import pstats

    files = sorted(folder.glob("cprofile-*.pstats"))
    if not files:
        return {}
    out = {}
    for key in ("cumulative", "tottime"):
        buf = io.StringIO()
        stats = pstats.Stats(*(str(f) for f in files), stream=buf)
        stats.sort_stats(key).print_stats(top)
        out[key] = buf.getvalue().split("\n", 6)[-1]  # drop the header lines
    return out


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    """Warm shutdown (SIGTERM to the main process only, as Ctrl-C in ``make run``), so the
    pool finishes and the bench's shutdown hooks write their files; then the whole group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the pool
    proc.wait()


def run_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """One configuration in this (child) process: its settings come from the environment the
    parent gave it."""
    import django

    django.setup()
    from django.core.files import File
    from django.core.management import call_command
    from django.db import connection, transaction
    from kombu.transport import TRANSPORT_ALIASES

    from portal.celery import app

    if cfg["transport"] == "stock":
        TRANSPORT_ALIASES["filesystem"] = STOCK_TRANSPORT  # the producer side
    import scans.services as services
    from scans.models import FINISHED, ScanJob

    var = Path(os.environ["PORTAL_VAR_DIR"])
    t0 = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    migrate_s = time.perf_counter() - t0
    files = [Path(p) for p in cfg["files"]]
    send = services.scan_enqueue
    services.scan_enqueue = lambda *, scan_id: None
    try:
        samples = [services.sample_ingest(path=p)[0] for p in files]
    finally:
        services.scan_enqueue = send
    ScanJob.objects.all().delete()
    app.control.purge()

    log = var / "worker.log"
    log.unlink(missing_ok=True)
    env = dict(os.environ)
    from django.conf import settings

    args = run_portal_worker_args(list(settings.CELERY_TASK_QUEUES_NAMES), cfg["concurrency"])
    if cfg["prefetch_multiplier"]:
        args.append(f"--prefetch-multiplier={cfg['prefetch_multiplier']}")
    wrap = cfg["transport"] == "stock" or any(
        cfg[k] for k in ("phases", "cprofile", "polling", "db_reuse_max")
    )
    if cfg["phases"]:
        env[ENV_PHASES] = str(var / "phases")
        (var / "phases").mkdir(exist_ok=True)
    if cfg["cprofile"]:
        env[ENV_CPROFILE] = str(var / "cprofile")
        (var / "cprofile").mkdir(exist_ok=True)
    if cfg["polling"]:
        env[ENV_POLLING] = str(cfg["polling"])
    if cfg["db_reuse_max"]:
        env[ENV_DB_REUSE] = str(cfg["db_reuse_max"])
    cmd = (
        [sys.executable, str(Path(__file__).resolve()), "_worker", *args]
        if wrap
        else [str(Path(sys.executable).with_name("celery")), *args]
    )
    result: dict[str, Any] = {
        "migrate_s": round(migrate_s, 2),
        "samples": len(samples),
        "worker_command": " ".join(
            (["python", "bench/bench_scan_burst.py", "_worker"] if wrap else ["celery"]) + args
        ),
        "database": connection.vendor,
        "broker": str(settings.CELERY_BROKER_URL).split("://")[0],
        "bursts": [],
    }
    proc = spawn(cmd, env, log)
    (var / "worker.pid").write_text(str(proc.pid))
    try:
        result["worker_ready_s"] = round(wait_ready(log, 120, proc), 2)
        time.sleep(1.0)  # let the start-up recovery pass and the first heartbeat settle
        vias = ["create", "upload"] if cfg["via"] == "both" else [cfg["via"]]
        for n, via in enumerate(vias):
            before = _cpu(proc.pid)
            started = time.perf_counter()
            ids: list[int] = []
            if via == "create":
                for b in range(0, cfg["scans"], cfg["batch"]):
                    with transaction.atomic():
                        for i in range(b, min(cfg["scans"], b + cfg["batch"])):
                            scan = services.scan_create(sample=samples[i % len(samples)], user=None)
                            ids.append(scan.pk)
            else:
                for i in range(cfg["scans"]):
                    path = files[i % len(files)]
                    with path.open("rb") as fh:
                        _, scan, _ = services.sample_upload(
                            file=File(fh, name=path.name), name=path.name, user=None
                        )
                    ids.append(scan.pk)
            created_s = time.perf_counter() - started
            error = None
            while True:
                done = ScanJob.objects.filter(pk__in=ids, status__in=FINISHED).count()
                if done == len(ids):
                    break
                if proc.poll() is not None:
                    error = f"the worker exited (code {proc.returncode}) with {done} finished"
                    break
                if time.perf_counter() - started > cfg["timeout"]:
                    error = f"timed out after {cfg['timeout']} s with {done}/{len(ids)} finished"
                    break
                time.sleep(0.2)
            cpu = _cpu_delta(before, _cpu(proc.pid))
            worker_ms = (cpu["worker_pool_cpu_s"] + cpu["worker_main_cpu_s"]) * 1000 / len(ids)
            cpu["worker_cpu_ms_per_scan"] = round(worker_ms, 2)
            cpu["producer_cpu_ms_per_scan"] = round(cpu["producer_cpu_s"] * 1000 / len(ids), 2)
            # what the worker's CPU cost alone would allow with every core to itself
            cores = min(cfg["concurrency"], os.cpu_count() or 1)
            cpu["cpu_bound_scans_per_s_estimate"] = round(cores * 1000 / max(worker_ms, 1e-9), 1)
            burst = {
                "via": via,
                "batch": cfg["batch"] if via == "create" else 1,
                "warm_worker": n > 0,
                **_burst_figures(ids, created_s),
                "cpu": cpu,
            }
            if error:
                burst["error"] = error
                burst["worker_log_tail"] = _tail(log)
            burst["_ids"] = ids
            result["bursts"].append(burst)
            print(json.dumps({k: v for k, v in burst.items() if k != "_ids"}), flush=True)
            if error:
                break
    finally:
        stop_worker(proc)
        (var / "worker.pid").unlink(missing_ok=True)
    for burst in result["bursts"]:
        ids_set = set(burst.pop("_ids"))
        if cfg["phases"]:
            burst["phases"] = _phase_figures(var / "phases", ids_set)
    if cfg["cprofile"]:
        result["cprofile"] = _cprofile_summary(var / "cprofile")
    damaged = var / "broker" / "damaged"
    result["broker_damaged_messages"] = len(list(damaged.iterdir())) if damaged.exists() else 0
    result["worker_log_errors"] = [
        line
        for line in log.read_text(errors="replace").splitlines()
        if ("ERROR" in line or "CRITICAL" in line or "Traceback" in line)
        and "exited with 'signal 15" not in line
    ][:10]
    return result


def child_main(cfg_path: str, out_path: str) -> None:
    cfg = json.loads(Path(cfg_path).read_text())

    def on_term(*_: Any) -> None:
        raise SystemExit(143)  # runs the finally blocks: the worker is stopped

    signal.signal(signal.SIGTERM, on_term)
    try:
        result = run_config(cfg)
    except Exception as exc:
        import traceback

        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}"}
    Path(out_path).write_text(json.dumps(result, default=str))


# --- 3. the parent: configurations, figures, goals ---------------------------------------------
def _kill_left_worker(pidfile: Path) -> None:
    """SIGKILL the process group of a worker the child could not stop (it was killed): only
    if that pid is still a celery worker with this configuration's var folder."""
    import psutil

    with contextlib.suppress(OSError, ValueError, psutil.Error):
        proc = psutil.Process(int(pidfile.read_text()))
        ours = "worker" in proc.cmdline() and proc.environ().get("PORTAL_VAR_DIR") == str(
            pidfile.parent
        )
        if ours:
            os.killpg(proc.pid, signal.SIGKILL)


def launch(name: str, cfg: dict[str, Any], env: dict[str, str], base: Path) -> dict[str, Any]:
    import shutil

    var = base / name
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    env = {**env, "PORTAL_VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "portal.settings"}
    (var / "config.json").write_text(json.dumps(cfg))
    out = var / "result.json"
    budget = 180 + cfg["timeout"] * (2 if cfg["via"] == "both" else 1)
    child = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "_burst",
            str(var / "config.json"),
            str(out),
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        child.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=45)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if (var / "worker.pid").exists():  # the child did not get to stop it
            _kill_left_worker(var / "worker.pid")
    if not out.exists():
        return {"error": f"the bench child ended with {child.returncode} and no result"}
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _goals(burst: dict[str, Any], floor_rate: float) -> dict[str, Any]:
    rate = burst.get("scans_per_s", 0.0)
    p95 = burst.get("latency_s", {}).get("p95")
    complete = burst.get("finished") == burst.get("scans") and "error" not in burst
    return {
        "ratio_to_in_process": round(rate / floor_rate, 3) if floor_rate else None,
        "rate_goal_met": bool(complete and rate >= GOAL_RATIO * floor_rate),
        "p95_goal_met": bool(complete and p95 is not None and p95 < GOAL_P95_S),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", choices=["embedded", "postgres", "both"], default="both")
    parser.add_argument("--broker-transport", choices=["ours", "stock", "both"], default="both")
    parser.add_argument("--scans", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1, help="scans per transaction (create)")
    parser.add_argument("--via", choices=["create", "upload", "both"], default="both")
    parser.add_argument("--passes", type=int, default=5, help="floor passes over the corpus")
    parser.add_argument("--timeout", type=float, default=150, help="seconds per burst")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--prefetch-multiplier", type=int, default=0, help="0: settings'")
    parser.add_argument("--polling-interval", type=float, default=0.0, help="0: settings'")
    parser.add_argument("--db-reuse-max", type=int, default=0, help="0: settings'")
    parser.add_argument("--phases", action="store_true", help="time scan_run's steps")
    parser.add_argument("--cprofile", action="store_true", help="cProfile scan_run in the pool")
    parser.add_argument("--label", default="", help="a name for this run in the JSON")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    var_root = Path(os.environ.get("PORTAL_VAR_DIR", str(ROOT / "var" / "bench"))).resolve()
    base = var_root / "scan-burst"
    files = analysable_files()
    print(f"floor: {len(files)} analysable files, {args.passes} passes", flush=True)
    floors = [floor(files, args.passes)]
    print(json.dumps(floors[0]), flush=True)

    common = {
        "files": [str(p) for p in files],
        "scans": args.scans,
        "batch": max(1, args.batch),
        "via": args.via,
        "timeout": args.timeout,
        "concurrency": args.concurrency,
        "prefetch_multiplier": args.prefetch_multiplier,
        "polling": args.polling_interval,
        "db_reuse_max": args.db_reuse_max,
        "phases": args.phases,
        "cprofile": args.cprofile,
    }
    base_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL") and not k.startswith("BENCH_BURST_")
    }
    configs: list[tuple[str, dict[str, Any], dict[str, str]]] = []
    if args.stack in ("embedded", "both"):
        transports = (
            ["ours", "stock"] if args.broker_transport == "both" else [args.broker_transport]
        )
        for t in transports:
            configs.append((f"embedded-{t}", {**common, "transport": t}, dict(base_env)))
    results: dict[str, Any] = {}
    if args.stack in ("postgres", "both"):
        db_url = os.environ.get("DATABASE_URL", DEFAULT_PG)
        broker_url = os.environ.get("CELERY_BROKER_URL", DEFAULT_REDIS)
        why = None
        try:
            if "DATABASE_URL" not in os.environ:
                why = ensure_postgres(db_url)
            if why is None and "CELERY_BROKER_URL" not in os.environ:
                why = ensure_redis(broker_url)
        except (OSError, subprocess.SubprocessError) as exc:  # not installed, not root, ...
            why = f"cannot start PostgreSQL/Redis here: {exc}"
        env = {**base_env, "DATABASE_URL": db_url, "CELERY_BROKER_URL": broker_url}
        if why is None:
            configs.append(("postgres-redis", {**common, "transport": "redis"}, env))
        else:
            results["postgres-redis"] = {"skipped": why}
            print("postgres-redis skipped:", why, flush=True)

    for name, cfg, env in configs:
        print(f"--- {name}", flush=True)
        started = time.monotonic()
        results[name] = launch(name, cfg, env, base)
        results[name]["seconds"] = round(time.monotonic() - started, 1)
    # The machine is shared: measure the floor again at the end and hold the bursts to the
    # faster of the two (the harder goal).
    floors.append(floor(files, args.passes))
    print(json.dumps(floors[1]), flush=True)
    floor_result = max(floors, key=lambda f: f["files_per_s"])
    for res in results.values():
        for burst in res.get("bursts", []):
            burst.update(_goals(burst, floor_result["files_per_s"]))

    report = {
        "label": args.label,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "nproc": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "loadavg_at_end": os.getloadavg(),
        },
        "settings": {k: v for k, v in common.items() if k != "files"},
        "goals": {"ratio_at_least": GOAL_RATIO, "p95_below_s": GOAL_P95_S},
        "floor": floor_result,
        "floor_before_and_after": floors,
        "configs": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    print_table(report)
    print("wrote", args.out)


def print_table(report: dict[str, Any]) -> None:
    floor_rate = report["floor"]["files_per_s"]
    each = ", ".join(str(f["files_per_s"]) for f in report["floor_before_and_after"])
    print(
        f"\nin-process floor: {floor_rate} files/s ({report['floor']['files']} files; "
        f"before, after: {each}; ratios use the faster)"
    )
    head = f"{'config':<16} {'via':<7} {'scans/s':>8} {'ratio':>6} {'p50 s':>6} {'p95 s':>6}"
    print(head + f" {'max s':>6} {'gap ms':>7}  goals (rate, p95)")
    for name, res in report["configs"].items():
        if "bursts" not in res:
            print(f"{name:<16} {res.get('skipped') or res.get('error')}")
            continue
        for b in res["bursts"]:
            lat = b.get("latency_s", {})
            gap = b.get("slot_gap_ms", {}).get("p50", "")
            goals = f"{'met' if b['rate_goal_met'] else 'NOT met'}, "
            goals += "met" if b["p95_goal_met"] else "NOT met"
            if "error" in b:
                goals += f"  ({b['error']})"
            print(
                f"{name:<16} {b['via']:<7} {b.get('scans_per_s', 0):>8} "
                f"{b['ratio_to_in_process']:>6} {lat.get('p50', ''):>6} {lat.get('p95', ''):>6} "
                f"{lat.get('max', ''):>6} {gap:>7}  {goals}"
            )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        worker_wrapper(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "_burst":
        child_main(sys.argv[2], sys.argv[3])
    else:
        main()
