"""Detection reports from phones: the device endpoint, deletion, roll-up and expiry, and what
people see of them on the release and signature pages and in the API."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from portal.exceptions import ForbiddenError
from portal.models import AuditEntry
from portal.services import api_token_create
from portal.testing import PASSWORD
from releases.models import (
    DetectionReport,
    DetectionRollup,
    DetectionRollupDay,
    Device,
    Release,
    ReleaseState,
    ReportBatch,
)
from releases.pins import pack
from releases.selectors_reports import signature_detections
from releases.services_reports import (
    detections_report,
    detections_rollup,
    device_delete,
    report_batch_parse,
)
from releases.tasks import rollup_detection_reports
from threats.tests.factories import deployed_signature

REGISTER = "/api/v1/devices/register/"
REPORTS = "/api/v1/devices/reports/"
ME = "/api/v1/devices/me/"
KEY = "reports-enrollment-key"
APP = "a" * 64
CERT = "c" * 64


@pytest.fixture(autouse=True)
def _settings(settings: Any) -> None:
    settings.DEVICE_ENROLLMENT_KEY = KEY
    settings.DEVICE_REPORT_RATE = "1000/min"
    settings.DEVICE_REPORT_RETENTION_DAYS = 30


def register(channel: str = "stable") -> tuple[Device, APIClient]:
    """A phone enrolled through the real endpoint, and a client carrying its token."""
    answer = (
        APIClient()
        .post(REGISTER, {"enrollment_key": KEY, "channel": channel}, format="json")
        .json()
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {answer['token']}")
    return Device.objects.get(device_id=answer["device_id"]), client


def detection(signature_id: int = 7, **kwargs: Any) -> dict[str, Any]:
    item = {
        "signature_id": signature_id,
        "revision": 2,
        "release": 3,
        "app_sha256": APP,
        "package": "com.example.bank",
        "cert_sha256": CERT,
        "detected_at": "2026-11-27T08:30:00Z",
    }
    return {**item, **kwargs}


def batch(*items: dict[str, Any], release: int = 3, batch_id: str | None = None) -> dict[str, Any]:
    return {
        "batch_id": batch_id or str(uuid.uuid4()),
        "installed": {"release": release, "engine_version": 2},
        "detections": list(items),
    }


def report_at(device: Device, when: datetime.datetime, *items: dict[str, Any]) -> None:
    """Reports received on another day (the service with its clock set)."""
    detections_report(device=device, batch=report_batch_parse(batch(*items)), now=when)


# --- the device endpoint ------------------------------------------------------------------


@pytest.mark.django_db
def test_a_phone_reports_a_batch_once_however_often_it_sends_it() -> None:
    device, phone = register()
    body = batch(detection(), detection(8, package="com.example.game"), release=3)

    first = phone.post(REPORTS, body, format="json")
    again = phone.post(REPORTS, body, format="json")

    assert first.status_code == 201
    assert first.json()["accepted"] == 2
    assert again.status_code == 200
    assert again.json() == first.json()
    assert DetectionReport.objects.filter(device=device).count() == 2
    assert ReportBatch.objects.filter(device=device).count() == 1
    device.refresh_from_db()
    assert (device.installed_release, device.engine_version) == (3, 2)
    assert device.last_seen_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("app_sha256", "not-a-hash"),
        ("app_sha256", "a" * 63),
        ("signature_id", 2**63),
        ("signature_id", "\uff11\uff12"),
        ("signature_id", "³"),
        ("signature_id", 7.0),
        ("signature_id", True),
        ("revision", 0),
        ("release", 2**31),
        ("cert_sha256", "c" * 65),
        ("package", "com.example bank"),
        ("package", "com.\x00bank"),
        ("detected_at", "2026-13-01T00:00:00Z"),
        ("detected_at", "2026-11-27T08:30:00"),  # no time zone
        ("detected_at", "\uff12\uff10\uff12\uff16-11-27T08:30:00Z"),
    ],
)
def test_a_bad_item_is_named_and_nothing_of_the_batch_is_stored(field: str, value: Any) -> None:
    device, phone = register()
    body = batch(detection(), detection(), detection(), detection(**{field: value}), release=9)

    answer = phone.post(REPORTS, body, format="json")

    assert answer.status_code == 400
    assert f"detections[3].{field}" in answer.json()["extra"]["fields"]
    assert answer.json()["message"].startswith(f"detections[3].{field}:")
    assert not DetectionReport.objects.exists()
    assert not ReportBatch.objects.exists()
    device.refresh_from_db()
    assert device.installed_release == 0  # the batch's "installed" was not applied either


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({**batch(), "batch_id": "not-a-uuid"}, "batch_id"),
        ({**batch(), "installed": {"release": -1, "engine_version": 1}}, "installed.release"),
        ({**batch(), "installed": {"release": 1}}, "installed.engine_version"),
        (batch(*[detection()] * 501), "detections"),
        ({"batch_id": str(uuid.uuid4())}, "installed"),
        ({**batch(), "detections": [detection(), "x"]}, "detections[1]"),
    ],
)
def test_a_bad_batch_is_a_400_naming_the_field(body: dict[str, Any], named: str) -> None:
    _, phone = register()

    answer = phone.post(REPORTS, body, format="json")

    assert answer.status_code == 400
    assert named in answer.json()["extra"]["fields"]
    assert not DetectionReport.objects.exists()


@pytest.mark.django_db
def test_a_body_over_the_batch_limit_is_413() -> None:
    _, phone = register()
    body = batch(*[detection(package="p" * 255)] * 500)
    body["padding"] = "x" * 300_000

    answer = phone.post(REPORTS, body, format="json")

    assert answer.status_code == 413
    assert not DetectionReport.objects.exists()


@pytest.mark.django_db
def test_people_cannot_post_reports_or_delete_devices(reviewer, api) -> None:
    _, token = api_token_create(user=reviewer)
    person = APIClient()
    person.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    for client in (person, api(reviewer), APIClient()):
        assert client.post(REPORTS, batch(detection()), format="json").status_code in (401, 403)
        assert client.delete(ME).status_code in (401, 403)
    assert not DetectionReport.objects.exists()


@pytest.mark.django_db
def test_reports_are_throttled_per_device_with_retry_after(settings) -> None:
    settings.DEVICE_REPORT_RATE = "2/min"
    _, phone = register()
    _, other_phone = register()

    codes = [phone.post(REPORTS, batch(), format="json").status_code for _ in range(3)]
    refused = phone.post(REPORTS, batch(), format="json")

    assert codes == [201, 201, 429]
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert other_phone.post(REPORTS, batch(), format="json").status_code == 201


# --- deletion -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_device_deletes_itself_and_only_itself() -> None:
    kept, kept_phone = register()
    gone, gone_phone = register()
    kept_phone.post(REPORTS, batch(detection()), format="json")
    gone_phone.post(REPORTS, batch(detection(), detection()), format="json")

    assert gone_phone.delete(ME).status_code == 204

    assert not Device.objects.filter(pk=gone.pk).exists()
    assert not DetectionReport.objects.filter(device_id=gone.pk).exists()
    assert DetectionReport.objects.filter(device=kept).count() == 1
    assert gone_phone.post(REPORTS, batch(), format="json").status_code == 401
    assert gone_phone.delete(ME).status_code == 401
    assert kept_phone.post(REPORTS, batch(), format="json").status_code == 201
    entry = AuditEntry.objects.get(action="device.delete")
    assert gone.device_id not in entry.object_repr
    assert not entry.source_ip  # nor the phone's address
    # (addresses are recorded on this path: the enrolment entry has one)
    assert AuditEntry.objects.filter(action="device.register").exclude(source_ip=None).exists()


@pytest.mark.django_db
def test_deleting_a_device_removes_its_raw_reports_and_keeps_the_rollups(admin_user) -> None:
    device, _ = register()
    other, _ = register()
    yesterday = timezone.now() - datetime.timedelta(days=1)
    report_at(device, yesterday, detection(), detection())
    report_at(other, yesterday, detection())
    detections_rollup()

    deleted = device_delete(device=device, by=admin_user)

    assert deleted.reports == 2
    assert not DetectionReport.objects.filter(device_id=device.pk).exists()
    [rollup] = DetectionRollup.objects.all()
    assert (rollup.devices, rollup.reports) == (2, 3)
    seen = signature_detections(signature_id=7)
    assert (seen.devices, seen.reports) == (1, 3)  # one device left in the raw window


@pytest.mark.django_db
def test_only_admins_delete_other_devices(researcher) -> None:
    device, _ = register()

    with pytest.raises(ForbiddenError):
        device_delete(device=device, by=researcher)
    assert Device.objects.filter(pk=device.pk).exists()


@pytest.mark.django_db
def test_the_django_admin_deletes_through_the_service(admin_user, settings) -> None:
    admin_user.is_superuser = True
    admin_user.save()
    device, phone = register()
    phone.post(REPORTS, batch(detection()), format="json")
    client = Client()
    client.force_login(admin_user)

    answer = client.post(
        f"/admin/releases/device/{device.pk}/delete/", {"post": "yes"}, follow=False
    )

    assert answer.status_code == 302
    assert not DetectionReport.objects.exists()
    assert AuditEntry.objects.filter(action="device.delete", actor=admin_user).exists()


# --- roll-up and expiry -------------------------------------------------------------------


@pytest.mark.django_db
def test_the_beat_task_rolls_up_complete_days_and_expires_old_raw_reports() -> None:
    stable, _ = register()
    beta, _ = register("beta")
    now = timezone.now()
    old, yesterday = now - datetime.timedelta(days=40), now - datetime.timedelta(days=1)
    report_at(stable, old, detection(), detection())
    report_at(beta, old, detection())
    report_at(stable, yesterday, detection())
    report_at(stable, now, detection())

    result = rollup_detection_reports()
    again = rollup_detection_reports()

    assert result["days_rolled"] == 2
    assert result["reports_deleted"] == 3  # the 40-day-old ones, after their roll-up
    assert again == {"days_rolled": 0, "rollup_rows": 0, "reports_deleted": 0, "batches_deleted": 0}
    assert sorted(DetectionReport.objects.values_list("day", flat=True)) == [
        yesterday.date(),
        now.date(),
    ]
    by_cohort = {
        r.cohort: (r.devices, r.reports) for r in DetectionRollup.objects.filter(day=old.date())
    }
    assert by_cohort == {"stable": (1, 2), "beta": (1, 1)}
    assert DetectionRollupDay.objects.count() == 2
    assert not ReportBatch.objects.filter(received_at__lt=now - datetime.timedelta(days=30))
    seen = signature_detections(signature_id=7)
    assert seen.reports == 5  # every report ever received, counted once
    assert seen.devices == 1  # in the 30-day window
    assert seen.first_seen is not None
    assert seen.first_seen <= old


# --- what people see ----------------------------------------------------------------------


@pytest.fixture
def release_with_reports(reviewer) -> tuple[Release, Any]:
    release = Release.objects.create(
        number=3, created_by=reviewer, pins=pack([]), state=ReleaseState.PUBLISHED
    )
    sig = deployed_signature()
    _, phone = register()
    _, behind_phone = register()
    phone.post(
        REPORTS,
        batch(detection(sig.pk), detection(sig.pk, package="com.other"), release=3),
        format="json",
    )
    behind_phone.post(REPORTS, batch(release=2), format="json")
    return release, sig


@pytest.mark.django_db
def test_the_release_page_shows_adoption_and_detections_from_reports(
    release_with_reports, reviewer
) -> None:
    _, sig = release_with_reports
    client = Client()
    assert client.login(username=reviewer.username, password=PASSWORD)

    page = client.get("/releases/3/").content.decode()

    assert "Adoption (from device reports)" in page
    assert "1 of 2 device(s) that reported in the last 30 days have this release" in page
    assert "Detections by signature" in page
    assert f'href="/signatures/{sig.pk}/"' in page


@pytest.mark.django_db
def test_the_signature_page_shows_devices_and_apps_from_reports(
    release_with_reports, researcher
) -> None:
    _, sig = release_with_reports
    client = Client()
    assert client.login(username=researcher.username, password=PASSWORD)

    page = client.get(f"/signatures/{sig.pk}/").content.decode()

    assert "Detections from phones" in page
    assert "1 in the last 30 days" in page
    assert "com.example.bank" in page
    assert "com.other" in page
    assert CERT in page


@pytest.mark.django_db
def test_the_aggregates_api(release_with_reports, api, auditor) -> None:
    _, sig = release_with_reports
    client = api(auditor)

    by_signature = client.get("/api/v1/devices/detections/", {"signature": sig.pk}).json()
    by_release = client.get("/api/v1/releases/3/detections/").json()

    assert (by_signature["devices"], by_signature["reports"]) == (1, 2)
    assert {a["package"] for a in by_signature["apps"]} == {"com.example.bank", "com.other"}
    assert by_release["adoption"]["on_this_release"] == 1
    assert by_release["adoption"]["devices_reporting"] == 2
    [row] = by_release["signatures"]
    assert (row["signature_id"], row["devices"], row["reports"]) == (sig.pk, 1, 2)
    for bad in ("9223372036854775808", "\uff11", "x", ""):
        answer = client.get("/api/v1/devices/detections/", {"signature": bad})
        assert answer.status_code == 400, bad
    assert client.get("/api/v1/releases/99/detections/").status_code == 404
    assert APIClient().get("/api/v1/releases/3/detections/").status_code in (401, 403)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_reference_client_reports_through_a_live_portal(live_server) -> None:
    from client.api import register as client_register
    from client.reports import new_batch, post_report

    device_id, token = client_register(live_server.url, {"enrollment_key": KEY})
    sent = new_batch(release=4, engine_version=2, detections=[detection(), detection(8)])

    first = post_report(live_server.url, token, sent)
    retried = post_report(live_server.url, token, sent)  # its answer was "lost"

    assert first == retried
    assert first["accepted"] == 2
    assert DetectionReport.objects.filter(device__device_id=device_id).count() == 2
    assert Device.objects.get(device_id=device_id).installed_release == 4


@pytest.mark.django_db
def test_a_full_batch_costs_a_few_queries_not_one_per_detection(
    django_assert_max_num_queries,
) -> None:
    device, _ = register()
    full = report_batch_parse(batch(*[detection(i + 1) for i in range(500)]))

    # the duplicate check, the device UPDATE, the batch row, the bulk insert (SQLite splits
    # it into statements of 999 parameters: 6 for 500 rows) and the savepoints around them
    with django_assert_max_num_queries(14):
        receipt = detections_report(device=device, batch=full)

    assert receipt.accepted == 500
    assert DetectionReport.objects.filter(device=device).count() == 500


def test_beat_rolls_reports_up_hourly(settings) -> None:
    from portal.celery import app

    entries = [
        e
        for e in settings.CELERY_BEAT_SCHEDULE.values()
        if e["task"] == rollup_detection_reports.name
    ]
    assert entries == [
        {
            "task": "releases.rollup_detection_reports",
            "schedule": 3600.0,
            "options": {"queue": "default"},
        }
    ]
    assert rollup_detection_reports.name in app.tasks
