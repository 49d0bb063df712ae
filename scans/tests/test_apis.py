"""The REST API: upload (201/200/413), sample and scan reads, re-scan, roles."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from scans.models import Sample, ScanJob, ScanStatus
from scans.rulesets import EMPTY
from scans.services import scan_run

pytestmark = pytest.mark.django_db

SAMPLES = "/api/v1/samples/"
SCANS = "/api/v1/scans/"


def _upload(client, path: Path, **extra):
    data = {"file": SimpleUploadedFile(path.name, path.read_bytes()), **extra}
    return client.post(SAMPLES, data, format="multipart")


def test_a_new_file_is_201_and_the_same_file_again_is_200_with_a_new_scan(
    api, researcher, small_apk: Path
) -> None:
    client = api(researcher)
    first = _upload(client, small_apk, label="clean")
    assert first.status_code == 201, first.json()
    body = first.json()
    assert body["created"] is True
    assert body["scan"]["status"] == "queued"
    assert len(body["sha256"]) == 64
    again = _upload(client, small_apk)
    assert again.status_code == 200
    assert again.json()["sha256"] == body["sha256"]
    assert again.json()["scan"]["id"] != body["scan"]["id"]
    assert Sample.objects.count() == 1
    assert ScanJob.objects.count() == 2
    assert Sample.objects.get().label == "clean"


def test_a_file_over_the_limit_is_413_with_a_clear_message(api, researcher, settings) -> None:
    settings.MAX_UPLOAD_MB = 1
    big = SimpleUploadedFile("big.apk", b"\0" * (1024 * 1024 + 1))
    response = api(researcher).post(SAMPLES, {"file": big}, format="multipart")
    assert response.status_code == 413
    assert "1 MB" in response.json()["message"]
    assert not Sample.objects.exists()


def test_a_request_body_over_the_limit_is_refused_before_it_is_read(
    api, researcher, settings
) -> None:
    settings.MAX_UPLOAD_MB = 1
    big = SimpleUploadedFile("big.apk", b"\0" * (3 * 1024 * 1024))
    response = api(researcher).post(SAMPLES, {"file": big}, format="multipart")
    assert response.status_code == 413
    assert response.json()["extra"] == {"max_upload_mb": 1}


def test_an_empty_file_is_refused_with_a_reason(api, researcher) -> None:
    response = api(researcher).post(
        SAMPLES, {"file": SimpleUploadedFile("e.apk", b"")}, format="multipart"
    )
    assert response.status_code == 400
    assert response.json()["message"]


def test_an_unknown_family_is_refused(api, researcher, small_apk: Path) -> None:
    response = _upload(api(researcher), small_apk, family="NoSuchFamily")
    assert response.status_code == 400
    assert "family" in response.json()["message"]


def test_sample_and_scan_reads_show_features_verdict_and_matches(
    api, researcher, small_apk: Path
) -> None:
    client = api(researcher)
    body = _upload(client, small_apk).json()
    scan_run(scan_id=body["scan"]["id"], ruleset_provider=lambda: EMPTY)
    sample = client.get(f"{SAMPLES}{body['sha256']}/").json()
    assert sample["features"]["manifest"]["package"] == "android.appsecurity.cts.tinyapp"
    assert [s["status"] for s in sample["scans"]] == ["succeeded"]
    scan = client.get(f"{SCANS}{body['scan']['id']}/").json()
    assert scan["status"] == "succeeded"
    assert scan["verdict"] == "clean"
    assert scan["matches"] == []
    assert scan["features"]["sha256"] == body["sha256"]
    listed = client.get(SAMPLES, {"q": body["sha256"]}).json()
    assert [s["sha256"] for s in listed["results"]] == [body["sha256"]]
    assert client.get(SAMPLES, {"verdict": "malicious"}).json()["count"] == 0
    assert client.get(SAMPLES, {"package": "tinyapp"}).json()["count"] == 1


def test_rescan_queues_a_new_scan_and_unknown_things_are_404(
    api, researcher, small_apk: Path
) -> None:
    client = api(researcher)
    sha = _upload(client, small_apk).json()["sha256"]
    response = client.post(SCANS, {"sample": sha}, format="json")
    assert response.status_code == 201
    assert ScanJob.objects.get(pk=response.json()["id"]).status == ScanStatus.QUEUED
    assert client.post(SCANS, {"sample": "0" * 64}, format="json").status_code == 404
    assert client.get(f"{SAMPLES}{'0' * 64}/").status_code == 404
    assert client.get(f"{SCANS}999999/").json()["message"] == "No scan 999999."
    bad = client.post(SCANS, {"sample": "nope"}, format="json")
    assert bad.status_code == 400
    assert bad.json()["message"].startswith("sample")


@pytest.mark.parametrize("sha256", ["%00", "a%00b", "not-a-hash", "0" * 63])
def test_a_sample_path_that_is_no_sha256_is_404_not_500(api, client, researcher, sha256) -> None:
    """A NUL in the path went to the database: 500 on PostgreSQL (found by the schema
    contract work). Anything but 64 hex digits names no sample, on the API and the page."""
    api_client = api(researcher)
    api_client.raise_request_exception = False
    client.force_login(researcher)
    client.raise_request_exception = False

    answer = api_client.get(f"{SAMPLES}{sha256}/")
    page = client.get(f"/samples/{sha256}/")

    assert answer.status_code == 404
    assert answer.json()["message"].startswith("No sample with SHA-256")
    assert page.status_code == 404


@pytest.mark.parametrize(
    ("role", "read", "write"),
    [
        ("researcher", 200, 201),
        ("reviewer", 200, 201),
        ("admin", 200, 201),
        ("auditor", 200, 403),
    ],
)
def test_roles(api, role_users, small_apk: Path, role: str, read: int, write: int) -> None:
    client = api(role_users[role])
    assert client.get(SAMPLES).status_code == read
    assert client.get(SCANS).status_code == read
    assert _upload(client, small_apk).status_code == write


def test_no_role_and_anonymous_are_refused(api, make_user, small_apk: Path) -> None:
    nobody = make_user()
    assert api(nobody).get(SAMPLES).status_code == 403
    assert api(None).get(SAMPLES).status_code in (401, 403)
    assert _upload(api(None), small_apk).status_code in (401, 403)


def test_the_schema_documents_the_scans_endpoints(api, researcher) -> None:
    schema = api(researcher).get("/api/schema/", {"format": "json"}).json()
    assert {"/api/v1/samples/", "/api/v1/scans/{scan_id}/", "/api/v1/samples/{sha256}/"} <= set(
        schema["paths"]
    )
