"""Release benchmark: build times, file sizes, update-check load and client apply times.

    python bench/run.py releases
    .venv/bin/python bench/bench_releases.py [--sizes 10000,100000,1000000]
        [--service-max 100000] [--delta 10000] [--concurrency 50,500] [--requests 4000]
        [--duration 20] [--workers N] [--threads 1] [--skip-load] [--var-dir DIR]

Writes bench/results/releases.json. Measures, never asserts. Everything runs under its own
PORTAL_VAR_DIR (``--var-dir``, else $PORTAL_VAR_DIR, else /tmp/bench-releases-<uid>), one
fresh SQLite database per size, so nobody else's data is touched.

(a) Build time per size, through the real ``release_publish`` service (the snapshot) and the
    real ``releases.build_release`` Celery task, run in-process with ``.apply()`` (the task
    body, service and TUF writes exactly as a worker runs them, minus the broker hop).
    Signatures and revisions are made with ``bulk_create``, all SHA-256 APK hash signatures
    (the case the size goals are written for). Sizes above
    ``--service-max`` are measured for the file build only (records made in memory, then
    the same encode + TUF write the build does); the JSON says which.
(b) Deltas through the same service and task: ``--delta`` new SHA-256 hash signatures
    (release 2), then ``--delta`` scattered ones disabled (release 3); the sizes are read
    from the ``ReleaseFile`` rows the build wrote.
(c) Update checks under gunicorn on 127.0.0.1 (``--workers`` default 2 x cores + 1, sync
    workers), load from a second process (an asyncio HTTP/1.1 client in this file, stdlib
    only; keep-alive when the server allows it): ``GET /api/v1/devices/update/?installed=1``
    with real device tokens (one device per client, registered through ``device_register``;
    ``DEVICE_UPDATE_RATE`` raised so the throttle is not what is measured; each device is
    one release behind, so the answer is an offer of ``delta-1-2.bin``) and
    ``GET /updates/metadata/timestamp.json``. Each run stops at ``--requests`` requests or
    ``--duration`` seconds, whichever comes first. On a 2-core machine the load generator
    shares the CPUs with the server: figures are a floor.
(d) Client apply-and-verify: what the client does after tuf.ngclient's download (which
    checks length and SHA-256): SHA-256 of the file, ``apply_delta``/``apply_full``, and the
    state hash compared with the signed ``state_sha256``.
"""

from __future__ import annotations

import argparse
import asyncio
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
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
RESULTS = ROOT / "bench" / "results" / "releases.json"
ANY_ENGINE = 1 << 30


def _default_var_dir() -> Path:
    given = os.environ.get("PORTAL_VAR_DIR")
    return Path(given) if given else Path(f"/tmp/bench-releases-{os.getuid()}")


def _timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, round(time.perf_counter() - start, 3)


def _digest(i: int) -> str:
    return hashlib.sha256(f"bench-signature-{i}".encode()).hexdigest()


# --- (a) (b) (d): one size, in its own process and database --------------------------------


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


def _make_signatures(first: int, count: int, author: Any, approver: Any) -> None:
    """Deployed hash signatures ``first .. first+count-1`` (signature id = revision id)."""
    from django.db import transaction
    from django.utils import timezone

    from threats.models import (
        Category,
        Family,
        RevisionState,
        Severity,
        Signature,
        SignatureRevision,
        Status,
    )

    family, _ = Family.objects.get_or_create(
        name="Joker", defaults={"category": Category.SMS_FRAUD, "severity": Severity.MALICIOUS}
    )
    now = timezone.now()
    chunk = 20_000
    for start in range(first, first + count, chunk):
        ids = range(start, min(first + count, start + chunk))
        # SQLite checks foreign keys at commit: a signature may name its revision first
        with transaction.atomic():
            Signature.objects.bulk_create(
                (
                    Signature(
                        id=i,
                        kind="hash",
                        family=family,
                        severity=Severity.MALICIOUS,
                        status=Status.DEPLOYED,
                        author=author,
                        dedup_key=f"apk:{_digest(i)}",
                        current_revision_id=i,
                        deployed_revision_id=i,
                    )
                    for i in ids
                ),
                batch_size=2000,
            )
            SignatureRevision.objects.bulk_create(
                (
                    SignatureRevision(
                        id=i,
                        signature_id=i,
                        number=1,
                        body={"algorithm": "sha256", "target": "apk", "value": _digest(i)},
                        severity=Severity.MALICIOUS,
                        family=family,
                        state=RevisionState.APPROVED,
                        author=author,
                        last_editor=author,
                        reviewed_by=approver,
                        reviewed_at=now,
                    )
                    for i in ids
                ),
                batch_size=2000,
            )


