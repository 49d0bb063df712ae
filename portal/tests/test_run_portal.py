"""`manage.py run_portal` (what `make run` starts) supervises its children: a dead worker is
restarted while the site keeps serving, and /healthz names what is down in the meantime."""

from __future__ import annotations

import os
import re
import signal

import pytest
import requests

from portal.testing import wait_for

pytestmark = pytest.mark.integration


def _health(base: str) -> tuple[int, dict[str, object]]:
    response = requests.get(f"{base}/healthz", timeout=10)
    return response.status_code, response.json()


def test_a_killed_worker_is_restarted_while_the_site_keeps_serving(portal_server) -> None:
    # given the portal as make run starts it, with fast heartbeats
    server = portal_server(
        WORKER_HEARTBEAT_SECONDS="1",
        WORKER_STALE_AFTER_SECONDS="3",
        # long enough for the dead worker's heartbeat to go stale before it is back
        RUN_PORTAL_FIRST_RESTART_SECONDS="8",
    )
    base, output = server.base, server.output
    wait_for(lambda: _ok(base), timeout=120, what=f"the portal to be healthy\n{output()[-3000:]}")
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
    # and Ctrl-C (SIGTERM here) stops everything cleanly
    server.stop()
    assert "Stopped." in output()


def _ok(base: str) -> bool:
    try:
        status, body = _health(base)
    except requests.RequestException:
        return False
    return status == 200 and body.get("beat") == "ok"
