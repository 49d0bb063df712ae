"""Start the site, one Celery worker and Celery beat, and keep them running until Ctrl-C.

A child that exits is started again after a delay that doubles with each quick failure (from
RUN_PORTAL_FIRST_RESTART_SECONDS, 1 s, up to 30 s; back to the first after a minute's run).
The others go on meanwhile: the site keeps serving, and /healthz names what is down (the
worker's and beat's heartbeats stop).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from portal.demo import demo_accounts

MAX_DELAY, HEALTHY_AFTER = 30.0, 60.0


def worker_args(queues: list[str] | None = None, concurrency: int = 2) -> list[str]:
    """The ``celery`` arguments of the one worker ``make run`` starts (bench/ starts the same)."""
    return [
        "-A",
        "portal",
        "worker",
        "-Q",
        ",".join(queues or settings.CELERY_TASK_QUEUES_NAMES),
        f"--concurrency={concurrency}",
        # one worker on every queue: holding a few messages ahead keeps both pool processes
        # busy between scans (no other worker could run them anyway)
        "--prefetch-multiplier=4",
        "--loglevel=INFO",
        "-n",
        "worker1@%h",
    ]


@dataclass
class Child:
    name: str
    cmd: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    first_delay: float = 1.0
    delay: float = 1.0
    restart_at: float | None = None
    restarts: int = field(default=0)

    def start(self) -> None:
        # own process group, so Ctrl-C reaches the supervisor once and it stops children
        self.proc = subprocess.Popen(self.cmd, start_new_session=True)
        self.started = time.monotonic()
        self.restart_at = None


class Command(BaseCommand):
    help = "Run the portal (gunicorn), one Celery worker and Celery beat, restarting any that dies."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))

    def _commands(self, host: str, port: str) -> dict[str, list[str]]:
        bindir = os.path.dirname(sys.executable)
        var = str(settings.VAR_DIR)
        return {
            "web": [
                os.path.join(bindir, "gunicorn"),
                "portal.wsgi",
                f"--bind={host}:{port}",
                # processes for CPU (the GIL lets one thread of a process run at a time),
                # threads for the requests that wait (storage, the database): 4 x 2 served the
                # phones' update check at 1.4x the rate of 2 x 4 on two cores (docs/releases.md)
                "--workers=4",
                "--threads=2",
                "--timeout=120",
                "--access-logfile=-",
            ],
            "worker": [os.path.join(bindir, "celery"), *worker_args()],
            "beat": [
                os.path.join(bindir, "celery"),
                "-A",
                "portal",
                "beat",
                "--loglevel=INFO",
                "--scheduler=portal.beat:HeartbeatScheduler",
                f"--schedule={settings.CELERY_BEAT_SCHEDULE_FILENAME}",
                f"--pidfile={os.path.join(var, 'celerybeat.pid')}",
            ],
        }

    def handle(self, *args: Any, **options: Any) -> None:
        first = float(settings.RUN_PORTAL_FIRST_RESTART_SECONDS)
        commands = self._commands(options["host"], options["port"])
        children = [
            Child(name, cmd, first_delay=first, delay=first) for name, cmd in commands.items()
        ]
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        # a beat killed with SIGKILL leaves its pidfile behind, and beat refuses to start
        # while it exists; the supervisor is the only one starting beat here
        pidfile = os.path.join(str(settings.VAR_DIR), "celerybeat.pid")
        # HTTP counters start again from zero with the site (docs/observability.md); without
        # this the folder would keep one file per web process that ever ran
        for stale in settings.PROMETHEUS_MULTIPROC_DIR.glob("*.db"):
            stale.unlink(missing_ok=True)
        for child in children:
            if child.name == "beat" and os.path.exists(pidfile):
                os.unlink(pidfile)
            child.start()
            self.stdout.write(f"started {child.name} (pid {child.proc.pid if child.proc else '?'})")

        url = f"http://{options['host']}:{options['port']}/"
        self.stdout.write(self.style.SUCCESS(f"\nPortal: {url}   (health: {url}healthz)"))
        accounts = demo_accounts()
        if accounts:
            self.stdout.write("Demo accounts (kept in var/demo-accounts.json):")
            for role, entry in accounts.items():
                self.stdout.write(f"  {role:<10} {entry['username']:<16} {entry['password']}")
        self.stdout.write("Ctrl-C stops the site, the worker and beat.\n")
        self.stdout.flush()

        while not stopping:
            now = time.monotonic()
            for child in children:
                self._supervise(child, now, pidfile)
            time.sleep(0.2)

        for child in children:
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for child in children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.proc.pid, signal.SIGKILL)
        self.stdout.write("Stopped.")

    def _supervise(self, child: Child, now: float, pidfile: str) -> None:
        if child.restart_at is not None:
            if now >= child.restart_at:
                if child.name == "beat" and os.path.exists(pidfile):
                    os.unlink(pidfile)
                child.restarts += 1
                child.start()
                pid = child.proc.pid if child.proc else "?"
                self.stdout.write(f"restarted {child.name} (pid {pid}, restart {child.restarts})")
                self.stdout.flush()
            return
        if child.proc is None or child.proc.poll() is None:
            return
        code = child.proc.returncode
        # the rest of its group (pool processes, gunicorn workers) goes with it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.proc.pid, signal.SIGKILL)
        if now - child.started >= HEALTHY_AFTER:
            child.delay = child.first_delay
        child.restart_at = now + child.delay
        self.stderr.write(
            f"{child.name} exited with code {code}; restarting in {child.delay:.0f} s "
            "(the other processes go on; /healthz names what is down)"
        )
        self.stderr.flush()
        child.delay = min(MAX_DELAY, child.delay * 2)
