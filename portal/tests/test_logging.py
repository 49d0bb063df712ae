"""LOG_FORMAT: plain lines by default, JSON lines for log shippers, in web processes and in
Celery workers alike (docs/observability.md)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime
from typing import Any

import pytest
from django.conf import settings

from portal.models import WorkerHeartbeat
from portal.testing import wait_for

pytestmark = pytest.mark.integration

LOG_AN_ERROR = """
import logging
import django

django.setup()
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("scans.services").exception("scan %s failed", 42)
"""


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "LOG_FORMAT"}
    environment.update(PORTAL_VAR_DIR=str(settings.VAR_DIR), **env)
    environment.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    return subprocess.run(
        [sys.executable, "-c", code],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=settings.BASE_DIR,
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line parsed as JSON: fails the test on the first line that is not."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_with_log_format_json_an_error_is_one_json_line_with_its_exception() -> None:
    result = run_python(LOG_AN_ERROR, LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr

    [line] = json_lines(result.stderr)
    assert line["message"] == "scan 42 failed"
    assert line["level"] == "ERROR"
    assert line["logger"] == "scans.services"
    assert "ZeroDivisionError: division by zero" in line["exception"]
    assert "Traceback (most recent call last)" in line["exception"]
    assert datetime.fromisoformat(line["timestamp"]).tzinfo is not None


def test_plain_lines_are_the_default() -> None:
    result = run_python(LOG_AN_ERROR)
    assert result.returncode == 0, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.endswith("ERROR scans.services: scan 42 failed")
    assert "ZeroDivisionError" in result.stderr


def test_an_unknown_log_format_is_refused_at_start() -> None:
    result = run_python(LOG_AN_ERROR, LOG_FORMAT="xml")
    assert result.returncode != 0
    assert "LOG_FORMAT must be plain or json" in result.stderr


def test_a_celery_worker_logs_json_lines(celery_worker, monkeypatch: pytest.MonkeyPatch) -> None:
    # given a real worker started with LOG_FORMAT=json
    monkeypatch.setenv("LOG_FORMAT", "json")
    worker = celery_worker("default")
    wait_for(
        lambda: (
            WorkerHeartbeat.objects.filter(hostname__startswith="test-").exists()
            and "ready" in worker.output()
        ),
        what=f"the worker to be ready\n{worker.output()}",
    )
    worker.stop()

    # then everything it logged, Celery's own lines included, is a JSON object per line; what
    # is left is printed, not logged: the start-up banner (-q leaves it out), the shutdown
    # notice, and warnings raised before logging is set up (running as root)
    output = worker.output().splitlines()
    lines = json_lines("\n".join(line for line in output if line.startswith("{")))
    assert any(
        line["logger"].startswith("celery") and line["message"].endswith("ready.") for line in lines
    ), output
    assert all({"timestamp", "level", "logger", "message"} <= set(line) for line in lines)
    # Celery's plain format ("[2026-01-01 12:00:00,000: INFO/MainProcess] ...") and ours both
    # start with the time: no such line is left
    plain = [line for line in output if re.match(r"\[?\d{4}-\d\d-\d\d[ T]\d\d:", line)]
    assert plain == []
