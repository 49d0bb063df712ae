"""Reports as complete as MobSF's: the JSON report of a scan, the sample as a ZIP with the
password ``infected`` (audited, for researchers, reviewers and admins only), the scan page
with everything in one place, a list that updates while scans run, and failed scans that
say what a file is when it is no app."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest
import pyzipper
from django.core.files.base import ContentFile
from django.core.files.storage import InMemoryStorage, default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils._os import safe_join
from rest_framework.test import APIClient

from portal.models import AuditEntry
from releases.services import device_register
from scans.models import Sample, ScanJob
from scans.rulesets import EMPTY, ExplicitRuleset
from scans.services import scan_create, scan_run
from scans.storage import sample_storage_name
from scans.tests.conftest import record

pytestmark = pytest.mark.django_db

SAMPLES = "/api/v1/samples/"
SCANS = "/api/v1/scans/"


def _upload(client: APIClient, name: str, data: bytes) -> dict[str, Any]:
    response = client.post(SAMPLES, {"file": SimpleUploadedFile(name, data)}, format="multipart")
    assert response.status_code in (200, 201), response.json()
    return dict(response.json())


def _no_release() -> Any:
    raise AssertionError("the ruleset was asked for before the file was analysed")


def _scanned(client: APIClient, path: Path, *, release: int = 3) -> tuple[dict[str, Any], ScanJob]:
    body = _upload(client, path.name, path.read_bytes())
    sha = body["sha256"]
    source = ExplicitRuleset.of(
        [record(9, "hash", {"value": sha}, name="Andr.SmsFraud.Report-9-1")], release=release
    )
    scan = scan_run(scan_id=body["scan"]["id"], ruleset_provider=lambda: source)
    assert scan is not None
    scan.refresh_from_db()
    return body, scan


def _page(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- the JSON report ---------------------------------------------------------------------------
def test_the_report_holds_the_sample_features_matches_ruleset_timings_and_verdict(
    api, researcher, small_apk: Path
) -> None:
    # given a scanned sample that a hash signature of release 3 hits
    client = api(researcher)
    body, scan = _scanned(client, small_apk)
    data = small_apk.read_bytes()
    # when its report is downloaded
    response = client.get(f"{SCANS}{scan.pk}/report/")
    # then it is a JSON attachment that says what the scan page says
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"] == (
        f'attachment; filename="scan-{scan.pk}-{body["sha256"][:12]}.json"'
    )
    report = response.json()
    assert report["sample"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert report["sample"]["sha1"] == hashlib.sha1(data, usedforsecurity=False).hexdigest()
    assert report["sample"]["md5"] == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert report["sample"]["size"] == len(data)
    assert report["sample"]["original_name"] == small_apk.name
    assert report["verdict"] == "malicious" == scan.verdict
    assert report["score"] == scan.score
    assert report["scan"] == {
        "id": scan.pk,
        "url": f"/scans/{scan.pk}/",
        "status": "succeeded",
        "error": "",
        "requested_by": researcher.username,
    }
    assert report["engine_version"] == scan.engine_version == report["portal_engine_version"]
    [match] = report["matches"]
    assert match["name"] == "Andr.SmsFraud.Report-9-1"
    assert match["scoring"] is True
    assert any(body["sha256"] in e for e in match["evidence"])
    assert report["ruleset"]["release"] == 3
    timings = report["timings"]
    assert timings["analyse_ms"] == scan.analyse_ms is not None
    assert timings["match_ms"] == scan.match_ms is not None
    assert timings["attempts"] == 1
    assert timings["worker"] == scan.worker
    for moment in ("queued_at", "started_at", "finished_at"):
        assert timings[moment]
    assert report["features"]["manifest"]["package"] == "android.appsecurity.cts.tinyapp"
    summary = report["features_summary"]
    assert summary["package"] == "android.appsecurity.cts.tinyapp"
    assert summary["certificates"] == [c["sha256"] for c in report["features"]["certificates"]]


def test_a_failed_scan_has_a_report_too(api, researcher) -> None:
    client = api(researcher)
    body = _upload(client, "notes.txt", b"just some notes\n" * 10)
    scan_run(scan_id=body["scan"]["id"], ruleset_provider=_no_release)
    report = client.get(f"{SCANS}{body['scan']['id']}/report/").json()
    assert report["scan"]["status"] == "failed"
    assert "a text file" in report["scan"]["error"]
    assert report["verdict"] is None
    assert report["matches"] == []
    assert report["features"] is None


@pytest.mark.parametrize("scan_id", ["999999", str(2**63 - 1), str(2**63), str(2**64 + 5)])
def test_the_report_of_an_unknown_scan_is_404_json(api, researcher, scan_id: str) -> None:
    client = api(researcher)
    client.raise_request_exception = False
    response = client.get(f"{SCANS}{scan_id}/report/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["message"]


def test_the_report_needs_a_portal_role(api, make_user, auditor, small_apk: Path) -> None:
    uploader = api(make_user("researcher"))
    sample_scan = _upload(uploader, small_apk.name, small_apk.read_bytes())
    url = f"{SCANS}{sample_scan['scan']['id']}/report/"
    assert api(auditor).get(url).status_code == 200
    assert api(make_user()).get(url).status_code == 403
    assert api(None).get(url).status_code in (401, 403)


# --- the sample as a ZIP with the password "infected" -------------------------------------------
def _sample(api, user, path: Path) -> str:
    return str(_upload(api(user), path.name, path.read_bytes())["sha256"])


@pytest.mark.parametrize("role", ["researcher", "reviewer", "admin"])
def test_the_download_is_the_sample_in_a_zip_with_password_infected_and_is_audited(
    api, role_users, small_apk: Path, role: str
) -> None:
    user = role_users[role]
    sha = _sample(api, role_users["researcher"], small_apk)
    before = AuditEntry.objects.filter(action="sample.download").count()
    response = api(user).get(f"{SAMPLES}{sha}/download/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == f'attachment; filename="{sha}.zip"'
    blob = b"".join(response.streaming_content)
    # the archive opens with the password and holds the very bytes of the sample
    with pyzipper.AESZipFile(io.BytesIO(blob)) as archive:
        assert archive.namelist() == [f"{sha}.apk"]
        archive.setpassword(b"infected")
        assert archive.read(f"{sha}.apk") == small_apk.read_bytes()
    # and not without it: no plain copy of the app is in the file
    with pyzipper.AESZipFile(io.BytesIO(blob)) as archive:
        archive.setpassword(b"wrong")
        with pytest.raises(RuntimeError):
            archive.read(f"{sha}.apk")
    with zipfile.ZipFile(io.BytesIO(blob)) as plain, pytest.raises(RuntimeError):
        plain.read(f"{sha}.apk")
    # and the download is in the audit log, by whom and of what
    entries = AuditEntry.objects.filter(action="sample.download")
    assert entries.count() == before + 1
    entry = entries.first()
    assert entry is not None
    assert entry.actor == user
    assert entry.object_type == "scans.sample"
    assert entry.changes["sha256"]["after"] == sha
    # a HEAD would build and audit a download nobody receives: it is refused, unaudited
    head = api(user).head(f"{SAMPLES}{sha}/download/")
    assert head.status_code == 405
    assert AuditEntry.objects.filter(action="sample.download").count() == before + 1


def test_auditors_devices_and_strangers_may_not_download(
    api, role_users, make_user, settings, small_apk: Path
) -> None:
    sha = _sample(api, role_users["researcher"], small_apk)
    url = f"{SAMPLES}{sha}/download/"
    settings.DEVICE_ENROLLMENT_KEY = "reports-enrollment-key"
    device = APIClient()
    device.credentials(
        HTTP_AUTHORIZATION=f"Token {device_register(enrollment_key='reports-enrollment-key').token}"
    )
    for client in (api(role_users["auditor"]), device, api(make_user())):
        response = client.get(url, HTTP_ACCEPT="application/zip")
        assert response.status_code == 403, response.content[:200]
        assert response["Content-Type"].startswith("application/json")
        assert response.json()["message"]
    assert api(None).get(url).status_code in (401, 403)
    assert not AuditEntry.objects.filter(action="sample.download").exists()


def test_download_of_an_unknown_or_missing_sample_is_404_json(
    api, researcher, small_apk: Path
) -> None:
    client = api(researcher)
    assert client.get(f"{SAMPLES}{'0' * 64}/download/").status_code == 404
    assert client.get(f"{SAMPLES}nope/download/").json()["message"]
    sha = _sample(api, researcher, small_apk)
    default_storage.delete(Sample.objects.get(sha256=sha).file.name)
    response = client.get(f"{SAMPLES}{sha}/download/")
    assert response.status_code == 404
    assert "missing from storage" in response.json()["message"]


# --- what a file that is no app is ----------------------------------------------------------
def _zip_without_manifest() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "hello")
        z.writestr("classes.dex", b"dex\n035\0" + b"\0" * 100)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("notes.apk", b"This is not an app, only words.\n" * 20, "a text file, not a ZIP archive"),
        ("lib.zip", _zip_without_manifest(), "no AndroidManifest.xml"),
        ("classes.dex", b"dex\n035\0" + bytes(range(256)) * 4, "a DEX file, not an APK"),
        ("pic.png", b"\x89PNG\r\n\x1a\n" + bytes(200), "a PNG image, not a ZIP archive"),
    ],
)
def test_a_file_that_is_no_app_fails_saying_what_it_is_before_any_ruleset(
    api, researcher, name: str, data: bytes, words: str
) -> None:
    client = api(researcher)
    body = _upload(client, name, data)
    # the provider fails the test if asked: the file is looked at first
    scan_run(scan_id=body["scan"]["id"], ruleset_provider=_no_release)
    scan = ScanJob.objects.get(pk=body["scan"]["id"])
    assert scan.status == "failed"
    assert words in scan.error
    assert "release" not in scan.error.lower()
    # the scan page says so, and never that the ruleset is the reason
    html = _page(researcher).get(f"/scans/{scan.pk}/").content.decode()
    assert words.replace("'", "&#x27;") in html
    assert "no published release" not in html


def test_an_empty_file_is_refused_at_upload_and_an_empty_stored_file_fails_as_empty(
    api, researcher
) -> None:
    # an empty upload never becomes a sample: the answer says why
    response = api(researcher).post(
        SAMPLES, {"file": SimpleUploadedFile("e.apk", b"")}, format="multipart"
    )
    assert response.status_code == 400
    assert "empty" in response.json()["message"]
    # a stored file that is empty (storage emptied by hand) fails its scan saying so
    sha = hashlib.sha256(b"").hexdigest()
    name = default_storage.save(sample_storage_name(sha), ContentFile(b""))
    sample = Sample.objects.create(
        sha256=sha, sha1="0" * 40, md5="0" * 32, size=0, file=name, last_seen="2026-01-01T00:00Z"
    )
    scan = scan_create(sample=sample, user=researcher)
    scan_run(scan_id=scan.pk, ruleset_provider=_no_release)
    scan.refresh_from_db()
    assert scan.status == "failed"
    assert scan.error == "not an app: an empty file (0 bytes)"


# --- pages --------------------------------------------------------------------------------------
def test_the_scan_page_shows_features_matches_ruleset_timings_and_links(
    api, researcher, auditor, small_apk: Path
) -> None:
    _, scan = _scanned(api(researcher), small_apk)
    html = _page(researcher).get(f"/scans/{scan.pk}/").content.decode()
    sample = scan.sample
    # features, matches with evidence, ruleset, timings
    assert "Permissions (" in html
    assert "Certificates (1)" in html
    assert "Andr.SmsFraud.Report-9-1" in html
    assert "release 3" in html
    assert f"analyse {scan.analyse_ms} ms · match {scan.match_ms} ms" in html
    assert scan.worker in html
    # copy buttons for each hash, the report and the download
    for value in (sample.sha256, sample.sha1, sample.md5):
        assert f'data-copy="{value}"' in html
    assert f'href="/api/v1/scans/{scan.pk}/report/"' in html
    assert f'href="/api/v1/samples/{sample.sha256}/download/"' in html
    assert "portal/copy.js" in html
    # an auditor reads the report but is offered no download
    seen = _page(auditor).get(f"/scans/{scan.pk}/").content.decode()
    assert "Download JSON report" in seen
    assert "/download/" not in seen


def test_the_sample_page_has_copy_buttons_and_a_download_for_those_who_may(
    api, researcher, auditor, small_apk: Path
) -> None:
    body, _ = _scanned(api(researcher), small_apk)
    sample = Sample.objects.get(sha256=body["sha256"])
    html = _page(researcher).get(f"/samples/{sample.sha256}/").content.decode()
    for value in (sample.sha256, sample.sha1, sample.md5):
        assert f'data-copy="{value}"' in html
    assert f'href="/api/v1/samples/{sample.sha256}/download/"' in html
    assert f"/api/v1/samples/{sample.sha256}/download/" not in (
        _page(auditor).get(f"/samples/{sample.sha256}/").content.decode()
    )


def test_the_scan_list_polls_while_a_scan_waits_and_stops_when_none_does(
    api, researcher, small_apk: Path
) -> None:
    body = _upload(api(researcher), small_apk.name, small_apk.read_bytes())
    client = _page(researcher)
    waiting = client.get("/scans/").content.decode()
    assert 'hx-trigger="every 2s"' in waiting
    assert 'data-live="yes"' in waiting
    scan_run(scan_id=body["scan"]["id"], ruleset_provider=lambda: EMPTY)
    done = client.get("/scans/", HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in done
    assert 'data-live="no"' in done
    assert 'data-status="succeeded"' in done


def test_the_schema_documents_the_report_and_the_download(api, researcher) -> None:
    schema = api(researcher).get("/api/schema/", {"format": "json"}).json()
    report = schema["paths"]["/api/v1/scans/{scan_id}/report/"]["get"]
    assert "ScanReport" in str(report["responses"]["200"])
    download = schema["paths"]["/api/v1/samples/{sha256}/download/"]["get"]
    assert "application/zip" in download["responses"]["200"]["content"]
    assert "403" in download["responses"]


class NoPathStorage(InMemoryStorage):
    """Storage with no local path for its callers, as S3 is."""

    def path(self, name: str) -> str:
        raise NotImplementedError("no local path")

    def _relative_path(self, name: str) -> str:  # what InMemoryStorage itself used path() for
        return os.path.relpath(safe_join(self.location, name), self.location)


def test_the_download_streams_from_storage_without_a_local_path(
    api, researcher, settings, small_apk: Path
) -> None:
    # given storage with no local path, as S3 is
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": f"{__name__}.NoPathStorage"},
    }
    with pytest.raises(NotImplementedError):
        default_storage.path("x")
    sha = _sample(api, researcher, small_apk)
    # when the sample is downloaded, then the archive holds its bytes all the same
    response = api(researcher).get(f"{SAMPLES}{sha}/download/")
    assert response.status_code == 200
    with pyzipper.AESZipFile(io.BytesIO(b"".join(response.streaming_content))) as archive:
        archive.setpassword(b"infected")
        assert archive.read(f"{sha}.apk") == small_apk.read_bytes()
