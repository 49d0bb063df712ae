"""Detection-report benchmark: ingest, storage before and after the roll-up and expiry.

    python bench/run.py reports
    .venv/bin/python bench/bench_reports.py [--reports 1000000] [--batch 500] [--devices 10000]
        [--days 40] [--http-batches 200] [--http-clients 4] [--workers N] [--skip-http]
        [--var-dir DIR]

Writes bench/results/reports.json. Measures, never asserts. Runs under its own
PORTAL_VAR_DIR (``--var-dir``, else $PORTAL_VAR_DIR/bench-reports, else
/tmp/bench-reports-<uid>) with a fresh SQLite database (WAL), so nobody else's data is touched.

(a) Ingest: ``--reports`` detections through the real service ``detections_report`` in
    batches of ``--batch`` (500, the most a batch may hold), each batch from one of
    ``--devices`` devices, received over ``--days`` days (the service's clock set per batch,
    so that the roll-up and expiry have something to do). A batch's device runs one of 5
    releases (60% the newest); each detection is one of 5,000 apps (one package and signer
    each), drawn Pareto-skewed as real detections are (a few apps draw most of them), and one
    of the two signatures written for that app (2,000 signatures, revision 1-3).
(b) Storage: the database's used bytes (pages in use x page size, after a WAL checkpoint)
    and the file size after ingest, after ``detections_rollup`` (roll up every complete day,
    delete raw reports older than DEVICE_REPORT_RETENTION_DAYS, 30) and after VACUUM (SQLite
    never gives freed pages back to the file system by itself); rows per table.
(c) Reads: the signature and release aggregates (``signature_detections``,
    ``release_detections``) of the most reported signature and release, after the roll-up.
(d) HTTP: ``--http-batches`` batches of ``--batch`` detections through
    ``POST /api/v1/devices/reports/`` under gunicorn (``--workers``, default 2 x cores + 1) on
    127.0.0.1, from ``--http-clients`` threads, each with its own device registered through the
    real endpoint; ``DEVICE_REPORT_RATE`` raised so the throttle is not what is measured. The
    load generator shares the two cores with the server: the figures are a floor.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
RESULTS = ROOT / "bench" / "results" / "reports.json"
SIGNATURES = 2_000
APPS = 5_000
RELEASES = 5


def _default_var_dir() -> Path:
    given = os.environ.get("PORTAL_VAR_DIR")
    return Path(given) / "bench-reports" if given else Path(f"/tmp/bench-reports-{os.getuid()}")


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


def _hex(kind: str, i: int) -> str:
    return hashlib.sha256(f"bench-{kind}-{i}".encode()).hexdigest()


def _skewed(rng: random.Random, n: int) -> int:
    """0..n-1, Pareto-skewed: low numbers are drawn far more often."""
    return min(n - 1, int(rng.paretovariate(1.1)) - 1)


def _detections(
    rng: random.Random, count: int, when: datetime.datetime, release: int
) -> list[dict[str, Any]]:
    stamp = when.isoformat()
    out = []
    for _ in range(count):
        # a few apps draw most detections; an app is detected by the signatures written for it
        app = _skewed(rng, APPS) if rng.random() < 0.9 else rng.randrange(APPS)
        sig = (app * 7919 + rng.randrange(2)) % SIGNATURES
        out.append(
            {
                "signature_id": sig + 1,
                "revision": 1 + sig % 3,
                "release": release,
                "app_sha256": _hex("app", app),
                "package": f"com.bench.app{app}",
                "cert_sha256": _hex("cert", app % 1000),
                "detected_at": stamp,
            }
        )
    return out


def _batch(rng: random.Random, count: int, when: datetime.datetime) -> dict[str, Any]:
    # most devices run the newest release, some lag behind
    release = rng.choices(range(RELEASES, 0, -1), weights=[60, 25, 10, 4, 1])[0]
    return {
        "batch_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "installed": {"release": release, "engine_version": 2},
        "detections": _detections(rng, count, when, release),
    }


def _storage() -> dict[str, Any]:
    from django.conf import settings
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.execute("PRAGMA page_size")
        page = cursor.fetchone()[0]
        cursor.execute("PRAGMA page_count")
        pages = cursor.fetchone()[0]
        cursor.execute("PRAGMA freelist_count")
        free = cursor.fetchone()[0]
    rows = {}
    from releases.models import DetectionReport, DetectionRollup, ReportBatch

    for model in (DetectionReport, DetectionRollup, ReportBatch):
        rows[model._meta.db_table] = model.objects.count()
    path = Path(settings.DATABASES["default"]["NAME"])
    return {
        "used_bytes": (pages - free) * page,
        "file_bytes": path.stat().st_size,
        "rows": rows,
        "table_bytes": _table_bytes(),
    }


def _table_bytes() -> dict[str, int] | None:
    """Bytes of the raw-report and roll-up tables, each with its indexes (SQLite's dbstat)."""
    from django.db import connection

    from releases.models import DetectionReport, DetectionRollup

    out = {}
    with connection.cursor() as cursor:
        for model in (DetectionReport, DetectionRollup):
            table = model._meta.db_table
            names = [table, *(i.name for i in model._meta.indexes)]
            cursor.execute("SELECT name FROM sqlite_master WHERE tbl_name = %s", [table])
            names += [row[0] for row in cursor.fetchall()]
            marks = ", ".join(["%s"] * len(set(names)))
            try:
                cursor.execute(
                    f"SELECT SUM(pgsize) FROM dbstat WHERE name IN ({marks})",  # noqa: S608
                    sorted(set(names)),
                )
            except Exception:
                return None
            out[table] = int(cursor.fetchone()[0] or 0)
    return out


def _vacuum() -> float:
    from django.db import connection

    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM")
    return round(time.perf_counter() - start, 2)


def service_phase(args: argparse.Namespace, var_dir: Path) -> dict[str, Any]:
    _django(var_dir)
    from django.utils import timezone

    from engine.rollout import rollout_bucket
    from releases.models import Channel, Device
    from releases.selectors_reports import release_detections, signature_detections
    from releases.services_reports import detections_report, detections_rollup, report_batch_parse

    rng = random.Random(12)
    devices = []
    for i in range(args.devices):
        device_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        devices.append(
            Device(
                device_id=device_id,
                token_hash=_hex("token", i),
                token_prefix="dev_benc",  # noqa: S106 (not a secret)
                rollout_bucket=rollout_bucket(device_id),
                channel=Channel.BETA if i % 10 == 0 else Channel.STABLE,
            )
        )
    Device.objects.bulk_create(devices, batch_size=2000)
    devices = list(Device.objects.all())
    empty = _storage()

    now = timezone.now()
    batches = args.reports // args.batch
    parse_seconds = ingest_seconds = 0.0
    for i in range(batches):
        # spread evenly over --days, oldest first, as the days went by
        when = now - datetime.timedelta(days=args.days * (batches - i) / batches)
        payload = _batch(rng, args.batch, when)
        start = time.perf_counter()
        parsed = report_batch_parse(json.loads(json.dumps(payload)))
        mid = time.perf_counter()
        detections_report(device=rng.choice(devices), batch=parsed, now=when)
        parse_seconds += mid - start
        ingest_seconds += time.perf_counter() - mid
        if (i + 1) % 200 == 0:
            print(f"  {(i + 1) * args.batch:,} reports in {ingest_seconds:.1f} s", flush=True)
    stored = batches * args.batch
    before = _storage()

    start = time.perf_counter()
    rolled = detections_rollup()
    rollup_seconds = round(time.perf_counter() - start, 2)
    after = _storage()
    vacuum_seconds = _vacuum()
    vacuumed = _storage()

    start = time.perf_counter()
    sig = signature_detections(signature_id=1)
    sig_seconds = round(time.perf_counter() - start, 3)
    start = time.perf_counter()
    rel = release_detections(number=1)
    rel_seconds = round(time.perf_counter() - start, 3)
    return {
        "reports": stored,
        "batch": args.batch,
        "devices": args.devices,
        "days": args.days,
        "ingest_seconds": round(ingest_seconds, 2),
        "ingest_reports_per_second": round(stored / ingest_seconds),
        "ingest_ms_per_batch": round(1000 * ingest_seconds / batches, 2),
        "parse_seconds": round(parse_seconds, 2),
        "storage_empty": empty,
        "storage_after_ingest": before,
        "rollup_and_expiry_seconds": rollup_seconds,
        "rollup": {
            "days_rolled": len(rolled.days_rolled),
            "rollup_rows": rolled.rollup_rows,
            "reports_deleted": rolled.reports_deleted,
            "batches_deleted": rolled.batches_deleted,
        },
        "storage_after_rollup": after,
        "vacuum_seconds": vacuum_seconds,
        "storage_after_vacuum": vacuumed,
        "bytes_per_raw_report": round(
            (before["used_bytes"] - empty["used_bytes"]) / max(1, stored), 1
        ),
        "bytes_per_report_rolled_up": _per_report(vacuumed, "releases_detectionrollup", stored),
        "bytes_per_raw_report_kept": _per_report(
            vacuumed, "releases_detectionreport", vacuumed["rows"]["releases_detectionreport"]
        ),
        "reads": {
            "signature_detections_seconds": sig_seconds,
            "signature_1": {"devices": sig.devices, "reports": sig.reports, "apps": len(sig.apps)},
            "release_detections_seconds": rel_seconds,
            "release_1_signatures": rel.signature_count,
        },
    }


def _per_report(storage: dict[str, Any], table: str, reports: int) -> float | None:
    sizes = storage.get("table_bytes")
    return round(sizes[table] / max(1, reports), 1) if sizes else None


# --- (d) HTTP -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_gunicorn(var_dir: Path, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    env = dict(os.environ)
    env.update(
        PORTAL_VAR_DIR=str(var_dir),
        DJANGO_SETTINGS_MODULE="portal.settings",
        DEVICE_REPORT_RATE="100000000/s",
        DEVICE_REGISTER_RATE="100000000/s",
        LOG_LEVEL="WARNING",
    )
    cmd = [
        str(Path(sys.executable).with_name("gunicorn")),
        "portal.wsgi",
        f"--bind=127.0.0.1:{port}",
        f"--workers={workers}",
        "--timeout=120",
        "--log-level=warning",
    ]
    log = (var_dir / "gunicorn.log").open("wb")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if s.recv(12).startswith(b"HTTP/1.1"):
                    return proc, port
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    _stop(proc)
    raise SystemExit(f"gunicorn did not start; see {var_dir / 'gunicorn.log'}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def http_phase(args: argparse.Namespace, var_dir: Path) -> dict[str, Any]:
    import requests
    from django.conf import settings

    workers = args.workers or 2 * (os.cpu_count() or 1) + 1
    proc, port = _start_gunicorn(var_dir, workers)
    base = f"http://127.0.0.1:{port}"
    latencies: list[float] = []
    codes: dict[int, int] = {}
    lock = threading.Lock()
    try:
        tokens = []
        for _ in range(args.http_clients):
            answer = requests.post(
                base + "/api/v1/devices/register/",
                json={"enrollment_key": settings.DEVICE_ENROLLMENT_KEY},
                timeout=30,
            )
            tokens.append(answer.json()["token"])
        rng = random.Random(34)
        bodies = [
            json.dumps(_batch(rng, args.batch, datetime.datetime.now(datetime.UTC))).encode()
            for _ in range(args.http_batches)
        ]

        def client(k: int) -> None:
            session = requests.Session()
            headers = {"Authorization": f"Token {tokens[k]}", "Content-Type": "application/json"}
            for body in bodies[k :: args.http_clients]:
                start = time.perf_counter()
                answer = session.post(
                    base + "/api/v1/devices/reports/", data=body, headers=headers, timeout=120
                )
                took = time.perf_counter() - start
                with lock:
                    latencies.append(took)
                    codes[answer.status_code] = codes.get(answer.status_code, 0) + 1

        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.http_clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
    finally:
        _stop(proc)
    ordered = sorted(latencies)
    ok = codes.get(201, 0)
    return {
        "server": f"gunicorn portal.wsgi --workers={workers} (sync), SQLite WAL",
        "clients": args.http_clients,
        "batches": len(latencies),
        "batch": args.batch,
        "status_codes": {str(k): v for k, v in sorted(codes.items())},
        "seconds": round(wall, 2),
        "batches_per_second": round(len(latencies) / wall, 1),
        "reports_per_second": round(ok * args.batch / wall),
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=40)
    parser.add_argument("--http-batches", type=int, default=200)
    parser.add_argument("--http-clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=0, help="gunicorn workers (2 x cores + 1)")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--var-dir", type=Path, default=_default_var_dir())
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    var_dir = args.var_dir.resolve()
    started = time.monotonic()
    results: dict[str, Any] = {
        "command": "python bench/bench_reports.py " + " ".join(argv),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "database": "SQLite (WAL), a fresh file",
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    results["service"] = service_phase(args, var_dir)
    print(json.dumps(results["service"], indent=2), flush=True)
    if not args.skip_http:
        results["http"] = http_phase(args, var_dir)
        print(json.dumps(results["http"], indent=2), flush=True)
    results["total_seconds"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
