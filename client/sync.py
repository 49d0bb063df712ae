"""Sync: a cheap static check, then TUF refresh, decide from signed data, fetch, verify, swap.

The order of checks, and why:

1. Honour the stored ``next_check_after`` from a server's 429/503 ``Retry-After`` unless
   ``force``: a fleet that ignores it is a denial of service.
2. The frequent check is one conditional GET of the static, signed ``timestamp.json`` (any CDN
   serves it; the portal's processes never see it). 304 means nothing changed: done.
3. When it changed, ``tuf.ngclient`` refreshes root → timestamp → snapshot → targets
   (rejecting rollback, expiry, bad signatures). Which release to install is decided here, by
   ``engine.rollout.choose_update`` over the *signed* targets: each release's rollout
   percentage, halt and urgency are signed custom data, and this device's bucket comes from its
   own id. The portal's compatibility endpoint decides with the same function.
4. The target's ``custom`` data must name a release above the installed one (never
   downgrade), an engine this client has, and for a delta the installed release as its base.
5. The update is applied to a new ``State`` (the installed one is never modified), its state
   SHA-256 must equal the signed ``state_sha256``, and only then does one atomic rename
   replace ``db/state.bin``. Any failure before that leaves the installed database as it was.

``sync`` is what a person's "update now" does: it installs the offered release at once.
``check`` is the phone's scheduled run: it follows ``engine.rollout.Schedule``, installing an
urgent release (the kill switch) at once and a normal one at this device's slot.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tuf.api import exceptions as tuf_exceptions
from tuf.api.metadata import Metadata, TargetFile, Targets
from tuf.ngclient.updater import Updater

from client import outbox
from client.api import Backoff, Throttled, fetch_timestamp
from client.state import ClientError, Config, Pending, StateDir
from engine import ENGINE_VERSION
from engine.codec import CodecError, State, apply_delta, apply_full
from engine.rollout import Offer, Schedule, choose_update, device_of, releases_of

METADATA_PATH = "/updates/metadata/"
TARGETS_PATH = "/updates/targets/"


@dataclass
class SyncOptions:
    force: bool = False
    engine_version: int = ENGINE_VERSION
    backoff: Backoff = field(default_factory=Backoff)
    clock: Callable[[], float] = time.time
    schedule: Schedule = field(default_factory=Schedule)
    rand: Callable[[], float] = field(default=random.random)


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


def _tuf_errors(exc: Exception) -> ClientError:
    if isinstance(exc, tuf_exceptions.RepositoryError):
        return ClientError(f"TUF verification failed: {type(exc).__name__}: {exc}")
    if isinstance(exc, tuf_exceptions.DownloadError):
        return ClientError(f"download failed: {type(exc).__name__}: {exc}")
    # OSError, ValueError: tuf.ngclient's own argument and metadata parsing problems
    return ClientError(f"update failed: {type(exc).__name__}: {exc}")


def _signed_offer(
    state_dir: StateDir, updater: Updater, device_id: str, channel: str, installed: int, engine: int
) -> Offer | None:
    """Refresh the TUF metadata and decide from the verified targets what to install."""
    try:
        updater.refresh()
        # refresh() stores top-level metadata only once verified: this is the trusted targets
        stored = (state_dir.metadata_dir / "targets.json").read_bytes()
        targets: Metadata[Targets] = Metadata.from_bytes(stored)
    except (tuf_exceptions.RepositoryError, tuf_exceptions.DownloadError, OSError, ValueError) as e:
        raise _tuf_errors(e) from e
    custom = {name: info.custom for name, info in targets.signed.targets.items()}
    device = device_of(device_id, channel=channel, engine_version=engine)
    return choose_update(releases_of(custom), installed=installed, device=device)


def sync(path: Path, options: SyncOptions | None = None) -> dict[str, Any]:
    """Update now: install the release this device is offered, whatever the schedule says."""
    return _run(path, options or SyncOptions(), scheduled=False)


def check(path: Path, options: SyncOptions | None = None) -> dict[str, Any]:
    """The phone's scheduled run: a cheap check, and an install when ``Schedule`` says so."""
    return _run(path, options or SyncOptions(), scheduled=True)


