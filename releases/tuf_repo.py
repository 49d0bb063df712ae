"""The signed update repository devices pull releases from, built with python-tuf.

Django-free on purpose: Celery tasks and management commands call it with a folder and a set
of keys, and the tests drive it with nothing else. Callers serialise publishing (the portal
holds a database lock); each call here leaves the repository consistent on its own.

Layout under ``root_dir`` (served as ``/updates/``, any static server or CDN will do)::

    metadata/1.root.json, 2.root.json ...   every root version (clients walk the chain)
    metadata/root.json                      copy of the newest root (for people and tools)
    metadata/<n>.targets.json               immutable, one per publish
    metadata/<n>.snapshot.json              immutable, one per publish
    metadata/timestamp.json                 the only mutable file; expires within a day
    targets/<sha256>.<name>                 immutable target files (consistent snapshots)

That is what ``tuf.ngclient.Updater`` fetches when ``consistent_snapshot`` is on:
``<v>.root.json`` for root updates, ``timestamp.json``, ``<v>.snapshot.json``,
``<v>.targets.json``, and targets as ``<hash>.<basename>``.

Publishing order is what makes a failed publish invisible: target files first, then the new
targets, then snapshot, and ``timestamp.json`` last (each written to a temp file and renamed).
Until the timestamp is replaced, devices see the previous release and nothing else; a crash in
between leaves unreferenced files that the next publish overwrites.

Release targets are named ``full-<N>.bin`` and ``delta-<B>-<N>.bin`` (``full_target_name``,
``delta_target_name``) and carry ``release_custom(...)`` as custom data: ``kind`` ("full" or
"delta"), ``release``, ``base`` (null for a full bundle), ``state_sha256`` (the state after
applying), ``min_engine`` (of the file format) and ``signatures`` (records in the state).

Retention: ``add_targets(..., remove=[...])`` de-lists targets (old deltas) in the same
signed step that adds new ones; the files stay on disk so a device that fetched the previous
metadata can still finish its download. Deleting unlisted files later is the caller's choice.

Keys (Ed25519, PEM PKCS#8, unencrypted — keep them in a secret store or an offline machine):
``RepoKeys.load(directory)`` reads ``TUF_ROOT_KEY``, ``TUF_TARGETS_KEY``, ``TUF_SNAPSHOT_KEY``
and ``TUF_TIMESTAMP_KEY`` from the environment first — each either the PEM text itself or the
path of a PEM file — and falls back to ``<directory>/<role>.pem``. The root key is only needed
to ``init`` and ``rotate_root``; production keeps it offline and leaves it out.
``RepoKeys.generate_dev(directory)`` makes throwaway keys for development, loudly.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

# The libraries' public modules, not their private ones: the underscore modules can move in any
# release. (They re-export without __all__; mypy accepts that while implicit_reexport is on.)
from securesystemslib.signer import CryptoSigner, Signer
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer

from engine.binary import write_atomic

logger = logging.getLogger(__name__)

ROLES: Final = ("root", "targets", "snapshot", "timestamp")
KEY_ENV: Final = {
    "root": "TUF_ROOT_KEY",
    "targets": "TUF_TARGETS_KEY",
    "snapshot": "TUF_SNAPSHOT_KEY",
    "timestamp": "TUF_TIMESTAMP_KEY",
}
ROOT_EXPIRY: Final = timedelta(days=365)
# targets and snapshot are re-signed by every publish and, when close to expiry, by
# refresh_timestamp, so a long quiet spell without releases does not lock devices out
ONLINE_EXPIRY: Final = timedelta(days=90)
TIMESTAMP_EXPIRY: Final = timedelta(days=1)
RENEW_WITHIN: Final = timedelta(days=30)

DEV_KEYS_WARNING: Final = """\
################################################################################
#  DEVELOPMENT TUF KEYS — NOT FOR PRODUCTION                                   #
#  These private keys were generated on this machine and stored unencrypted.   #
#  Anyone who can read this folder can sign updates that devices will trust.   #
#  Production: keep the root key offline, supply the online keys through       #
#  TUF_TARGETS_KEY / TUF_SNAPSHOT_KEY / TUF_TIMESTAMP_KEY from a secret store.  #
################################################################################
"""

_TARGET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_SERIALIZER = JSONSerializer(compact=True)


class RepositoryError(Exception):
    """The repository or its keys are not in a state this operation can work with."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --- release targets ------------------------------------------------------------------------
