"""Real Celery worker processes for benchmarks that measure throughput through the broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_worker(env: dict[str, str], log: Path, name: str, queue: str) -> subprocess.Popen[bytes]:
    """One `celery worker` (concurrency 1, prefetch 1) on ``queue``, logging to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)  # a fresh var folder does not exist yet
    return subprocess.Popen(
        [
            str(Path(sys.executable).with_name("celery")),
            "-A",
            "portal",
            "worker",
            "-Q",
            queue,
            "--concurrency=1",
            "--prefetch-multiplier=1",
            "--loglevel=INFO",
            "-n",
            f"{name}@%h",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def run_portal_worker_args(queues: list[str], concurrency: int = 2) -> list[str]:
    """The ``celery`` arguments of the worker ``make run`` starts (from run_portal itself)."""
    from portal.management.commands.run_portal import worker_args

    return worker_args(queues, concurrency)


def spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``cmd`` in its own process group (so ``stop_workers`` ends its pool too), logging to
    ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_ready(
    log: Path, timeout: float = 120, proc: subprocess.Popen[bytes] | None = None
) -> float:
    """Seconds until the worker logged that it is ready (fails early if ``proc`` exits)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if log.exists() and "ready." in log.read_text(errors="replace"):
            return time.perf_counter() - started
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"worker exited with code {proc.returncode}; log: {log}")
        time.sleep(0.05)
    raise RuntimeError(f"worker not ready; log: {log}")


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