def _gate(first: int, count: int) -> float:
    """The clean-corpus gate, for real (publishing refuses ungated revisions): a retro-hunt
    of the new revisions over the samples stored here (none), run in this process, in hunts
    of at most MAX_HUNT_SIGNATURES. Timed apart from the release build."""
    from scans.hunt_plan import MAX_HUNT_SIGNATURES
    from scans.retrohunts import retrohunt_run_sync

    def run() -> None:
        for start in range(first, first + count, MAX_HUNT_SIGNATURES):
            ids = list(range(start, min(first + count, start + MAX_HUNT_SIGNATURES)))
            retrohunt_run_sync(user=None, revision_ids=ids)

    return _timed(run)[1]


def _publish_and_build(by: Any) -> dict[str, Any]:
    from releases.models import FileKind, Release, ReleaseState
    from releases.services import release_publish
    from releases.tasks import build_release

    release, publish_s = _timed(lambda: release_publish(by=by, enqueue=False))
    result, build_s = _timed(lambda: build_release.apply(args=(release.number,)).get())
    release = Release.objects.get(pk=release.pk)
    if release.state != ReleaseState.PUBLISHED:
        raise SystemExit(f"release {release.number} did not publish: {result} {release.error}")
    files = {
        (f.kind, f.base): f.size
        for f in release.files.all()
        if f.kind == FileKind.FULL or f.base == release.number - 1
    }
    return {
        "release": release.number,
        "signatures": release.signature_count,
        "publish_service_seconds": publish_s,
        "build_task_seconds": build_s,
        "total_seconds": round(publish_s + build_s, 3),
        "full_bundle_bytes": files[(FileKind.FULL, None)],
        "delta_from_previous_bytes": files.get((FileKind.DELTA, release.number - 1)),
        "state_sha256": release.state_sha256,
    }


def _target_bytes(name: str) -> tuple[bytes, dict[str, Any]]:
    from releases.repository import open_repository

    repo = open_repository()
    target = repo.target_files()[name]
    return repo.target_path(target).read_bytes(), dict(target.custom or {})


def _apply_and_verify(data: bytes, custom: dict[str, Any], base: Any = None) -> float:
    from engine import ENGINE_VERSION
    from engine.codec import apply_delta, apply_full

    start = time.perf_counter()
    hashlib.sha256(data).hexdigest()  # what tuf.ngclient checks before handing the file over
    state = apply_full(data, ENGINE_VERSION) if base is None else apply_delta(base, data, 1)
    if state.sha256 != custom["state_sha256"]:
        raise SystemExit("state hash mismatch in the bench: the build is wrong")
    return round(time.perf_counter() - start, 3)


