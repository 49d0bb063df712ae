"""Start the site, one Celery worker and Celery beat; Ctrl-C stops all three."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from portal.demo import demo_accounts


class Command(BaseCommand):
    help = "Run the portal (gunicorn), one Celery worker and Celery beat until Ctrl-C."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))

    def handle(self, *args: Any, **options: Any) -> None:
        bindir = os.path.dirname(sys.executable)
        var = str(settings.VAR_DIR)
        commands = {
            "web": [
                os.path.join(bindir, "gunicorn"),
                "portal.wsgi",
                f"--bind={options['host']}:{options['port']}",
                "--workers=2",
                "--threads=4",
                "--timeout=120",
                "--access-logfile=-",
            ],
            "worker": [
                os.path.join(bindir, "celery"),
                "-A",
                "portal",
                "worker",
                "-Q",
                ",".join(settings.CELERY_TASK_QUEUES_NAMES),
                "--concurrency=2",
                "--loglevel=INFO",
                "-n",
                "worker1@%h",
            ],
            "beat": [
                os.path.join(bindir, "celery"),
                "-A",
                "portal",
                "beat",
                "--loglevel=INFO",
                f"--schedule={settings.CELERY_BEAT_SCHEDULE_FILENAME}",
                f"--pidfile={os.path.join(var, 'celerybeat.pid')}",
            ],
        }
        procs: dict[str, subprocess.Popen[bytes]] = {}
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        for name, cmd in commands.items():
            # Own process groups, so Ctrl-C reaches us once and we stop children in order.
            procs[name] = subprocess.Popen(cmd, start_new_session=True)

        url = f"http://{options['host']}:{options['port']}/"
        self.stdout.write(self.style.SUCCESS(f"\nPortal: {url}   (health: {url}healthz)"))
        accounts = demo_accounts()
        if accounts:
            self.stdout.write("Demo accounts (kept in var/demo-accounts.json):")
            for role, entry in accounts.items():
                self.stdout.write(f"  {role:<10} {entry['username']:<16} {entry['password']}")
        self.stdout.write("Ctrl-C stops the site, the worker and beat.\n")

        exit_code = 0
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    self.stderr.write(f"{name} exited with code {proc.returncode}; stopping.")
                    stopping, exit_code = True, 1
            time.sleep(0.5)

        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        self.stdout.write("Stopped.")
        sys.exit(exit_code)
