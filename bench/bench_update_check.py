"""Update-check benchmark (issue 12): open-loop load at fixed rates against three targets.

    python bench/run.py update_check
    .venv/bin/python bench/bench_update_check.py [--rates 250,500,1000,2000] [--duration 10]
        [--drain 5] [--devices 2000] [--max-connections 1000] [--var-dir DIR]

Writes bench/results/update_check.json. Measures, never asserts. In one run, for each rate
in turn (so that the three see the machine in the same state), with bench/loadgen.py in a
process of its own (arrivals at ``t0 + i/rate``, latency from the scheduled time):

(a) ``floor``: nginx serving a small static file (a copy of timestamp.json, same size) with
    a bare ``location``: the best this machine and generator can do.
(b) ``static``: ``GET /updates/metadata/timestamp.json`` from the same nginx through
    ``deploy/nginx-updates.conf`` (templated with the portal's RELEASE_REPO_DIR, a port, and
    the gunicorn below as the upstream for everything else): the check as production serves
    it. Around each run the gunicorn access-log lines and the CPU time of gunicorn's
    processes are read: the portal must do no work for it.
(c) ``compat``: ``GET /api/v1/devices/update/?installed=1`` with ``Authorization: Token``
    under gunicorn started with the very list ``make run`` uses (``run_portal``'s
    ``_commands()["web"]``), on a fresh PORTAL_VAR_DIR holding two published releases (1,000
    then 100 SHA-256 hash signatures, gated and built as bench_releases.py does). ``--devices``
    phones enrol through ``POST /api/v1/devices/register/`` with the enrollment key and are
    used in turn. Each is one release behind, so every answer is an offer.
    ``DEVICE_UPDATE_RATE`` is raised (the JSON says to what) so that the per-device throttle
    is not what is measured; ``DEVICE_REGISTER_RATE`` likewise for the enrolment.

The var folder is ``--var-dir``, else ``$PORTAL_VAR_DIR/update-check`` (``make bench``), else
/tmp/bench-update-check-<uid>; it is emptied first. nginx must be installed (``apt-get install
-y nginx``); it runs from a generated config in that folder, on private ports, as this user.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "update_check.json"
NGINX_TEMPLATE = ROOT / "deploy" / "nginx-updates.conf"
LOADGEN = ROOT / "bench" / "loadgen.py"
ENROLLMENT_KEY = "bench-update-check-enrollment-key"
UPDATE_RATE = "100000000/s"
COMPAT_PATH = "/api/v1/devices/update/?installed=1"
STATIC_PATH = "/updates/metadata/timestamp.json"
FLOOR_PATH = "/static.json"


def _default_var_dir() -> Path:
    given = os.environ.get("PORTAL_VAR_DIR")
    return Path(given) / "update-check" if given else Path(f"/tmp/bench-update-check-{os.getuid()}")


def _env(var_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("DATABASE_URL", "RELEASE_REPO_DIR", "TUF_KEYS_DIR", "CELERY_BROKER_URL"):
        env.pop(name, None)
    env.update(
        PORTAL_VAR_DIR=str(var_dir),
        DJANGO_SETTINGS_MODULE="portal.settings",
        DEVICE_ENROLLMENT_KEY=ENROLLMENT_KEY,
        DEVICE_UPDATE_RATE=UPDATE_RATE,
        DEVICE_REGISTER_RATE=UPDATE_RATE,
        LOG_LEVEL="WARNING",
    )
    return env


# --- set-up: a database with two published releases (a child process) -----------------------


def setup_phase(var_dir: Path) -> None:
    """Releases 1 and 2 on a fresh database, as bench_releases.py makes them."""
    os.environ.update(_env(var_dir))
    from bench_releases import _django, _gate, _make_signatures, _publish_and_build, _users

    _django(var_dir)  # empties var_dir, migrates
    from releases.repository import init_dev_repository

    init_dev_repository()
    author, approver = _users()
    _make_signatures(1, 1000, author, approver)
    _gate(1, 1000)
    _publish_and_build(approver)
    _make_signatures(1001, 100, author, approver)
    _gate(1001, 100)
    _publish_and_build(approver)


# --- processes ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
            return int(answer.status), answer.headers, answer.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.headers, exc.read()


def _wait_http(port: int, path: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if _get(port, path)[0] == 200:
                return
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    raise SystemExit(f"{path} on port {port} did not answer 200; see {log}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def web_command(port: int) -> list[str]:
    """The gunicorn command line ``make run`` starts (run_portal's own list, not a copy)."""
    import django

    django.setup()
    from portal.management.commands.run_portal import Command

    return Command()._commands("127.0.0.1", str(port))["web"]


def start_gunicorn(var_dir: Path, port: int) -> tuple[subprocess.Popen[bytes], list[str], Path]:
    cmd = web_command(port)
    access = var_dir / "gunicorn-access.log"  # --access-logfile=- : stdout
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=_env(var_dir),
        stdout=access.open("wb"),
        stderr=(var_dir / "gunicorn-error.log").open("wb"),
        start_new_session=True,
    )
    _wait_http(port, STATIC_PATH, proc, var_dir / "gunicorn-error.log")
    return proc, cmd, access


