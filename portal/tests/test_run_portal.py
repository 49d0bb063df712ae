"""`manage.py run_portal` (what `make run` starts) supervises its children: a dead worker is
restarted while the site keeps serving, and /healthz names what is down in the meantime."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from portal.testing import REPO, wait_for

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _health(base: str) -> tuple[int, dict[str, object]]:
    response = requests.get(f"{base}/healthz", timeout=10)
    return response.status_code, response.json()


def test_a_killed_worker_is_restarted_while_the_site_keeps_serving(
    process_env: dict[str, str], tmp_path: Path
) -> None:
    # given the portal as make run starts it, with fast heartbeats
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **process_env,
        "WORKER_HEARTBEAT_SECONDS": "1",
        "WORKER_STALE_AFTER_SECONDS": "3",
        # long enough for the dead worker's heartbeat to go stale before it is back
        "RUN_PORTAL_FIRST_RESTART_SECONDS": "8",
    }
    log = tmp_path / "run_portal.log"
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_portal", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def output() -> str:
        return log.read_text(errors="replace")

    try:
        wait_for(
            lambda: _ok(base), timeout=120, what=f"the portal to be healthy\n{output()[-3000:]}"
        )
        found = re.search(r"started worker \(pid (\d+)\)", output())
        assert found, output()
        # when the worker is killed with SIGKILL
        os.killpg(int(found[1]), signal.SIGKILL)
        # then the site keeps answering, and health names the worker while it is down
        seen_down: list[dict[str, object]] = []

        def worker_down() -> bool:
            status, body = _health(base)
            if status == 503 and body.get("worker") == "down":
                seen_down.append(body)
            return bool(seen_down)

        wait_for(worker_down, timeout=60, what=f"health to report the worker\n{output()[-3000:]}")
        assert seen_down[0]["database"] == "ok"
        assert "worker" in str(seen_down[0]["message"])
        # and the supervisor starts it again, after which health is ok again
        wait_for(lambda: "restarted worker" in output(), timeout=60, what=output()[-3000:])
        wait_for(lambda: _ok(base), timeout=120, what=f"health to recover\n{output()[-3000:]}")
        assert "worker exited with code" in output()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    assert "Stopped." in output()


def _ok(base: str) -> bool:
    try:
        status, body = _health(base)
    except requests.RequestException:
        return False
    return status == 200 and body.get("beat") == "ok"
