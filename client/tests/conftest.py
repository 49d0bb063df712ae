"""A TUF repository in tmp_path, served by a real local HTTP server (with ETags, as any static
server or CDN serves it), and a tiny stand-in for the portal's registration endpoint. The
stand-in exists only here: the real API is the portal's."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

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
        rollout: dict[str, Any] | None = None,
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
                    rollout=rollout,
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

    def set_rollout(self, release: int, **rollout: Any) -> None:
        """Re-sign a release's rollout (as the portal's rollout and halt do)."""
        name = full_target_name(release)
        current = self.repo.target_files()[name].custom.get("rollout") or {}
        self.repo.set_custom({name: {"rollout": {**current, **rollout}}})


@dataclass
class FakePortal:
    """What the HTTP handler consults; tests change it to script the server."""

    repo_dir: Path
    publisher: Publisher
    # (status, headers, body) answered to timestamp.json requests instead of the file, once each
    scripted: list[tuple[int, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    overrides: dict[str, bytes] = field(default_factory=dict)  # /updates/... path -> bytes
    timestamp_requests: int = 0
    not_modified: int = 0  # 304 answers to timestamp.json
    requests: list[str] = field(default_factory=list)  # every path asked for
    registered: int = 0
    url: str = ""
    # the look-up stand-in: known verdicts by hash, every batch asked, scripted refusals
    verdicts: dict[str, str] = field(default_factory=dict)
    cache_seconds: int = 3600
    lookups: list[list[str]] = field(default_factory=list)
    lookup_scripted: list[tuple[int, dict[str, str], dict[str, Any]]] = field(default_factory=list)


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
            if urlparse(self.path).path == "/api/v1/devices/lookup/":
                self._lookup(body)
            elif urlparse(self.path).path != "/api/v1/devices/register/":
                self._json(404, {"detail": "not found"})
            elif body.get("enrollment_key") != ENROLLMENT_KEY:
                self._json(403, {"detail": "bad enrollment key"})
            else:
                portal.registered += 1
                self._json(201, {"device_id": f"dev-{portal.registered}", "token": "device-token"})

        def _lookup(self, body: dict[str, Any]) -> None:
            if self.headers.get("Authorization") != "Token device-token":
                self._json(401, {"message": "no device token"})
                return
            if portal.lookup_scripted:
                status, headers, answer = portal.lookup_scripted.pop(0)
                self._json(status, answer, headers)
                return
            asked = body.get("sha256s")
            if not isinstance(asked, list) or not 0 < len(asked) <= 100:
                self._json(400, {"message": "1 to 100 SHA-256s"})
                return
            portal.lookups.append(asked)
            results = [
                {
                    "sha256": sha,
                    "verdict": portal.verdicts.get(sha, "unknown"),
                    "label": "unknown",
                    "family": "Joker" if portal.verdicts.get(sha) == "malicious" else None,
                    "signature": None,
                    "release": 1 if sha in portal.verdicts else None,
                }
                for sha in asked
            ]
            self._json(
                200, {"release": 1, "cache_seconds": portal.cache_seconds, "results": results}
            )

        def do_GET(self) -> None:
            url = urlparse(self.path)
            portal.requests.append(url.path)
            if url.path == "/updates/metadata/timestamp.json":
                portal.timestamp_requests += 1
                if portal.scripted:
                    status, headers, body = portal.scripted.pop(0)
                    self._json(status, body, headers)
                    return
            if url.path.startswith("/updates/") and ".." not in url.path:
                rel = url.path[len("/updates/") :]
                data = portal.overrides.get(rel)
                path = portal.repo_dir / rel
                if data is None and path.is_file():
                    data = path.read_bytes()
                if data is not None:
                    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
                    if self.headers.get("If-None-Match") == etag:
                        portal.not_modified += 1
                        self.send_response(304)
                        self.send_header("ETag", etag)
                        self.end_headers()
                        return
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("ETag", etag)
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