def size_phase(size: int, delta: int, var_dir: Path, out: Path) -> None:
    _django(var_dir)
    from engine import ENGINE_VERSION
    from engine.codec import apply_full
    from releases.repository import init_dev_repository
    from releases.tuf_repo import delta_target_name, full_target_name
    from threats.models import Signature, Status

    init_dev_repository()
    author, approver = _users()
    _, make_s = _timed(lambda: _make_signatures(1, size, author, approver))
    result: dict[str, Any] = {
        "signatures": size,
        "bulk_create_seconds": make_s,
        "gate_seconds": _gate(1, size),
    }
    print(f"  {size}: {size} signatures made in {make_s} s", file=sys.stderr, flush=True)
    first = _publish_and_build(approver)
    result["full"] = first
    data, custom = _target_bytes(full_target_name(1))
    result["full"]["bytes_per_signature"] = round(len(data) / size, 2)
    result["full"]["client_apply_and_verify_seconds"] = _apply_and_verify(data, custom)
    print(f"  {size}: {json.dumps(first)}", file=sys.stderr, flush=True)
    if delta:
        base = apply_full(data, ENGINE_VERSION)
        _make_signatures(size + 1, delta, author, approver)
        _gate(size + 1, delta)
        added = _publish_and_build(approver)
        data, custom = _target_bytes(delta_target_name(1, 2))
        added["added_signatures"] = delta
        added["bytes_per_added_signature"] = round(added["delta_from_previous_bytes"] / delta, 2)
        added["client_apply_and_verify_seconds"] = _apply_and_verify(data, custom, base)
        result["delta_add"] = added
        # retirements are scattered over the database, not a contiguous run of ids
        gone = sorted(random.Random(size).sample(range(1, size + 1), min(delta, size)))
        for start in range(0, len(gone), 500):
            Signature.objects.filter(id__in=gone[start : start + 500]).update(
                status=Status.DISABLED
            )
        removed = _publish_and_build(approver)
        removed["removed_signatures"] = len(gone)
        removed["bytes_per_removed_signature"] = round(
            removed["delta_from_previous_bytes"] / len(gone), 2
        )
        result["delta_remove"] = removed
        print(f"  {size}: deltas {json.dumps([added, removed])}", file=sys.stderr, flush=True)
    out.write_text(json.dumps(result))


def files_only_phase(size: int, var_dir: Path, out: Path) -> None:
    """The build's file part at ``size`` without the database: encode + TUF write."""
    _django(var_dir)
    from engine.codec import State, state_file_bytes
    from engine.features import RuleRecord
    from releases.repository import init_dev_repository, timestamp_expiry
    from releases.tuf_repo import full_target_name, release_custom

    repo = init_dev_repository()
    records = [
        RuleRecord(
            i,
            1,
            f"Andr.SmsFraud.Joker-{i}-1",
            "hash",
            {"algorithm": "sha256", "target": "apk", "value": _digest(i)},
            "malicious",
        )
        for i in range(1, size + 1)
    ]

    def build() -> tuple[bytes, dict[str, Any]]:
        state = State(release=1, records=records, engine_version=ANY_ENGINE)
        data = state_file_bytes(state)
        custom = release_custom(
            release=1, base=None, state_sha256=state.sha256, min_engine=1, signatures=size
        )
        repo.add_targets([(full_target_name(1), data, custom)], timestamp_expiry=timestamp_expiry())
        return data, custom

    (data, custom), build_s = _timed(build)
    result = {
        "signatures": size,
        "measured": "file build only (encode, state hash, TUF write), records made in memory",
        "file_build_seconds": build_s,
        "full_bundle_bytes": len(data),
        "bytes_per_signature": round(len(data) / size, 2),
        "client_apply_and_verify_seconds": _apply_and_verify(data, custom),
    }
    print(f"  {size}: {json.dumps(result)}", file=sys.stderr, flush=True)
    out.write_text(json.dumps(result))


# --- (c) update checks ---------------------------------------------------------------------