def start_nginx(
    var_dir: Path, repo_dir: Path, floor_port: int, static_port: int, portal_port: int
) -> tuple[subprocess.Popen[bytes], Path]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("nginx is not installed: apt-get install -y nginx")
    conf_dir = var_dir / "nginx"
    (conf_dir / "floor").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(repo_dir / "metadata" / "timestamp.json", conf_dir / "floor" / "static.json")
    server = (
        NGINX_TEMPLATE.read_text()
        .replace("@LISTEN@", f"127.0.0.1:{static_port}")
        .replace("@RELEASE_REPO_DIR@", str(repo_dir.resolve()))
        .replace("@PORTAL@", f"127.0.0.1:{portal_port}")
    )
    (conf_dir / "updates.conf").write_text(server)
    user = f"user {pwd.getpwuid(os.getuid()).pw_name};" if os.geteuid() == 0 else ""
    temp = "".join(
        f"    {kind}_temp_path {conf_dir / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (conf_dir / "nginx.conf").write_text(
        f"""{user}
worker_processes auto;
pid {conf_dir / "nginx.pid"};
error_log {conf_dir / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;  # the same for both servers; production would log (and pay for it)
    sendfile on;
    tcp_nopush on;
{temp}
    server {{
        listen 127.0.0.1:{floor_port};
        root {conf_dir / "floor"};
        default_type application/json;
        location / {{ }}
    }}
    include {conf_dir / "updates.conf"};
}}
"""
    )
    log = conf_dir / "error.log"
    cmd = [nginx, "-p", str(conf_dir), "-e", str(log), "-c", str(conf_dir / "nginx.conf")]
    proc = subprocess.Popen(
        [*cmd, "-g", "daemon off;"],
        stdout=(conf_dir / "stdout.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _wait_http(floor_port, FLOOR_PATH, proc, log)
    _wait_http(static_port, STATIC_PATH, proc, log)
    return proc, conf_dir


def _tree_cpu(proc: subprocess.Popen[bytes]) -> float:
    """CPU seconds (user + system) of a process and its children, as now."""
    total = 0.0
    try:
        parent = psutil.Process(proc.pid)
        for p in [parent, *parent.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
    except psutil.NoSuchProcess:
        pass
    return total


def _lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for _ in fh)


def _settle(procs: list[subprocess.Popen[bytes]], timeout: float = 60.0) -> float:
    """Wait until these process trees are idle (< 5% of a core over 0.5 s): an overloaded
    gunicorn goes on with queued requests after the generator gave up on them."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = sum(_tree_cpu(p) for p in procs)
        time.sleep(0.5)
        if sum(_tree_cpu(p) for p in procs) - before < 0.025:
            break
    return round(time.monotonic() - started, 1)


# --- devices ----------------------------------------------------------------------------------


def register_devices(port: int, count: int) -> list[str]:
    body = json.dumps(
        {"enrollment_key": ENROLLMENT_KEY, "model": "bench", "app_version": "1.0"}
    ).encode()

    def one(_: int) -> str:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/devices/register/",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - loopback
            return str(json.loads(answer.read())["token"])

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


# --- load -------------------------------------------------------------------------------------


def load(
    port: int, path: str, rate: float, args: argparse.Namespace, tokens: Path | None = None
) -> dict[str, Any]:
    """One open-loop run by bench/loadgen.py in its own process; its JSON."""
    cmd = [sys.executable, str(LOADGEN), f"http://127.0.0.1:{port}{path}", f"--rate={rate:g}"]
    cmd += [f"--duration={args.duration}", f"--drain={args.drain}"]
    cmd += [f"--max-connections={args.max_connections}", "--header=Accept: application/json"]
    if tokens is not None:
        cmd.append(f"--tokens-file={tokens}")
    out = subprocess.run(
        cmd, capture_output=True, text=True, check=True, timeout=args.duration + args.drain + 120
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result.pop("url", None)
    # the machine is shared: what else ran shows in the load average (2 cores)
    result["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    return result


def _brief(r: dict[str, Any]) -> str:
    lat = r["latency_ms"]
    flag = " GENERATOR-LIMITED" if r["generator_limited"] else ""
    return (
        f"sent {r['sent']} ok {r['ok']} errors {r['error_count']} "
        f"p50 {lat['p50']} p90 {lat['p90']} p99 {lat['p99']} max {lat['max']} ms, "
        f"{r['achieved_rate']}/s, lag p99 {r['generator_lag_ms']['p99']} ms{flag}"
    )


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def main(argv: list[str]) -> int:
    if argv and argv[0] == "_setup":
        setup_phase(Path(argv[1]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="250,500,1000,2000")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of arrivals")
    parser.add_argument("--drain", type=float, default=5.0, help="then seconds for answers")
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--max-connections", type=int, default=1000)
    parser.add_argument("--var-dir", type=Path, default=_default_var_dir())
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--note", default="", help="free text kept in the JSON (e.g. commit)")
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",") if r]
    var_dir = args.var_dir.resolve()
    started = time.monotonic()

    print(f"  set-up in {var_dir}", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, __file__, "_setup", str(var_dir)], check=True, cwd=ROOT)
    os.environ.update(_env(var_dir))
    from django.conf import settings

    portal_port, floor_port, static_port = _free_port(), _free_port(), _free_port()
    gunicorn, web_cmd, access_log = start_gunicorn(var_dir, portal_port)
    procs = [gunicorn]
    try:
        repo_dir = Path(settings.RELEASE_REPO_DIR)
        nginx, conf_dir = start_nginx(var_dir, repo_dir, floor_port, static_port, portal_port)
        procs.append(nginx)
        tokens = register_devices(portal_port, args.devices)
        tokens_file = var_dir / "device-tokens.json"
        tokens_file.write_text(json.dumps(tokens))
        print(f"  {len(tokens)} devices enrolled", file=sys.stderr, flush=True)

        status, headers, body = _get(
            portal_port, COMPAT_PATH, {"Authorization": f"Token {tokens[0]}"}
        )
        compat_answer = {"status": status, "body": json.loads(body)}
        status, headers, body = _get(static_port, STATIC_PATH)
        static_answer = {
            "status": status,
            "bytes": len(body),
            "headers": {k: headers[k] for k in ("Cache-Control", "ETag", "Content-Type")},
            "same_bytes_as_RELEASE_REPO_DIR": body
            == (repo_dir / "metadata" / "timestamp.json").read_bytes(),
        }
        portal_view = _get(portal_port, STATIC_PATH)[1]
        static_answer["portal_view_headers"] = {
            k: portal_view[k] for k in ("Cache-Control", "ETag", "Content-Type")
        }

        # warm-up, not recorded: imports, connections, caches, page cache
        warm = argparse.Namespace(**{**vars(args), "duration": 2.0})
        for port, path, toks in (
            (floor_port, FLOOR_PATH, None),
            (static_port, STATIC_PATH, None),
            (portal_port, COMPAT_PATH, tokens_file),
        ):
            load(port, path, 100, warm, toks)
        _settle(procs)

        results: dict[str, Any] = {
            "command": "python bench/bench_update_check.py " + " ".join(argv),
            "note": args.note,
            "load_average_1min_at_start": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cores": os.cpu_count(),
            "method": (
                "open loop (bench/loadgen.py, one process per run): request i is due at "
                "t0 + i/rate and its latency runs from that scheduled time, so queueing "
                "counts; keep-alive connections pooled, opened on demand; "
                f"{args.duration:g} s of arrivals then {args.drain:g} s to drain, answers "
                "still owed then count as errors ('timeout'). generator_limited: the send "
                "loop's p50 or p99 lateness was over 1 ms and over half the latency at that "
                "percentile, or it sent < 99% of the rate; such a figure is the generator's "
                "(or the shared CPUs'), not the server's. The generator runs at real-time "
                "priority (SCHED_FIFO) when permitted (generator_priority says) so that a "
                "busy machine does not make it late, and shares the 2 cores with the servers."
            ),
            "targets": {
                "floor": f"nginx, a copy of timestamp.json ({static_answer['bytes']} bytes) "
                "from a bare location",
                "static": f"nginx with deploy/nginx-updates.conf: {STATIC_PATH} from "
                "RELEASE_REPO_DIR",
                "compat": f"GET {COMPAT_PATH} with a device token, gunicorn as make run starts it",
            },
            "gunicorn_command": web_cmd,
            "nginx": subprocess.run(
                ["nginx", "-v"], capture_output=True, text=True, check=False
            ).stderr.strip(),
            "nginx_config": str(conf_dir / "nginx.conf"),
            "devices": len(tokens),
            "device_update_rate": f"DEVICE_UPDATE_RATE={UPDATE_RATE}: raised so that the "
            "per-device throttle (default 60/hour) is not what is measured; each of the "
            f"{len(tokens)} devices is asked for in turn",
            "compat_answer": compat_answer,
            "static_answer": static_answer,
            "rates": [],
        }
        for rate in rates:
            entry: dict[str, Any] = {"rate": rate}
            entry["floor"] = load(floor_port, FLOOR_PATH, rate, args)
            print(f"  {rate:g}/s floor : {_brief(entry['floor'])}", file=sys.stderr, flush=True)
            _settle(procs)
            lines0, cpu0 = _lines(access_log), _tree_cpu(gunicorn)
            entry["static"] = load(static_port, STATIC_PATH, rate, args)
            lines1, cpu1 = _lines(access_log), _tree_cpu(gunicorn)
            entry["static"]["portal_work"] = {
                "gunicorn_access_log_lines": lines1 - lines0,
                "gunicorn_cpu_seconds": round(cpu1 - cpu0, 3),
            }
            print(f"  {rate:g}/s static: {_brief(entry['static'])}", file=sys.stderr, flush=True)
            print(f"    portal work: {entry['static']['portal_work']}", file=sys.stderr)
            _settle(procs)
            lines0, cpu0 = _lines(access_log), _tree_cpu(gunicorn)
            entry["compat"] = load(portal_port, COMPAT_PATH, rate, args, tokens_file)
            entry["compat"]["portal_work"] = {
                "gunicorn_access_log_lines": _lines(access_log) - lines0,
                "gunicorn_cpu_seconds": round(_tree_cpu(gunicorn) - cpu0, 3),
            }
            print(f"  {rate:g}/s compat: {_brief(entry['compat'])}", file=sys.stderr, flush=True)
            entry["settle_seconds_after_compat"] = _settle(procs)
            floor, static, compat = (entry[k]["latency_ms"] for k in ("floor", "static", "compat"))
            entry["static_over_floor"] = {
                "p50": _ratio(static["p50"], floor["p50"]),
                "p99": _ratio(static["p99"], floor["p99"]),
            }
            entry["compat_over_floor"] = {
                "p50": _ratio(compat["p50"], floor["p50"]),
                "p99": _ratio(compat["p99"], floor["p99"]),
            }
            entry["goals"] = {
                "static_within_2x_of_floor": (
                    entry["static_over_floor"]["p50"] is not None
                    and entry["static_over_floor"]["p50"] <= 2
                    and (entry["static_over_floor"]["p99"] or 0) <= 2
                    and entry["static"]["error_count"] == 0
                ),
                "portal_did_no_work_for_static": entry["static"]["portal_work"][
                    "gunicorn_access_log_lines"
                ]
                == 0,
                "compat_p99_le_50ms_no_errors": compat["p99"] <= 50
                and entry["compat"]["error_count"] == 0,
            }
            entry["generator_limited"] = [
                k for k in ("floor", "static", "compat") if entry[k]["generator_limited"]
            ]
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
