"""The client's state folder: who it is, what it trusts, and the installed database.

Layout of ``--state DIR``::

    config.json        server, device_id, token, channel (0600: the token is a secret)
    schedule.json      when to check next, a server's Retry-After, timestamp.json's last ETag,
                       a normal release waiting for this device's slot
    outbox.json        detection and installed-release reports not sent yet (client.outbox)
    lookup.json        the portal's look-up answers per app hash, kept under the installed
                       release, and a look-up Retry-After (client.lookup)
    trust/root.json    the root metadata given at registration: the TUF trust anchor
    tuf/               tuf.ngclient's metadata cache (root_history/, timestamp.json, ...)
    downloads/         targets while they are being applied; emptied after each sync
    db/state.bin       the installed database: a full bundle (engine.codec) whose header
                       carries its release number and state SHA-256
    .lock              held while a command changes the folder

The database is replaced by one atomic rename, so it is always either the old release or the
new one, never a mix.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.binary import write_atomic
from engine.codec import State, load_state, save_state


class ClientError(Exception):
    """A failure the client reports as JSON and a non-zero exit code."""

    exit_code = 1

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


@dataclass(frozen=True)
class Config:
    server: str
    device_id: str
    token: str
    channel: str = "stable"


@dataclass(frozen=True)
class Pending:
    """A normal release this device was offered and installs at its slot (engine.rollout)."""

    release: int
    install_at: float


@dataclass(frozen=True)
class Plan:
    """schedule.json: when to check again, what the server said, what is pending."""

    next_check_after: float = 0.0  # the routine interval (scheduled checks only)
    retry_after: float = 0.0  # a server's 429/503 Retry-After: binds every run but --force
    etag: str | None = None  # timestamp.json's ETag when last fully acted upon
    pending: Pending | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "next_check_after": self.next_check_after,
            "retry_after": self.retry_after,
            "etag": self.etag,
            "pending": asdict(self.pending) if self.pending else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        pending = data.get("pending")
        etag = data.get("etag")
        return cls(
            next_check_after=float(data.get("next_check_after", 0.0)),
            retry_after=float(data.get("retry_after", 0.0)),
            etag=etag if isinstance(etag, str) else None,
            pending=Pending(int(pending["release"]), float(pending["install_at"]))
            if pending
            else None,
        )


class StateDir:
    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def schedule_path(self) -> Path:
        return self.path / "schedule.json"

    @property
    def outbox_path(self) -> Path:
        return self.path / "outbox.json"

    @property
    def trusted_root(self) -> Path:
        return self.path / "trust" / "root.json"

    @property
    def metadata_dir(self) -> Path:
        return self.path / "tuf"

    @property
    def downloads_dir(self) -> Path:
        return self.path / "downloads"

    @property
    def db_path(self) -> Path:
        return self.path / "db" / "state.bin"

    def create(self, config: Config, root_metadata: bytes) -> None:
        for folder in (self.path, self.trusted_root.parent, self.metadata_dir, self.db_path.parent):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.trusted_root, root_metadata)
        self.save_config(config)

    def save_config(self, config: Config) -> None:
        write_atomic(self.config_path, json.dumps(asdict(config), indent=2).encode())
        os.chmod(self.config_path, 0o600)

    def config(self) -> Config:
        try:
            data = json.loads(self.config_path.read_text())
            return Config(**data)
        except FileNotFoundError as exc:
            raise ClientError(f"{self.path} is not registered: run `register` first") from exc
        except (ValueError, TypeError) as exc:
            raise ClientError(f"{self.config_path} is damaged: {exc}") from exc

    def schedule(self) -> Plan:
        """What the last runs decided (a missing or damaged file: check now)."""
        try:
            data = json.loads(self.schedule_path.read_text())
            return Plan.from_json(data)
        except (FileNotFoundError, ValueError, KeyError, TypeError, AttributeError):
            return Plan()

    def save_schedule(self, plan: Plan) -> None:
        write_atomic(self.schedule_path, json.dumps(plan.to_json()).encode())

    def installed(self, engine_version: int) -> State | None:
        """The installed database, or None before the first sync. A damaged file raises."""
        if not self.db_path.exists():
            return None
        return load_state(self.db_path, engine_version)

    def install(self, state: State) -> None:
        save_state(state, self.db_path)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One command at a time per folder (tuf.ngclient's cache is single-user too)."""
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.path / ".lock", "w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise ClientError(f"another client command is using {self.path}") from exc
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
