"""releases.tuf_repo: the repository devices trust, checked with tuf.ngclient itself."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.exceptions import UnsignedMetadataError
from tuf.ngclient.updater import Updater

from client.tests.conftest import FakePortal
from releases.tuf_repo import KEY_ENV, RepoKeys, RepositoryError, UpdateRepository


def updater(tmp_path: Path, portal: FakePortal, root: bytes, name: str = "client") -> Updater:
    return Updater(
        metadata_dir=str(tmp_path / name),
        metadata_base_url=f"{portal.url}/updates/metadata/",
        target_dir=str(tmp_path / f"{name}-dl"),
        target_base_url=f"{portal.url}/updates/targets/",
        bootstrap=root,
    )


def test_init_writes_a_consistent_snapshot_repository(repo: UpdateRepository) -> None:
    names = sorted(p.name for p in repo.metadata_dir.iterdir())
    assert names == [
        "1.root.json",
        "1.snapshot.json",
        "1.targets.json",
        "root.json",
        "timestamp.json",
    ]
    root = repo.root().signed
    assert root.consistent_snapshot is True
    assert {role: r.threshold for role, r in root.roles.items()} == {
        "root": 1,
        "targets": 1,
        "snapshot": 1,
        "timestamp": 1,
    }
    assert {k.keytype for k in root.keys.values()} == {"ed25519"}
    assert repo.timestamp().signed.expires <= datetime.now(UTC) + timedelta(days=1)
    with pytest.raises(RepositoryError, match="already"):
        repo.init()


def test_targets_are_content_addressed_and_carry_custom_data(
    tmp_path: Path, repo: UpdateRepository, portal: FakePortal
) -> None:
    published = repo.add_targets([("full-1.bin", b"bundle one", {"release": 1, "base": None})])
    assert (published.targets_version, published.snapshot_version) == (2, 2)
    path = published.files["full-1.bin"]
    assert path.name.endswith(".full-1.bin")
    assert path.parent == repo.targets_dir
    assert (repo.metadata_dir / "2.targets.json").exists()

    client = updater(tmp_path, portal, repo.export_root_bytes())
    client.refresh()
    info = client.get_targetinfo("full-1.bin")
    assert info is not None
    assert info.custom == {"release": 1, "base": None}
    assert Path(client.download_target(info)).read_bytes() == b"bundle one"


def test_remove_delists_but_keeps_files_for_devices_mid_download(repo: UpdateRepository) -> None:
    first = repo.add_targets([("delta-1-2.bin", b"d", {"release": 2})])
    second = repo.add_targets([("full-3.bin", b"f", {"release": 3})], remove=["delta-1-2.bin"])
    assert set(repo.target_files()) == {"full-3.bin"}
    assert first.files["delta-1-2.bin"].exists()
    assert second.timestamp_version == first.timestamp_version + 1


def test_a_failed_publish_leaves_the_visible_release_unchanged(repo: UpdateRepository) -> None:
    repo.add_targets([("full-1.bin", b"one", {"release": 1})])
    timestamp = (repo.metadata_dir / "timestamp.json").read_bytes()
    other = CryptoSigner.generate_ed25519()
    broken = UpdateRepository(
        repo.root_dir,
        RepoKeys(targets=repo.keys.targets, snapshot=other, timestamp=repo.keys.timestamp),
    )
    with pytest.raises(RepositoryError, match="snapshot key is not the one root trusts"):
        broken.add_targets([("full-2.bin", b"two", {"release": 2})])
    assert (repo.metadata_dir / "timestamp.json").read_bytes() == timestamp
    assert set(repo.target_files()) == {"full-1.bin"}


def test_refresh_timestamp_re_signs_only_the_timestamp(repo: UpdateRepository) -> None:
    before = repo.timestamp().signed.version
    snapshot = repo.snapshot().signed.version
    assert repo.refresh_timestamp() == before + 1
    assert repo.snapshot().signed.version == snapshot


def test_refresh_timestamp_renews_targets_and_snapshot_close_to_expiry(
    repo: UpdateRepository,
) -> None:
    targets = repo.targets().signed.version
    later = UpdateRepository(
        repo.root_dir, repo.keys, clock=lambda: datetime.now(UTC) + timedelta(days=80)
    )
    later.refresh_timestamp()
    assert repo.targets().signed.version == targets + 1
    assert repo.snapshot().signed.expires > datetime.now(UTC) + timedelta(days=150)


def test_root_rotation_is_followed_by_clients_holding_the_old_root(
    tmp_path: Path, repo: UpdateRepository, portal: FakePortal
) -> None:
    shipped = repo.export_root_bytes()
    new_key = CryptoSigner.generate_ed25519()
    assert repo.rotate_root(new_key) == 2
    rotated = json.loads((repo.metadata_dir / "2.root.json").read_bytes())
    assert len(rotated["signatures"]) == 2  # old and new root keys
    repo.add_targets([("full-1.bin", b"one", {"release": 1})])

    client = updater(tmp_path, portal, shipped)
    client.refresh()
    assert client.get_targetinfo("full-1.bin") is not None
    assert (tmp_path / "client" / "root_history" / "2.root.json").exists()


def test_a_root_signed_by_the_new_key_alone_is_rejected(
    tmp_path: Path, repo: UpdateRepository, portal: FakePortal
) -> None:
    shipped = repo.export_root_bytes()
    repo.rotate_root(CryptoSigner.generate_ed25519())
    data = json.loads((repo.metadata_dir / "2.root.json").read_bytes())
    data["signatures"] = data["signatures"][:1]  # drop the old key's signature
    portal.overrides["metadata/2.root.json"] = json.dumps(data).encode()
    with pytest.raises(UnsignedMetadataError):
        updater(tmp_path, portal, shipped).refresh()


def test_dev_keys_are_private_and_announced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = RepoKeys.generate_dev(tmp_path / "k")
    assert "DEVELOPMENT TUF KEYS" in capsys.readouterr().err
    for role in ("root", "targets", "snapshot", "timestamp"):
        mode = stat.S_IMODE(os.stat(tmp_path / "k" / f"{role}.pem").st_mode)
        assert mode == 0o600
    assert (tmp_path / "k" / "WARNING-DEVELOPMENT-KEYS.txt").exists()
    again = RepoKeys.generate_dev(tmp_path / "k")  # reused, not regenerated
    assert again.targets.public_key.keyid == keys.targets.public_key.keyid


def test_keys_load_from_environment_as_pem_text_or_path(tmp_path: Path) -> None:
    RepoKeys.generate_dev(tmp_path / "k")
    env = {
        KEY_ENV["targets"]: (tmp_path / "k" / "targets.pem").read_text(),
        KEY_ENV["snapshot"]: str(tmp_path / "k" / "snapshot.pem"),
        KEY_ENV["timestamp"]: str(tmp_path / "k" / "timestamp.pem"),
    }
    keys = RepoKeys.load(environ=env)
    assert keys.root is None  # production keeps root offline
    dev = RepoKeys.load(tmp_path / "k", environ={})
    assert keys.targets.public_key.keyid == dev.targets.public_key.keyid
    with pytest.raises(RepositoryError, match="TUF_TARGETS_KEY"):
        RepoKeys.load(tmp_path / "empty", environ={})
    with pytest.raises(RepositoryError, match="root key is needed"):
        UpdateRepository(tmp_path / "r", keys).init()


def test_export_root_writes_the_newest_root(tmp_path: Path, repo: UpdateRepository) -> None:
    repo.rotate_root(CryptoSigner.generate_ed25519())
    repo.export_root(tmp_path / "app" / "root.json")
    exported = json.loads((tmp_path / "app" / "root.json").read_bytes())
    assert exported["signed"]["version"] == 2


def test_repository_and_client_import_without_django() -> None:
    import subprocess
    import sys

    code = (
        "import sys, releases.tuf_repo, client.sync, client.scan, engine.codec; "
        "sys.exit('django' in sys.modules)"
    )
    repo_root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=repo_root, check=False).returncode == 0


def test_each_timestamp_is_dated_a_whole_second_after_the_last(repo: UpdateRepository) -> None:
    # static servers (nginx) make ETags from the whole-second mtime and the size; a re-signed
    # timestamp.json has the same size, so two signings in one second must still differ
    path = repo.metadata_dir / "timestamp.json"
    seconds = []
    for _ in range(3):
        repo.refresh_timestamp()
        seconds.append(int(path.stat().st_mtime))
    assert seconds[0] < seconds[1] < seconds[2]
