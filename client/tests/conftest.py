"""A TUF repository in tmp_path, served by a real local HTTP server, with a tiny stand-in
for the portal's device API. The stand-in exists only here: the real API is the portal's."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from engine import codec
from engine.features import RuleRecord
from releases.tuf_repo import (
    RepoKeys,
    UpdateRepository,
    delta_target_name,
    full_target_name,
    release_custom,
)

ENROLLMENT_KEY = "enrol-me"


def hash_record(i: int, revision: int = 1, *, min_engine: int = 1) -> RuleRecord:
    return RuleRecord(
        id=i,
        revision=revision,
        name=f"Andr.Trojan.Joker-{i}-{revision}",
        kind="hash",
        body={
            "algorithm": "sha256",
            "target": "apk",
            "value": hashlib.sha256(f"{i}/{revision}".encode()).hexdigest(),
        },
        severity="malicious",
        min_engine=min_engine,
    )


@dataclass
class Publisher:
    """Publishes releases the way the portal will: a full bundle and a delta from the last."""

    repo: UpdateRepository
    states: dict[int, list[RuleRecord]] = field(default_factory=dict)

    def publish(
        self,
        release: int,
        records: list[RuleRecord],
        *,
        custom_override: dict[str, Any] | None = None,
        deltas_from: tuple[int, ...] | None = None,
    ) -> None:
        sha = codec.state_sha256(records)
        files: list[tuple[str, bytes, dict[str, Any]]] = [
            (
                full_target_name(release),
                codec.build_full(release, records),
                release_custom(
                    release=release,
                    base=None,
                    state_sha256=sha,
                    min_engine=1,
                    signatures=len(records),
                ),
            )
        ]
        bases = deltas_from if deltas_from is not None else tuple(self.states)[-1:]
        for base in bases:
            before = self.states[base]
            upserts, removed = codec.diff_states(
                {r.id: r for r in before}, {r.id: r for r in records}
            )
            delta = codec.build_delta(
                base_release=base,
                base_sha256=codec.state_sha256(before),
                release=release,
                state_sha256=sha,
                upserts=upserts,
                removed=removed,
            )
            custom = release_custom(
                release=release, base=base, state_sha256=sha, min_engine=1, signatures=len(records)
            )
            files.append((delta_target_name(base, release), delta, custom))
        if custom_override:
            files = [(n, d, {**c, **custom_override}) for n, d, c in files]
        self.repo.add_targets(files)
        self.states[release] = records

    @property
    def latest(self) -> int:
        return max(self.states, default=0)


@dataclass
class FakePortal:
    """What the HTTP handler consults; tests change it to script the server."""

    repo_dir: Path
    publisher: Publisher
    min_wait_seconds: int = 0
    # (status, headers, body) answered instead of the normal update answer, once each
    scripted: list[tuple[int, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    answer: dict[str, Any] | None = None  # a fixed update answer, when set
    overrides: dict[str, bytes] = field(default_factory=dict)  # /updates/... path -> bytes
    update_requests: int = 0
    url: str = ""

    def update_answer(self, installed: int) -> dict[str, Any]:
        if self.answer is not None:
            return {"min_wait_seconds": self.min_wait_seconds, **self.answer}
        latest = self.publisher.latest
        if installed >= latest:
            return {"up_to_date": True, "min_wait_seconds": self.min_wait_seconds}
        targets = self.publisher.repo.target_files()
        delta = delta_target_name(installed, latest)
        target = delta if delta in targets else full_target_name(latest)
        return {"version": latest, "target": target, "min_wait_seconds": self.min_wait_seconds}


def _handler(portal: FakePortal) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(
            self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            if urlparse(self.path).path != "/api/v1/devices/register/":
                self._json(404, {"detail": "not found"})
            elif body.get("enrollment_key") != ENROLLMENT_KEY:
                self._json(403, {"detail": "bad enrollment key"})
            else:
                self._json(201, {"device_id": "dev-1", "token": "device-token"})

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path == "/api/v1/devices/update/":
                portal.update_requests += 1
                if self.headers.get("Authorization") != "Token device-token":
                    self._json(401, {"detail": "bad token"})
                    return
                if portal.scripted:
                    status, headers, body = portal.scripted.pop(0)
                    self._json(status, body, headers)
                    return
                installed = int(parse_qs(url.query).get("installed", ["0"])[0])
                self._json(200, portal.update_answer(installed))
                return
            if url.path.startswith("/updates/") and ".." not in url.path:
                rel = url.path[len("/updates/") :]
                data = portal.overrides.get(rel)
                path = portal.repo_dir / rel
                if data is None and path.is_file():
                    data = path.read_bytes()
                if data is not None:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@pytest.fixture
def keys(tmp_path: Path) -> RepoKeys:
    return RepoKeys.generate_dev(tmp_path / "keys")


@pytest.fixture
def repo(tmp_path: Path, keys: RepoKeys) -> UpdateRepository:
    repository = UpdateRepository(tmp_path / "updates", keys)
    repository.init()
    return repository


@pytest.fixture
def publisher(repo: UpdateRepository) -> Publisher:
    return Publisher(repo)


@pytest.fixture
def portal(repo: UpdateRepository, publisher: Publisher) -> Iterator[FakePortal]:
    fake = FakePortal(repo_dir=repo.root_dir, publisher=publisher)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def device(tmp_path: Path, portal: FakePortal, repo: UpdateRepository) -> Callable[[str], Path]:
    """Register a device (through the client's own code) and return its state folder."""
    from client.__main__ import main

    root = tmp_path / "app-root.json"
    repo.export_root(root)

    def make(name: str = "phone") -> Path:
        state = tmp_path / name
        code = main(
            [
                "register",
                "--server",
                portal.url,
                "--enrollment-key",
                ENROLLMENT_KEY,
                "--root",
                str(root),
                "--state",
                str(state),
            ]
        )
        assert code == 0
        return state

    return make