def load_setup_phase(devices: int, var_dir: Path, out: Path) -> None:
    """A small feed (releases 1 and 2) and ``devices`` enrolled phones; tokens to ``out``."""
    _django(var_dir)
    from django.conf import settings

    from releases.repository import init_dev_repository
    from releases.services import device_register

    init_dev_repository()
    author, approver = _users()
    _make_signatures(1, 1000, author, approver)
    _gate(1, 1000)
    _publish_and_build(approver)
    _make_signatures(1001, 100, author, approver)
    _gate(1001, 100)
    _publish_and_build(approver)
    tokens = [
        device_register(
            enrollment_key=settings.DEVICE_ENROLLMENT_KEY,
            model="bench",
            app_version="1.0",
            channel="stable",
        ).token
        for _ in range(devices)
    ]
    out.write_text(json.dumps(tokens))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_gunicorn(
    var_dir: Path, workers: int, threads: int
) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    env = dict(os.environ)
    env.update(
        PORTAL_VAR_DIR=str(var_dir),
        DJANGO_SETTINGS_MODULE="portal.settings",
        DEVICE_UPDATE_RATE="100000000/s",
        LOG_LEVEL="WARNING",
    )
    cmd = [
        str(Path(sys.executable).with_name("gunicorn")),
        "portal.wsgi",
        f"--bind=127.0.0.1:{port}",
        f"--workers={workers}",
        f"--threads={threads}",
        "--backlog=2048",
        "--timeout=60",
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
                s.sendall(
                    b"GET /updates/metadata/timestamp.json HTTP/1.1\r\n"
                    b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n"
                )
                if s.recv(12).startswith(b"HTTP/1.1 200"):
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


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.1 response; (status, whether the server closes the connection)."""
    status_line = await reader.readuntil(b"\r\n")
    status = int(status_line.split()[1])
    length: int | None = None
    chunked = close = False
    while True:
        line = await reader.readuntil(b"\r\n")
        if line == b"\r\n":
            break
        name, _, value = line.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and "close" in value:
            close = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length is not None:
        await reader.readexactly(length)
    else:
        await reader.read()
        close = True
    return status, close


async def _load(
    port: int, path: str, tokens: list[str], concurrency: int, total: int, duration: float
) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors: dict[str, int] = {}
    sent = 0
    deadline = time.monotonic() + duration

    def request(i: int) -> bytes:
        auth = f"Authorization: Token {tokens[i % len(tokens)]}\r\n" if tokens else ""
        return (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}"
            "Accept: application/json\r\n\r\n"
        ).encode("ascii")

    async def client(i: int) -> None:
        nonlocal sent
        raw = request(i)
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while sent < total and time.monotonic() < deadline:
            sent += 1
            start = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                assert reader is not None
                writer.write(raw)
                await writer.drain()
                status, close = await asyncio.wait_for(_read_response(reader), 60)
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            latencies.append(time.perf_counter() - start)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if close:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        if not ordered:
            return 0.0
        return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000, 2)

    return {
        "path": path,
        "concurrency": concurrency,
        "requests": len(latencies),
        "seconds": round(elapsed, 2),
        "requests_per_second": round(len(latencies) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2) if ordered else 0.0,
        "statuses": statuses,
        "errors": errors,
    }


def load_phase(port: int, path: str, tokens_file: str, c: int, n: int, dur: float) -> None:
    tokens = json.loads(Path(tokens_file).read_text()) if tokens_file else []
    print(json.dumps(asyncio.run(_load(port, path, tokens, c, n, dur))), flush=True)


def _run_load(port: int, path: str, tokens: Path | None, c: int, n: int, dur: float) -> Any:
    """The load generator in a second process (this file, ``_load``)."""
    cmd = [sys.executable, __file__, "_load", str(port), path, str(tokens or ""), str(c)]
    out = subprocess.run(
        [*cmd, str(n), str(dur)], capture_output=True, text=True, timeout=dur + 120, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def load_bench(var_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    concurrency = [int(c) for c in args.concurrency.split(",") if c]
    tokens = var_dir / "device-tokens.json"
    _child(["_load_setup", str(max(concurrency)), str(var_dir / "db"), str(tokens)])
    workers = args.workers or 2 * (os.cpu_count() or 1) + 1
    proc, port = _start_gunicorn(var_dir / "db", workers, args.threads)
    result: dict[str, Any] = {
        "server": f"gunicorn portal.wsgi --workers={workers} --threads={args.threads}"
        f" on 127.0.0.1 (sync workers when threads=1), SQLite in WAL mode, file cache",
        "workers_rule": "2 x cores + 1 (gunicorn's rule of thumb) unless --workers",
        "load": "a second process: asyncio HTTP/1.1 clients (stdlib), keep-alive when offered",
        "bounds": {"requests": args.requests, "seconds": args.duration},
        "device_update": [],
        "timestamp": [],
    }
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/devices/update/?installed=1",
            headers={"Authorization": f"Token {json.loads(tokens.read_text())[0]}"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
            result["device_update_answer"] = json.loads(answer.read())
        # warm up: imports, database connections, the file cache
        _run_load(port, "/updates/metadata/timestamp.json", None, 10, 200, 10)
        _run_load(port, "/api/v1/devices/update/?installed=1", tokens, 10, 200, 10)
        for c in concurrency:
            for key, path, toks in (
                ("device_update", "/api/v1/devices/update/?installed=1", tokens),
                ("timestamp", "/updates/metadata/timestamp.json", None),
            ):
                figures = _run_load(port, path, toks, c, args.requests, args.duration)
                result[key].append(figures)
                print(f"  load: {json.dumps(figures)}", file=sys.stderr, flush=True)
    finally:
        _stop(proc)
    return result


# --- the driver ----------------------------------------------------------------------------


def _child(argv: list[str]) -> None:
    subprocess.run([sys.executable, __file__, *argv], check=True, cwd=ROOT)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "_size":
        size_phase(int(argv[1]), int(argv[2]), Path(argv[3]), Path(argv[4]))
        return 0
    if argv and argv[0] == "_files":
        files_only_phase(int(argv[1]), Path(argv[2]), Path(argv[3]))
        return 0
    if argv and argv[0] == "_load_setup":
        load_setup_phase(int(argv[1]), Path(argv[2]), Path(argv[3]))
        return 0
    if argv and argv[0] == "_load":
        port, path, tokens, c, n, dur = argv[1:7]
        load_phase(int(port), path, tokens, int(c), int(n), float(dur))
        return 0

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument(
        "--service-max",
        type=int,
        default=100_000,
        help="largest size built through the database, service and task; above: files only"
        " (the clean-corpus gate costs about 1 ms per new signature: 1M through it is ~17 min)",
    )
    parser.add_argument("--delta", type=int, default=10_000, help="signatures added/removed")
    parser.add_argument("--concurrency", default="50,500")
    parser.add_argument("--requests", type=int, default=4000, help="per load run, at most")
    parser.add_argument("--duration", type=float, default=20.0, help="per load run, at most")
    parser.add_argument("--workers", type=int, default=0, help="gunicorn workers (2 x cores + 1)")
    parser.add_argument("--threads", type=int, default=1, help="gunicorn threads per worker")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--var-dir", type=Path, default=_default_var_dir())
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    var_dir = args.var_dir.resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    results: dict[str, Any] = {
        "command": "python bench/bench_releases.py " + " ".join(argv),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "database": "SQLite (WAL) in a fresh file per size",
        "sizes": [],
    }
    started = time.monotonic()
    for size in sizes:
        out = var_dir / f"size-{size}.json"
        if size <= args.service_max:
            _child(["_size", str(size), str(args.delta), str(var_dir / f"size-{size}"), str(out)])
            entry = {"measured": "through release_publish and the build_release task"}
        else:
            _child(["_files", str(size), str(var_dir / f"files-{size}"), str(out)])
            entry = {}
        entry.update(json.loads(out.read_text()))
        results["sizes"].append(entry)
        shutil.rmtree(var_dir / f"size-{size}", ignore_errors=True)
        shutil.rmtree(var_dir / f"files-{size}", ignore_errors=True)
    if not args.skip_load:
        results["update_checks"] = load_bench(var_dir / "load", args)
    results["total_seconds"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
