"""Cloud look-up benchmark (issue 12 part 5): a 100-hash ``POST /api/v1/devices/lookup/`` at
fixed arrival rates with up to 200 look-ups in flight, against a static floor.

    python bench/run.py lookup
    .venv/bin/python bench/bench_lookup.py [--rates 25,50,100,200] [--duration 10] [--drain 10]
        [--devices 200] [--max-connections 200] [--samples 1000] [--lookup-rate RATE]
        [--var-dir DIR] [--out PATH]

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
import subprocess
import sys
import time
import urllib.request
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


def _default_var_dir() -> Path:
    given = os.environ.get("PORTAL_VAR_DIR")
    return Path(given) / "lookup" if given else Path(f"/tmp/bench-lookup-{os.getuid()}")


# --- set-up: stored samples with current verdicts (a child process) --------------------------


def setup_phase(var_dir: Path, samples: int, out: Path) -> None:
    from bench_update_check import _env

    os.environ.update(_env(var_dir))
    from bench_feed import _django, _make_corpus, _users
    from bench_verdicts import _approve_and_publish, _hash_rows, _import_and_gate, _not_clean

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


def _post(port: int, token: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{LOOKUP_PATH}",
        data=body,
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
        return int(answer.status), answer.read()


# --- driver -----------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    if argv and argv[0] == "_setup":
        setup_phase(Path(argv[1]), int(argv[2]), Path(argv[3]))
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
    args = parser.parse_args(argv)
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
    subprocess.run(
        [sys.executable, __file__, "_setup", str(var_dir), str(args.samples), str(setup_out)],
        check=True,
        cwd=ROOT,
    )
    setup = json.loads(setup_out.read_text())
    stored = [tuple(x) for x in setup.pop("stored")]

    from bench_update_check import (
        _env,
        _free_port,
        _settle,
        _stop,
        _tree_cpu,
        register_devices,
        start_gunicorn,
        start_nginx,
    )

    os.environ.update(_env(var_dir))
    from django.conf import settings
    from loadgen import percentiles

    portal_port, floor_port, static_port = _free_port(), _free_port(), _free_port()
    gunicorn, web_cmd, _ = start_gunicorn(var_dir, portal_port)
    procs = [gunicorn]
    try:
        tokens = register_devices(portal_port, args.devices)
        payloads = bodies(stored, len(tokens))
        requests_file = var_dir / "lookup-requests.json"
        requests_file.write_text(json.dumps(raw_posts(portal_port, tokens, payloads)))
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
        for rate in rates:
            entry: dict[str, Any] = {"rate": rate}
            entry["floor"] = load(floor_port, floor_file, rate, args)
            _settle(procs)
            cpu0 = _tree_cpu(gunicorn)
            entry["lookup"] = load(portal_port, requests_file, rate, args)
            entry["lookup"]["gunicorn_cpu_seconds"] = round(_tree_cpu(gunicorn) - cpu0, 3)
            entry["settle_seconds_after_lookup"] = _settle(procs)
            for key in ("floor", "lookup"):
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
