"""Sync: ask the portal which release to have, fetch it through TUF, apply, verify, swap.

The order of checks, and why:

1. Before asking, honour the stored ``next_check_after`` (from ``min_wait_seconds`` or a
   429 Retry-After) unless ``force``: a fleet that ignores it is a denial of service.
2. The device API is only advice (it picks *which* release, for staged rollout). What gets
   installed is decided by signed TUF metadata: ``tuf.ngclient`` refreshes root → timestamp →
   snapshot → targets (rejecting rollback, expiry, bad signatures) and downloads the target
   with its length and hash checked.
3. The target's ``custom`` data (signed in targets.json) must name the release the API
   offered, a release above the installed one (never downgrade), an engine this client
   has, and for a delta the installed release as its base.
4. The update is applied to a new ``State`` (the installed one is never modified), its state
   SHA-256 must equal the signed ``state_sha256``, and only then does one atomic rename
   replace ``db/state.bin``. Any failure before that leaves the installed database as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuf.api import exceptions as tuf_exceptions
from tuf.api._payload import TargetFile  # mypy --strict: tuf.ngclient's __all__ is opaque
from tuf.ngclient.updater import Updater

from client.api import Backoff, Throttled, ask_update
from client.state import ClientError, StateDir
from engine import ENGINE_VERSION
from engine.codec import CodecError, State, apply_delta, apply_full

METADATA_PATH = "/updates/metadata/"
TARGETS_PATH = "/updates/targets/"


@dataclass
class SyncOptions:
    force: bool = False
    engine_version: int = ENGINE_VERSION
    backoff: Backoff = field(default_factory=Backoff)
    clock: Callable[[], float] = time.time


@dataclass(frozen=True)
class TargetCustom:
    """The signed custom data of a bundle or delta target (see releases.tuf_repo callers)."""

    release: int
    base: int | None
    state_sha256: str
    min_engine: int

    @classmethod
    def of(cls, target: TargetFile) -> TargetCustom:
        custom = target.custom
        if not isinstance(custom, dict):
            raise ClientError(f"target {target.path} has no custom data")
        release, base = custom.get("release"), custom.get("base")
        sha, min_engine = custom.get("state_sha256"), custom.get("min_engine", 1)
        if (
            type(release) is not int
            or not (base is None or type(base) is int)
            or not isinstance(sha, str)
            or len(sha) != 64
            or type(min_engine) is not int
        ):
            raise ClientError(f"target {target.path} has malformed custom data", custom=custom)
        return cls(release=release, base=base, state_sha256=sha, min_engine=min_engine)


def _updater(state_dir: StateDir, server: str) -> Updater:
    server = server.rstrip("/")
    state_dir.metadata_dir.mkdir(parents=True, exist_ok=True)
    state_dir.downloads_dir.mkdir(parents=True, exist_ok=True)
    return Updater(
        metadata_dir=str(state_dir.metadata_dir),
        metadata_base_url=server + METADATA_PATH,
        target_dir=str(state_dir.downloads_dir),
        target_base_url=server + TARGETS_PATH,
        # the root shipped with the app (given at registration) anchors trust every time;
        # newer roots found in tuf/root_history/ are re-verified from it
        bootstrap=state_dir.trusted_root.read_bytes(),
    )


def sync(path: Path, options: SyncOptions | None = None) -> dict[str, Any]:
    """Bring the installed database up to the release the portal offers; return the report.

    Raises ``ClientError`` (with the installed release in ``extra``) on any failure, after
    making sure the installed database is unchanged.
    """
    options = options or SyncOptions()
    state_dir = StateDir(path)
    with state_dir.locked():
        config = state_dir.config()
        damaged: str | None = None
        try:
            installed = state_dir.installed(options.engine_version)
        except CodecError as exc:
            # a damaged database cannot be a delta base; a full bundle (installed=0) heals it
            installed = None
            damaged = str(exc)
        current = installed.release if installed is not None else 0
        report: dict[str, Any] = {
            "from": current,
            "to": current,
            "applied": "none",
            "signatures": len(installed) if installed is not None else 0,
            "bytes": 0,
        }
        if damaged:
            report["damaged_database"] = damaged

        now = options.clock()
        not_before = state_dir.next_check_after()
        if not options.force and now < not_before:
            report["waiting_seconds"] = round(not_before - now, 3)
            return report

        try:
            answer = ask_update(config.server, config.token, current, options.backoff)
        except Throttled as exc:
            state_dir.set_next_check(now + exc.retry_after, "retry-after")
            exc.extra.update({"from": current})
            raise
        state_dir.set_next_check(now + answer.min_wait_seconds, "min_wait_seconds")
        if answer.version is None or answer.target is None:
            return report
        if answer.version <= current:
            raise ClientError(
                f"the server offered release {answer.version}; installed is {current}: "
                "a client never moves to a lower or equal release",
                **{"from": current},
            )
        try:
            new_state, size, kind = _fetch_and_apply(
                state_dir, config.server, answer.target, answer.version, installed, options
            )
        except ClientError as exc:
            exc.extra.setdefault("from", current)
            raise
        state_dir.install(new_state)
        report.update(
            {
                "to": new_state.release,
                "applied": kind,
                "signatures": len(new_state),
                "bytes": size,
                "state_sha256": new_state.sha256,
            }
        )
        skipped = len(new_state.skipped)
        if skipped:
            report["skipped_needing_newer_engine"] = skipped
        return report


def _fetch_and_apply(
    state_dir: StateDir,
    server: str,
    target_path: str,
    offered: int,
    installed: State | None,
    options: SyncOptions,
) -> tuple[State, int, str]:
    current = installed.release if installed is not None else 0
    try:
        updater = _updater(state_dir, server)
        updater.refresh()
        target = updater.get_targetinfo(target_path)
        if target is None:
            raise ClientError(f"{target_path} is not a signed target of this repository")
        custom = TargetCustom.of(target)
        if custom.release != offered:
            raise ClientError(
                f"{target_path} is signed as release {custom.release}, not {offered} as offered"
            )
        if custom.release <= current:
            raise ClientError(f"{target_path} would move from {current} to {custom.release}")
        if custom.min_engine > options.engine_version:
            raise ClientError(
                f"release {custom.release} needs engine {custom.min_engine}; "
                f"this is engine {options.engine_version}"
            )
        if custom.base is not None and (installed is None or custom.base != current):
            raise ClientError(
                f"{target_path} is a delta from {custom.base}, installed is {current}"
            )
        downloaded = Path(updater.download_target(target))
    except tuf_exceptions.RepositoryError as exc:
        raise ClientError(f"TUF verification failed: {type(exc).__name__}: {exc}") from exc
    except tuf_exceptions.DownloadError as exc:
        raise ClientError(f"download failed: {type(exc).__name__}: {exc}") from exc
    except (OSError, ValueError) as exc:
        # ValueError: tuf.ngclient's own argument and metadata parsing problems
        raise ClientError(f"update failed: {type(exc).__name__}: {exc}") from exc

    try:
        data = downloaded.read_bytes()
        if custom.base is None:
            new_state = apply_full(data, options.engine_version)
            kind = "full"
        else:
            assert installed is not None  # checked above, before downloading
            new_state = apply_delta(installed, data, options.engine_version)
            kind = "delta"
    except CodecError as exc:
        raise ClientError(f"{target_path} cannot be applied: {exc}") from exc
    finally:
        downloaded.unlink(missing_ok=True)
    if new_state.release != custom.release:
        raise ClientError(f"{target_path} holds release {new_state.release}, not {custom.release}")
    if new_state.sha256 != custom.state_sha256:
        raise ClientError(
            f"state hash mismatch: release {custom.release} should hash to "
            f"{custom.state_sha256[:16]}..., the result hashes to {new_state.sha256[:16]}..."
        )
    return new_state, len(data), kind
