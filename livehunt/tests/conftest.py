"""Fixtures for the livehunt tests: a small real APK stored and scanned, rule bodies that
match it, and a local HTTP server that records the webhook POSTs it receives."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from livehunt.services import ruleset_cache_clear
from scans import rulesets
from scans.models import Sample
from scans.rulesets import ExplicitRuleset
from scans.services import scan_run
from scans.tests.factories import stored_sample

SMALL_APK = "v1-only-with-rsa-pkcs1-sha256-1.2.840.113549.1.1.11-2048.apk"
PACKAGE = "android.appsecurity.cts.tinyapp"
YARA_MATCH = f'rule tiny_app {{ condition: android.package == "{PACKAGE}" }}'
YARA_MISS = 'rule never { condition: android.package == "com.example.nothing" }'
KOODOUS_MATCH = (
    f'import "androguard"\nrule koodous_tiny {{ condition: androguard.package_name("{PACKAGE}") }}'
)


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    ruleset_cache_clear()
    rulesets.cache_clear()
    yield
    ruleset_cache_clear()


@pytest.fixture
def small_apk(corpus: Path) -> Path:
    return corpus / "apks" / SMALL_APK


@pytest.fixture
def scanned_sample(small_apk: Path, researcher: Any) -> Sample:
    """The small APK stored and scanned (no signatures), as after an upload."""
    sample, scan = stored_sample(small_apk, user=researcher)
    empty = ExplicitRuleset.of((), release=None)
    scan_run(scan_id=scan.pk, ruleset_provider=lambda: empty)
    sample.refresh_from_db()
    assert sample.features_engine_version is not None
    return sample


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class HookServer:
    url: str
    received: list[Received] = field(default_factory=list)
    status: int = 204
    location: str = ""


@pytest.fixture
def hook_server(settings: Any) -> Iterator[HookServer]:
    """A real HTTP server on 127.0.0.1 in a thread; loopback webhooks allowed for the test."""
    settings.LIVEHUNT_WEBHOOK_ALLOW_LOCAL = True
    state = HookServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            state.received.append(
                Received(path=self.path, body=json.loads(raw), headers=dict(self.headers))
            )
            self.send_response(state.status)
            if state.location:
                self.send_header("Location", state.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/livehunt"
    yield state
    server.shutdown()
    server.server_close()


def wait_received(server: HookServer, count: int, timeout: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while len(server.received) < count and time.monotonic() < deadline:
        time.sleep(0.02)


RuleMaker = Callable[..., Any]
