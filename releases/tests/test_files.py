from __future__ import annotations

import pytest
from django.test import Client

from releases.files import IMMUTABLE, SHORT
from releases.services import release_build, release_publish


@pytest.fixture
def published(update_repo, signatures, reviewer):
    signatures.deploy()
    release = release_publish(by=reviewer, enqueue=False)
    return release_build(number=release.number)


@pytest.mark.django_db
def test_timestamp_is_short_lived_and_versioned_files_immutable(published, update_repo) -> None:
    client = Client()
    ts = client.get("/updates/metadata/timestamp.json")
    assert ts.status_code == 200
    assert ts["Cache-Control"] == SHORT
    assert ts.getvalue() == (update_repo.metadata_dir / "timestamp.json").read_bytes()
    root = client.get("/updates/metadata/1.root.json")
    assert root["Cache-Control"] == IMMUTABLE
    target = update_repo.target_files()["full-1.bin"]
    name = f"{target.hashes['sha256']}.full-1.bin"
    full = client.get(f"/updates/targets/{name}")
    assert full.status_code == 200
    assert full["Cache-Control"] == IMMUTABLE
    assert full["ETag"] == f'"{target.hashes["sha256"]}"'
    assert (
        client.get(f"/updates/targets/{name}", HTTP_IF_NONE_MATCH=full["ETag"]).status_code == 304
    )


@pytest.mark.django_db
def test_ranges_are_served_and_bad_ranges_refused(published, update_repo) -> None:
    client = Client()
    target = update_repo.target_files()["full-1.bin"]
    name = f"{target.hashes['sha256']}.full-1.bin"
    data = update_repo.target_path(target).read_bytes()
    part = client.get(f"/updates/targets/{name}", HTTP_RANGE="bytes=10-19")
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert part.getvalue() == data[10:20]
    tail = client.get(f"/updates/targets/{name}", HTTP_RANGE="bytes=-5")
    assert tail.getvalue() == data[-5:]
    bad = client.get(f"/updates/targets/{name}", HTTP_RANGE=f"bytes={len(data) + 5}-")
    assert bad.status_code == 416
    assert bad["Content-Range"] == f"bytes */{len(data)}"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/updates/metadata/..%2F..%2Ftuf-keys%2Froot.pem",
        "/updates/metadata/../tuf-keys/root.pem",
        "/updates/keys/root.pem",
        "/updates/metadata/.publish.lock",
        "/updates/metadata/999.targets.json",
        "/updates/targets/nothing.bin",
    ],
)
def test_traversal_and_missing_files_are_json_404(published, path: str) -> None:
    response = Client().get(path)
    assert response.status_code == 404
    assert response.json()["message"] == "Not found."


@pytest.mark.django_db
def test_only_get_and_head(published) -> None:
    assert Client().post("/updates/metadata/timestamp.json").status_code == 405
