"""The cloud look-up: phones ask about up to 100 apps by SHA-256 and get the current verdict
(the verdict a release gave a stored sample, not its last scan), unknown for apps never seen,
and the family; the unknown ones phones ask about most make the "Wanted" list."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from portal.testing import gate
from releases.services import device_register, release_build, release_publish
from scans.models import LookupCount, Sample
from scans.services import scan_run
from scans.tests.factories import stored_sample
from scans.verdicts import verdicts_sync
from threats import services
from threats.tests.factories import make_family

pytestmark = pytest.mark.django_db

BANK = "InsecureBankv2.apk"
CLEAN = "a2dp.Vol_137.apk"
KEY = "lookup-test-key"


@pytest.fixture
def update_repo(settings, tmp_path: Path, monkeypatch):
    from releases.repository import init_dev_repository

    settings.RELEASE_REPO_DIR = tmp_path / "updates"
    settings.TUF_KEYS_DIR = tmp_path / "tuf-keys"
    for name in ("TUF_ROOT_KEY", "TUF_TARGETS_KEY", "TUF_SNAPSHOT_KEY", "TUF_TIMESTAMP_KEY"):
        monkeypatch.delenv(name, raising=False)
    return init_dev_repository()


@pytest.fixture
def phone(settings, django_capture_on_commit_callbacks) -> APIClient:
    settings.DEVICE_ENROLLMENT_KEY = KEY
    with django_capture_on_commit_callbacks(execute=True):
        enrolment = device_register(enrollment_key=KEY, model="test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {enrolment.token}")
    return client


def _scanned(path: Path, user, label: str | None = None) -> Sample:
    sample, scan = stored_sample(path, user=user, label=label)
    scan_run(scan_id=scan.pk)
    sample.refresh_from_db()
    return sample


@pytest.fixture
def shipped(researcher, reviewer, corpus: Path, update_repo) -> dict[str, Sample]:
    """InsecureBankv2 scanned clean, then a hash signature for it shipped in release 1."""
    clean = _scanned(corpus / "apks" / CLEAN, researcher, label="clean")
    bank = _scanned(corpus / "apks" / BANK, researcher)
    sig = services.signature_create(
        actor=researcher,
        kind="hash",
        body={"algorithm": "sha256", "target": "apk", "value": bank.sha256},
        family=make_family(name="Bankbot"),
    )
    services.signature_submit(signature=sig, actor=researcher)
    gate(sig)
    services.signature_approve(signature=sig, actor=reviewer)
    release_build(number=release_publish(by=reviewer, enqueue=False).number)
    verdicts_sync()
    return {"bank": bank, "clean": clean}


def test_a_phone_gets_the_current_verdict_unknown_and_the_family(phone, shipped) -> None:
    unseen = hashlib.sha256(b"an app nobody uploaded").hexdigest()
    bank, clean = shipped["bank"], shipped["clean"]
    response = phone.post(
        "/api/v1/devices/lookup/",
        {"sha256s": [bank.sha256.upper(), clean.sha256, unseen]},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["release"] == 1
    assert body["cache_seconds"] > 0
    answers = {a["sha256"]: a for a in body["results"]}
    assert answers[bank.sha256]["verdict"] == "malicious"  # its last scan said clean
    assert answers[bank.sha256]["release"] == 1
    assert answers[bank.sha256]["signature"].startswith("Andr.")
    # no researcher set a family on the app: the family of the signature behind the verdict
    assert answers[bank.sha256]["family"] == "Bankbot"
    assert answers[clean.sha256]["verdict"] == "clean"
    assert answers[clean.sha256]["label"] == "clean"
    assert answers[unseen] == {
        "sha256": unseen,
        "verdict": "unknown",
        "label": "unknown",
        "family": None,
        "signature": None,
        "release": None,
    }


def test_lookups_are_counted_and_the_most_wanted_unknown_apps_are_listed(
    phone, shipped, api, researcher, client
) -> None:
    wanted = hashlib.sha256(b"wanted").hexdigest()
    once = hashlib.sha256(b"once").hexdigest()
    phone.post("/api/v1/devices/lookup/", {"sha256s": [wanted, once]}, format="json")
    phone.post(
        "/api/v1/devices/lookup/", {"sha256s": [wanted, shipped["bank"].sha256]}, format="json"
    )
    assert LookupCount.objects.get(sha256=wanted).count == 2
    assert LookupCount.objects.get(sha256=once).count == 1
    listed = api(researcher).get("/api/v1/samples/wanted/").json()
    assert [w["sha256"] for w in listed] == [wanted, once]  # the stored bank app is not wanted
    assert listed[0]["lookups"] == 2
    client.force_login(researcher)
    page = client.get("/samples/wanted/").content.decode()
    assert wanted in page
    assert shipped["bank"].sha256 not in page
    assert api(researcher).get("/api/v1/samples/wanted/?limit=0").status_code == 400
    assert api(researcher).get("/api/v1/samples/wanted/", {"limit": "³"}).status_code == 400


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"sha256s": []},
        {"sha256s": "ab" * 32},
        {"sha256s": ["not-a-hash"]},
        {"sha256s": ["ab" * 32] * 101},
        {"sha256s": ["٣" * 64]},  # Unicode digits are not hex digits
    ],
)
def test_bad_lookups_get_a_json_400_and_count_nothing(phone, payload) -> None:
    response = phone.post("/api/v1/devices/lookup/", payload, format="json")
    assert response.status_code == 400
    assert response.json()["message"]
    assert not LookupCount.objects.exists()


def test_only_devices_look_up_and_only_people_see_the_wanted_list(api, researcher, phone) -> None:
    sha = "ab" * 32
    people = api(researcher).post("/api/v1/devices/lookup/", {"sha256s": [sha]}, format="json")
    assert people.status_code in (401, 403)
    assert APIClient().post(
        "/api/v1/devices/lookup/", {"sha256s": [sha]}, format="json"
    ).status_code in (401, 403)
    assert phone.get("/api/v1/samples/wanted/").status_code in (401, 403)


def test_a_device_over_its_lookup_rate_gets_429_with_retry_after(settings, phone) -> None:
    settings.DEVICE_LOOKUP_RATE = "2/min"
    body = {"sha256s": ["ab" * 32]}
    assert phone.post("/api/v1/devices/lookup/", body, format="json").status_code == 200
    assert phone.post("/api/v1/devices/lookup/", body, format="json").status_code == 200
    third = phone.post("/api/v1/devices/lookup/", body, format="json")
    assert third.status_code == 429
    assert int(third["Retry-After"]) > 0
    assert third.json()["message"]