# One naming and one custom-data shape for every caller (portal publisher, client, tests).


def full_target_name(release: int) -> str:
    return f"full-{release}.bin"


def delta_target_name(base_release: int, release: int) -> str:
    return f"delta-{base_release}-{release}.bin"


def release_custom(
    *,
    release: int,
    base: int | None,
    state_sha256: str,
    min_engine: int,
    signatures: int,
    rollout: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A bundle's or delta's signed custom data; ``base`` is None for a full bundle.

    A full bundle also carries the release's ``rollout`` (``engine.rollout.Rollout``): the
    data phones decide with, re-signed by ``UpdateRepository.set_custom`` when it changes.
    """
    custom: dict[str, Any] = {
        "kind": "full" if base is None else "delta",
        "release": release,
        "base": base,
        "state_sha256": state_sha256,
        "min_engine": min_engine,
        "signatures": signatures,
    }
    if rollout is not None:
        custom["rollout"] = dict(rollout)
    return custom


def read_listed_custom(root_dir: Path) -> dict[str, Any]:
    """``{target name: custom}`` of the targets listed now, read without keys.

    For the portal's own answers from the files it signed (the compatibility update check):
    timestamp → snapshot → targets, as a device would walk them, minus signature checks.
    """
    metadata = root_dir / "metadata"
    timestamp: Metadata[Timestamp] = Metadata.from_bytes((metadata / "timestamp.json").read_bytes())
    version = timestamp.signed.snapshot_meta.version
    snapshot: Metadata[Snapshot] = Metadata.from_bytes(
        (metadata / f"{version}.snapshot.json").read_bytes()
    )
    version = snapshot.signed.meta["targets.json"].version
    targets: Metadata[Targets] = Metadata.from_bytes(
        (metadata / f"{version}.targets.json").read_bytes()
    )
    return {name: info.custom for name, info in targets.signed.targets.items()}


# --- keys ----------------------------------------------------------------------------------


def signer_from_pem(pem: bytes) -> CryptoSigner:
    try:
        private_key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise RepositoryError(f"not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(private_key, Ed25519PrivateKey):
        raise RepositoryError("TUF keys must be Ed25519")
    return CryptoSigner(private_key)


def write_private_key(path: Path, signer: CryptoSigner) -> None:
    """Write a signer's private key as PEM, readable by the owner only, never overwriting."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(signer.private_bytes)


@dataclass(frozen=True)
class RepoKeys:
    """The signers of the four top-level roles; ``root`` may be absent (kept offline)."""

    targets: Signer
    snapshot: Signer
    timestamp: Signer
    root: Signer | None = None

    def signer(self, role: str) -> Signer:
        signer: Signer | None = getattr(self, role)
        if signer is None:
            raise RepositoryError(f"the {role} key is needed here and was not loaded")
        return signer

    @classmethod
    def generate_dev(cls, directory: Path, *, exist_ok: bool = True) -> RepoKeys:
        """Create (or, with ``exist_ok``, reuse) development keys in ``directory``, loudly."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        existing = [role for role in ROLES if (directory / f"{role}.pem").exists()]
        if existing and not (exist_ok and len(existing) == len(ROLES)):
            raise RepositoryError(f"{directory} already holds some keys: {existing}")
        if not existing:
            (directory / "WARNING-DEVELOPMENT-KEYS.txt").write_text(DEV_KEYS_WARNING)
            for role in ROLES:
                write_private_key(directory / f"{role}.pem", CryptoSigner.generate_ed25519())
        # people skim logs; stderr in a terminal is harder to miss
        logger.warning("Using DEVELOPMENT TUF keys from %s\n%s", directory, DEV_KEYS_WARNING)
        print(f"Using DEVELOPMENT TUF keys from {directory}\n{DEV_KEYS_WARNING}", file=sys.stderr)
        return cls.load(directory, environ={}, require_root=True)

    @classmethod
    def load(
        cls,
        directory: Path | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        require_root: bool = False,
    ) -> RepoKeys:
        """Keys from ``TUF_<ROLE>_KEY`` (PEM text or a path), else ``<directory>/<role>.pem``."""
        env = os.environ if environ is None else environ
        signers: dict[str, Signer | None] = {}
        for role in ROLES:
            pem: bytes | None = None
            value = env.get(KEY_ENV[role], "").strip()
            if value.startswith("-----BEGIN"):
                pem = value.encode("ascii")
            elif value:
                pem = Path(value).read_bytes()
            elif directory is not None and (directory / f"{role}.pem").exists():
                pem = (directory / f"{role}.pem").read_bytes()
            if pem is None:
                if role == "root" and not require_root:
                    signers[role] = None
                    continue
                where = f" or {directory / f'{role}.pem'}" if directory is not None else ""
                raise RepositoryError(f"no {role} key: set {KEY_ENV[role]}{where}")
            signers[role] = signer_from_pem(pem)
        targets, snapshot, timestamp = (signers[r] for r in ("targets", "snapshot", "timestamp"))
        if targets is None or snapshot is None or timestamp is None:
            raise RepositoryError("online keys missing")  # unreachable: raised above
        return cls(targets=targets, snapshot=snapshot, timestamp=timestamp, root=signers["root"])


# --- the repository ------------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    """What a publish made visible: metadata versions and the target files' paths on disk."""

    targets_version: int
    snapshot_version: int
    timestamp_version: int
    files: dict[str, Path]


def _write_atomic(path: Path, data: bytes) -> None:
    # world-readable: the static server (nginx) serving /updates/ runs as another user
    write_atomic(path, data, mode=0o644)


def _meta_file(version: int, data: bytes) -> MetaFile:
    return MetaFile(
        version=version, length=len(data), hashes={"sha256": hashlib.sha256(data).hexdigest()}
    )


class UpdateRepository:
    def __init__(
        self, root_dir: Path, keys: RepoKeys, *, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self.root_dir = root_dir
        self.metadata_dir = root_dir / "metadata"
        self.targets_dir = root_dir / "targets"
        self.keys = keys
        # tests move time to make metadata expire; production uses the wall clock
        self._clock = clock

    # reading ---------------------------------------------------------------------------

    def is_initialised(self) -> bool:
        return (self.metadata_dir / "timestamp.json").exists()

    def _load(self, name: str) -> Metadata[Any]:
        path = self.metadata_dir / name
        try:
            return Metadata.from_bytes(path.read_bytes())
        except FileNotFoundError as exc:
            raise RepositoryError(f"{path} is missing: is the repository initialised?") from exc

    def root(self) -> Metadata[Root]:
        return self._load("root.json")

    def timestamp(self) -> Metadata[Timestamp]:
        return self._load("timestamp.json")

    def snapshot(self) -> Metadata[Snapshot]:
        version = self.timestamp().signed.snapshot_meta.version
        return self._load(f"{version}.snapshot.json")

    def targets(self) -> Metadata[Targets]:
        version = self.snapshot().signed.meta["targets.json"].version
        return self._load(f"{version}.targets.json")

    def target_files(self) -> dict[str, TargetFile]:
        """The targets devices can see now, by name (``TargetFile.custom`` holds our data)."""
        return dict(self.targets().signed.targets)

    def target_path(self, target: TargetFile) -> Path:
        return self.targets_dir / f"{target.hashes['sha256']}.{target.path}"

    # writing ---------------------------------------------------------------------------

    def _expiry(self, delta: timedelta) -> datetime:
        return (self._clock() + delta).replace(microsecond=0)

    def _sign(self, md: Metadata[Any], role: str) -> bytes:
        signer = self.keys.signer(role)
        root = self.root().signed if role != "root" else md.signed
        if signer.public_key.keyid not in root.roles[role].keyids:
            raise RepositoryError(f"the loaded {role} key is not the one root trusts for {role}")
        md.sign(signer)
        return md.to_bytes(_SERIALIZER)

    def init(
        self,
        *,
        root_expiry: timedelta = ROOT_EXPIRY,
        online_expiry: timedelta = ONLINE_EXPIRY,
        timestamp_expiry: timedelta = TIMESTAMP_EXPIRY,
    ) -> None:
        """Root v1 (thresholds 1, consistent snapshots) and empty targets/snapshot/timestamp."""
        if self.is_initialised() or (self.metadata_dir / "1.root.json").exists():
            raise RepositoryError(f"{self.root_dir} is already a repository")
        self.metadata_dir.mkdir(parents=True, exist_ok=True)
        self.targets_dir.mkdir(parents=True, exist_ok=True)

        root = Root(expires=self._expiry(root_expiry), consistent_snapshot=True)
        for role in ROLES:
            root.add_key(self.keys.signer(role).public_key, role)
        root_md = Metadata(root)
        root_bytes = self._sign(root_md, "root")
        _write_atomic(self.metadata_dir / "1.root.json", root_bytes)
        _write_atomic(self.metadata_dir / "root.json", root_bytes)
        self._publish(
            Targets(version=1, expires=self._expiry(online_expiry)),
            snapshot_version=1,
            timestamp_version=1,
            online_expiry=online_expiry,
            timestamp_expiry=timestamp_expiry,
        )
        logger.info("initialised the update repository in %s", self.root_dir)

    def add_targets(
        self,
        files: Sequence[tuple[str, bytes, Mapping[str, Any]]],
        *,
        remove: Iterable[str] = (),
        online_expiry: timedelta = ONLINE_EXPIRY,
        timestamp_expiry: timedelta = TIMESTAMP_EXPIRY,
    ) -> Published:
        """Publish ``(name, data, custom)`` targets and de-list ``remove``, in one signed step.

        ``custom`` lands in the target's ``custom`` field verbatim (JSON). Re-adding a name
        with different bytes replaces it; file names on disk are content-addressed so the
        old file stays valid for devices holding the previous metadata.
        """
        targets_md = self.targets()
        targets = targets_md.signed
        for name in remove:
            targets.targets.pop(name, None)
        written: dict[str, Path] = {}
        for name, data, custom in files:
            if not _TARGET_NAME.fullmatch(name):
                raise RepositoryError(f"bad target name {name!r}: letters, digits, '.', '_', '-'")
            info = TargetFile.from_data(name, data, ["sha256"])
            info.unrecognized_fields["custom"] = dict(custom)
            path = self.target_path(info)
            if not path.exists():
                _write_atomic(path, data)
            targets.targets[name] = info
            written[name] = path
        targets.version += 1
        targets.expires = self._expiry(online_expiry)
        published = self._publish(
            targets,
            snapshot_version=self.snapshot().signed.version + 1,
            timestamp_version=self.timestamp().signed.version + 1,
            online_expiry=online_expiry,
            timestamp_expiry=timestamp_expiry,
        )
        logger.info(
            "published targets v%s (%s added, %s listed)",
            published.targets_version,
            len(written),
            len(targets.targets),
        )
        return replace(published, files=written)

    def remove_targets(self, names: Iterable[str]) -> Published:
        return self.add_targets([], remove=names)

    def set_custom(
        self,
        changes: Mapping[str, Mapping[str, Any]],
        *,
        online_expiry: timedelta = ONLINE_EXPIRY,
        timestamp_expiry: timedelta = TIMESTAMP_EXPIRY,
    ) -> Published | None:
        """Merge ``changes[name]`` into listed targets' custom data and re-sign targets,
        snapshot and timestamp in one step (a rollout change or a halt). The files are not
        touched: only what devices read about them. None when nothing would change."""
        targets_md = self.targets()
        targets = targets_md.signed
        changed = False
        for name, patch in changes.items():
            info = targets.targets.get(name)
            if info is None:
                continue
            custom = dict(info.unrecognized_fields.get("custom") or {})
            merged = {**custom, **patch}
            if merged != custom:
                info.unrecognized_fields["custom"] = merged
                changed = True
        if not changed:
            return None
        targets.version += 1
        targets.expires = self._expiry(online_expiry)
        published = self._publish(
            targets,
            snapshot_version=self.snapshot().signed.version + 1,
            timestamp_version=self.timestamp().signed.version + 1,
            online_expiry=online_expiry,
            timestamp_expiry=timestamp_expiry,
        )
        logger.info("re-signed the custom data of %s target(s)", len(changes))
        return published

    def _publish(
        self,
        targets: Targets,
        *,
        snapshot_version: int,
        timestamp_version: int,
        online_expiry: timedelta,
        timestamp_expiry: timedelta,
    ) -> Published:
        """Sign and write ``targets`` (already at its new version), a snapshot and a timestamp
        at the given new versions. Order matters: everything the new timestamp points at
        exists before the timestamp does."""
        targets_bytes = self._sign(Metadata(targets), "targets")
        _write_atomic(self.metadata_dir / f"{targets.version}.targets.json", targets_bytes)

        snapshot = Snapshot(version=snapshot_version, expires=self._expiry(online_expiry))
        snapshot.meta["targets.json"] = _meta_file(targets.version, targets_bytes)
        snapshot_bytes = self._sign(Metadata(snapshot), "snapshot")
        _write_atomic(self.metadata_dir / f"{snapshot.version}.snapshot.json", snapshot_bytes)

        version = self._write_timestamp(
            snapshot.version, snapshot_bytes, timestamp_version, timestamp_expiry
        )
        return Published(targets.version, snapshot.version, version, {})

    def _write_timestamp(
        self, snapshot_version: int, snapshot_bytes: bytes, version: int, expiry: timedelta
    ) -> int:
        timestamp = Timestamp(
            version=version,
            expires=self._expiry(expiry),
            snapshot_meta=_meta_file(snapshot_version, snapshot_bytes),
        )
        path = self.metadata_dir / "timestamp.json"
        try:
            before = path.stat().st_mtime
        except FileNotFoundError:
            before = 0.0
        _write_atomic(path, self._sign(Metadata(timestamp), "timestamp"))
        # Static servers derive the ETag from the modification time in whole seconds and the
        # size (nginx: "<mtime hex>-<size hex>"), and a re-signed timestamp keeps its size: a
        # halt signed within the second of a publish would be answered 304. Each new
        # timestamp.json is therefore dated at least one whole second after the one before.
        after = path.stat().st_mtime
        if int(after) <= int(before):
            when = float(int(before) + 1)
            os.utime(path, (when, when))
        return version

    def refresh_timestamp(
        self, expiry: timedelta = TIMESTAMP_EXPIRY, *, renew_within: timedelta = RENEW_WITHIN
    ) -> int:
        """Re-sign timestamp.json (run on a schedule, well inside ``expiry``).

        When targets or snapshot would expire within ``renew_within`` they are re-signed too,
        with the same targets, so the repository stays valid without new releases.
        Returns the new timestamp version.
        """
        timestamp = self.timestamp().signed
        snapshot_md = self.snapshot()
        targets_md = self.targets()
        horizon = self._clock() + renew_within
        if snapshot_md.signed.expires <= horizon or targets_md.signed.expires <= horizon:
            targets = targets_md.signed
            targets.version += 1
            targets.expires = self._expiry(ONLINE_EXPIRY)
            return self._publish(
                targets,
                snapshot_version=snapshot_md.signed.version + 1,
                timestamp_version=timestamp.version + 1,
                online_expiry=ONLINE_EXPIRY,
                timestamp_expiry=expiry,
            ).timestamp_version
        snapshot_bytes = (
            self.metadata_dir / f"{snapshot_md.signed.version}.snapshot.json"
        ).read_bytes()
        return self._write_timestamp(
            snapshot_md.signed.version, snapshot_bytes, timestamp.version + 1, expiry
        )

    def rotate_root(self, new_root_signer: Signer, *, expiry: timedelta = ROOT_EXPIRY) -> int:
        """Replace the root key: root v+1 lists only the new key, signed by old and new.

        Devices verify v+1 with the keys of v (old signature) and with its own keys (new
        signature), so the chain holds. ``self.keys.root`` becomes the new signer; storing
        its private key (offline) is the caller's job. Returns the new root version.
        """
        old_signer = self.keys.signer("root")
        root_md = self.root()
        root = root_md.signed
        if old_signer.public_key.keyid not in root.roles["root"].keyids:
            raise RepositoryError("the loaded root key is not the current root key")
        for keyid in list(root.roles["root"].keyids):
            root.revoke_key(keyid, "root")
        root.add_key(new_root_signer.public_key, "root")
        root.version += 1
        root.expires = self._expiry(expiry)
        root_md.signatures.clear()
        root_md.sign(new_root_signer, append=True)
        root_md.sign(old_signer, append=True)
        data = root_md.to_bytes(_SERIALIZER)
        _write_atomic(self.metadata_dir / f"{root.version}.root.json", data)
        _write_atomic(self.metadata_dir / "root.json", data)
        self.keys = replace(self.keys, root=new_root_signer)
        logger.warning("rotated the TUF root key: root is now version %s", root.version)
        return root.version

    def export_root_bytes(self) -> bytes:
        return (self.metadata_dir / "root.json").read_bytes()

    def export_root(self, path: Path) -> None:
        """Write the newest root.json, the trust anchor to ship inside the app."""
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, self.export_root_bytes())
