from __future__ import annotations

import pytest

from releases.services import release_build, release_publish


@pytest.fixture
def two_releases(update_repo, signatures, reviewer):
    kept = signatures.deploy()
    gone = signatures.deploy()
    release_build(number=release_publish(by=reviewer, enqueue=False).number)
    signatures.revise(kept)
    signatures.set_status(gone, "disabled")
    added = signatures.deploy()
    release_build(number=release_publish(by=reviewer, enqueue=False).number)
    return kept, gone, added


@pytest.mark.django_db
def test_release_detail_shows_the_diff_with_approvers(two_releases, api, auditor, reviewer) -> None:
    kept, gone, added = two_releases
    body = api(auditor).get("/api/v1/releases/2/").json()
    diff = body["diff"]
    assert diff["base"] == 1
    assert [e["signature_id"] for e in diff["added"]] == [added.pk]
    assert [e["signature_id"] for e in diff["removed"]] == [gone.pk]
    [change] = diff["changed"]
    assert (change["before"]["revision"], change["after"]["revision"]) == (1, 2)
    assert change["after"]["approved_by"] == reviewer.username
    assert change["after"]["name"].endswith(f"-{kept.pk}-2")
    assert {f["target"] for f in body["files"]} == {"full-2.bin", "delta-1-2.bin"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "read", "publish", "steer"),
    [
        ("researcher", 200, 403, 403),
        ("reviewer", 200, 202, 200),
        ("admin", 200, 202, 200),
        ("auditor", 200, 403, 403),
    ],
)
def test_roles(update_repo, signatures, role_users, api, role, read, publish, steer) -> None:
    client = api(role_users[role])
    signatures.deploy()
    release_build(number=release_publish(by=role_users["reviewer"], enqueue=False).number)
    assert client.get("/api/v1/releases/").status_code == read
    assert client.get("/api/v1/releases/1/").status_code == read
    assert client.post("/api/v1/releases/", {"notes": "n"}, format="json").status_code == publish
    rollout = client.post("/api/v1/releases/1/rollout/", {"percent": 50}, format="json")
    assert rollout.status_code == steer
    halt = client.post("/api/v1/releases/1/halt/", {"reason": "noisy"}, format="json")
    assert halt.status_code == steer


@pytest.mark.django_db
def test_anonymous_and_bad_input(update_repo, api, reviewer) -> None:
    assert api().get("/api/v1/releases/").status_code in (401, 403)
    assert api(reviewer).get("/api/v1/releases/99/").json()["message"] == "There is no release 99."
    bad = api(reviewer).post("/api/v1/releases/1/rollout/", {"percent": 0}, format="json")
    assert bad.status_code == 400


@pytest.mark.django_db
def test_publish_release_and_tuf_keys_commands(update_repo, signatures, reviewer, tmp_path) -> None:
    from io import StringIO

    from django.core.management import call_command

    signatures.deploy()
    out = StringIO()
    call_command("publish_release", "--by", reviewer.username, stdout=out)
    assert "release 1 published" in out.getvalue()
    assert "full-1.bin:" in out.getvalue()
    call_command("tuf_keys", "export-root", str(tmp_path / "root.json"), stdout=StringIO())
    assert (tmp_path / "root.json").read_bytes() == update_repo.export_root_bytes()
    call_command("tuf_keys", "rotate-root", stdout=StringIO())
    assert b'"version":2' in (update_repo.metadata_dir / "root.json").read_bytes()


@pytest.mark.django_db
def test_a_publish_while_one_builds_is_409_and_a_burst_is_429(
    update_repo, signatures, reviewer, api, settings
) -> None:
    # given a release queued and not yet built
    settings.RELEASE_PUBLISH_RATE = "3/min"
    signatures.deploy()
    client = api(reviewer)
    first = client.post("/api/v1/releases/", {"notes": "a"}, format="json")
    assert first.status_code == 202
    # when the reviewer publishes again, then the answer names the release being built
    again = client.post("/api/v1/releases/", {"notes": "b"}, format="json")
    assert again.status_code == 409
    assert again.json()["extra"]["building"] == first.json()["number"]
    # when the script keeps going past the rate, then it is told to wait
    client.post("/api/v1/releases/", {}, format="json")
    burst = client.post("/api/v1/releases/", {}, format="json")
    assert burst.status_code == 429
    assert 1 <= int(burst["Retry-After"]) <= 60
    assert "too often" in burst.json()["message"]