def _run(path: Path, options: SyncOptions, *, scheduled: bool) -> dict[str, Any]:
    """Raises ``ClientError`` (with the installed release in ``extra``) on any failure, after
    making sure the installed database is unchanged."""
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

        plan = state_dir.schedule()
        now = options.clock()
        # a server's Retry-After binds every run; the routine interval only scheduled ones
        wait_until = max(plan.retry_after, plan.next_check_after if scheduled else 0.0)
        if not options.force and now < wait_until:
            report["waiting_seconds"] = round(wait_until - now, 3)
            return report
        try:
            _check_and_install(state_dir, config, options, installed, report, scheduled, now)
            if report["to"] != current:
                outbox.queue(state_dir, release=report["to"], engine_version=options.engine_version)
            # what was detected and installed goes to the portal (adoption, automatic halts);
            # a failure to send is reported and retried next time, never fails the sync
            if outbox.pending(state_dir):
                report["reports"] = outbox.flush(state_dir, config, options.backoff)
        except Throttled as exc:
            state_dir.save_schedule(
                replace(state_dir.schedule(), retry_after=now + exc.retry_after)
            )
            exc.extra.update({"from": current})
            raise
        except ClientError as exc:
            exc.extra.setdefault("from", current)
            raise
        return report


def _check_and_install(
    state_dir: StateDir,
    config: Config,
    options: SyncOptions,
    installed: State | None,
    report: dict[str, Any],
    scheduled: bool,
    now: float,
) -> None:
    current = installed.release if installed is not None else 0
    plan = state_dir.schedule()
    if scheduled:
        plan = replace(plan, next_check_after=options.schedule.next_check(now, options.rand()))
    # a device with no usable database must look, whatever it saw last time
    known = plan.etag if installed is not None else None
    changed, etag = fetch_timestamp(config.server, known, options.backoff)
    report["checked"] = "changed" if changed else "unchanged"
    pending = plan.pending
    if not changed and (pending is None or (scheduled and pending.install_at > now)):
        state_dir.save_schedule(plan)
        if pending is not None:
            report["pending"] = {"release": pending.release, "install_at": pending.install_at}
        return

    updater = _updater(state_dir, config.server)
    offer = _signed_offer(
        state_dir, updater, config.device_id, config.channel, current, options.engine_version
    )
    if offer is None:
        state_dir.save_schedule(replace(plan, etag=etag, pending=None))
        return
    if scheduled and not offer.urgent:
        device = device_of(config.device_id, channel=config.channel)
        if pending is None or pending.release != offer.version:
            pending = Pending(offer.version, options.schedule.install_at(offer, device, now))
        if pending.install_at > now:
            state_dir.save_schedule(replace(plan, etag=etag, pending=pending))
            report["pending"] = {"release": pending.release, "install_at": pending.install_at}
            return
    new_state, size, kind = _fetch_and_apply(updater, offer, installed, options)
    state_dir.install(new_state)
    state_dir.save_schedule(replace(plan, etag=etag, pending=None))
    report.update(
        {
            "to": new_state.release,
            "applied": kind,
            "signatures": len(new_state),
            "bytes": size,
            "state_sha256": new_state.sha256,
        }
    )
    if offer.urgent:
        report["urgent"] = True
    skipped = len(new_state.skipped)
    if skipped:
        report["skipped_needing_newer_engine"] = skipped
    if current and new_state.release <= current:  # unreachable: choose_update never offers it
        raise ClientError(f"refusing to move from {current} to {new_state.release}")


def _fetch_and_apply(
    updater: Updater, offer: Offer, installed: State | None, options: SyncOptions
) -> tuple[State, int, str]:
    """Download the offered target (refresh() already ran) and apply it to a new State."""
    current = installed.release if installed is not None else 0
    target_path, offered = offer.target, offer.version
    try:
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
    except (tuf_exceptions.RepositoryError, tuf_exceptions.DownloadError, OSError, ValueError) as e:
        raise _tuf_errors(e) from e

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
