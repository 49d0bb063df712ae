"""The retro-hunt REST API: start, read, list, cancel; roles; JSON errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from scans.models import HuntStatus, RetroHunt
from scans.retrohunts import retrohunt_chunk_run
from scans.tests.conftest import SMALL_APK
from scans.tests.factories import stored_sample
from threats.tests.factories import make_family

pytestmark = pytest.mark.django_db

RULE = {"kind": "indicator", "body": "evil.example"}


@pytest.fixture
def sample(corpus: Path, researcher):
    return stored_sample(corpus / "apks" / SMALL_APK, label="clean", user=researcher)[0]


def _run_all(hunt_id: int) -> None:
    for chunk in RetroHunt.objects.get(pk=hunt_id).chunks.all():
        retrohunt_chunk_run(chunk_id=chunk.pk)


def test_start_read_and_list_a_hunt_of_signatures(api, researcher, auditor, sample) -> None:
    from threats.services import signature_create

    sig = signature_create(
        actor=researcher,
        kind="hash",
        body={"algorithm": "sha256", "target": "apk", "value": sample.sha256},
        family=make_family(),
    )
    response = api(researcher).post("/api/v1/retrohunts/", {"signatures": [sig.pk]}, format="json")
    assert response.status_code == 201, response.json()
    hunt_id = response.json()["id"]
    queued = api(auditor).get(f"/api/v1/retrohunts/{hunt_id}/").json()
    assert (queued["status"], queued["progress"], queued["total"]) == ("queued", 0, 1)
    assert queued["eta_seconds"] is None

    _run_all(hunt_id)

    body = api(auditor).get(f"/api/v1/retrohunts/{hunt_id}/").json()
    assert (body["status"], body["progress"], body["scanned"], body["eta_seconds"]) == (
        "finished",
        100,
        1,
        0,
    )
    assert body["rules"] == [
        {"signature_id": sig.pk, "revision": 1, "name": sig.name, "kind": "hash"}
    ]
    [match] = body["matches"]
    assert match["sample"] == sample.sha256
    assert match["label"] == "clean"
    assert match["package"] == "android.appsecurity.cts.tinyapp"
    assert match["signature"] == {"id": sig.pk, "name": sig.name, "url": f"/signatures/{sig.pk}/"}
    listed = api(auditor).get("/api/v1/retrohunts/").json()
    assert [h["id"] for h in listed["results"]] == [hunt_id]


def test_an_unsaved_rule_and_clear_errors(api, reviewer, sample) -> None:
    ok = api(reviewer).post("/api/v1/retrohunts/", {"rule": RULE}, format="json")
    assert ok.status_code == 201
    bad = api(reviewer).post(
        "/api/v1/retrohunts/", {"rule": {"kind": "yara", "body": "rule x {"}}, format="json"
    )
    assert bad.status_code == 400
    assert "not valid" in bad.json()["message"]
    assert bad.json()["extra"]["errors"][0]["line"] is not None
    both = api(reviewer).post(
        "/api/v1/retrohunts/", {"rule": RULE, "signatures": [1]}, format="json"
    )
    assert both.status_code == 400
    assert "either" in both.json()["message"]
    missing = api(reviewer).post("/api/v1/retrohunts/", {"signatures": [424242]}, format="json")
    assert missing.status_code == 400
    assert missing.json()["extra"]["missing"] == [424242]
    assert api(reviewer).get("/api/v1/retrohunts/999999/").status_code == 404


def test_an_unsaved_rule_with_a_nul_character_is_400_not_500(api, reviewer) -> None:
    """A valid YARA rule with U+0000 in a string was stored in the hunt's records: 500 on
    PostgreSQL (jsonb holds no NUL). Refused like NUL in any text field."""
    rule = {"kind": "yara", "body": 'rule nul { strings: $a = "\u0000" condition: $a }'}
    client = api(reviewer)
    client.raise_request_exception = False

    response = client.post("/api/v1/retrohunts/", {"rule": rule}, format="json")

    assert response.status_code == 400
    assert response.json()["extra"]["fields"] == {
        "rule": {"body": ["Null characters are not allowed."]}
    }
    assert not RetroHunt.objects.exists()


def test_roles(api, researcher, reviewer, auditor, admin_user, sample, make_user) -> None:
    nobody = make_user(username="norole")
    for user, code in ((researcher, 201), (reviewer, 201), (admin_user, 201), (auditor, 403)):
        assert api(user).post("/api/v1/retrohunts/", {"rule": RULE}, format="json").status_code == (
            code
        ), user.username
    assert api(nobody).get("/api/v1/retrohunts/").status_code == 403
    assert api(None).get("/api/v1/retrohunts/").status_code in (401, 403)
    assert api(auditor).get("/api/v1/retrohunts/").status_code == 200


def test_cancel_over_the_api(api, researcher, researcher2, reviewer, auditor, sample) -> None:
    hunt_id = (
        api(researcher).post("/api/v1/retrohunts/", {"rule": RULE}, format="json").json()["id"]
    )
    assert api(auditor).post(f"/api/v1/retrohunts/{hunt_id}/cancel/").status_code == 403
    other = api(researcher2).post(f"/api/v1/retrohunts/{hunt_id}/cancel/")
    assert other.status_code == 403
    assert "started" in other.json()["message"]
    done = api(researcher).post(f"/api/v1/retrohunts/{hunt_id}/cancel/")
    assert done.status_code == 200
    assert done.json()["status"] == "cancelled"
    again = api(reviewer).post(f"/api/v1/retrohunts/{hunt_id}/cancel/")
    assert again.status_code == 409
    _run_all(hunt_id)
    assert RetroHunt.objects.get(pk=hunt_id).status == HuntStatus.CANCELLED


def test_the_schema_documents_the_hunt_endpoints(api, auditor) -> None:
    schema = api(auditor).get("/api/schema/", {"format": "json"}).json()
    for path in ("/api/v1/retrohunts/", "/api/v1/retrohunts/{hunt_id}/"):
        assert path in schema["paths"]
    assert "/api/v1/retrohunts/{hunt_id}/cancel/" in schema["paths"]
