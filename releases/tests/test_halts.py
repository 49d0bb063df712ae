"""Automatic halts, driven through the real device API: reports in, a halted release, reviewers
alerted, and the kill switch that fixes it."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from engine.rollout import Rollout
from portal.models import AuditEntry, Notification
from releases.halts import auto_halt_check
from releases.models import AutoHalt, Device, HaltRule, Release
from releases.services import release_build, release_publish
from releases.tuf_repo import UpdateRepository, full_target_name
from scans.models import Label, Sample
from threats.models import Signature, Status

BANK = "com.example.bank"
BANK_SIGNER = "c" * 64


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def publish(by: Any) -> int:
    release = release_publish(by=by, enqueue=False)
    return release_build(number=release.number).number


def clean_bank_app() -> Sample:
    """The real banking app, labelled clean (its signer in its stored features)."""
    return Sample.objects.create(
        sha256=sha("bank-1.0"),
        md5="0" * 32,
        sha1="0" * 40,
        size=1000,
        file="samples/bank",
        label=Label.CLEAN,
        package=BANK,
        features={"certificates": [{"sha256": BANK_SIGNER}]},
        last_seen=timezone.now(),
    )


def report(token: str, installed: int, *detections: dict[str, Any]) -> Any:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    body = {
        "batch_id": str(uuid.uuid4()),
        "installed": {"release": installed, "engine_version": 1},
        "detections": list(detections),
    }
    response = client.post("/api/v1/devices/reports/", body, format="json")
    assert response.status_code == 201, response.json()
    return response


def detection(sig: Signature, release: int, app: str, package: str, signer: str) -> dict[str, Any]:
    return {
        "signature_id": sig.pk,
        "revision": 1,
        "release": release,
        "app_sha256": app,
        "package": package,
        "cert_sha256": signer,
        "detected_at": timezone.now().isoformat(),
    }


def signed(repo: UpdateRepository, number: int) -> Rollout:
    return Rollout.from_custom(repo.target_files()[full_target_name(number)].custom["rollout"])


@pytest.mark.django_db
def test_a_new_signature_on_a_rebuilt_clean_app_halts_the_release_and_alerts_reviewers(
    update_repo: UpdateRepository,
    make_device: Callable[..., tuple[Device, str]],
    signatures: Any,
    reviewer: Any,
    mailoutbox: list[Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    reviewer.email = "vera@example.org"
    reviewer.save()
    old = signatures.deploy()
    publish(reviewer)
    new = signatures.deploy()
    publish(reviewer)  # release 2 adds `new`
    clean_bank_app()
    _, token = make_device()
    # a detection by the old signature on the bank app is not this release's doing
    report(token, 2, detection(old, 2, sha("bank-1.1"), BANK, BANK_SIGNER))
    assert auto_halt_check() is None
    # when the new signature fires on a rebuild of the bank app (same package, same signer)
    report(token, 2, detection(new, 2, sha("bank-1.1"), BANK, BANK_SIGNER))
    with django_capture_on_commit_callbacks(execute=True):  # the alert goes after commit
        halt = auto_halt_check()
    # then release 2 is halted, in the database and in the signed data phones read
    assert halt is not None
    assert (halt.rule, halt.signature_id, halt.release.number) == (HaltRule.CLEAN_APP, new.pk, 2)
    assert "package and signer of a clean sample" in halt.reason
    assert Release.objects.get(number=2).halted
    assert signed(update_repo, 2).halted
    # and it is audited with no actor, and every reviewer is told once, by bell and e-mail
    entry = AuditEntry.objects.get(action="release.auto_halt")
    assert entry.actor is None
    assert entry.reason == halt.reason
    notice = Notification.objects.get(recipient=reviewer)
    assert notice.title == "Release 2 was halted automatically"
    assert [m.to for m in mailoutbox] == [["vera@example.org"]]
    # and checking again changes nothing
    assert auto_halt_check() is None
    assert AutoHalt.objects.count() == 1


@pytest.mark.django_db
def test_the_kill_switch_marks_the_signature_noisy_in_an_urgent_release(
    update_repo: UpdateRepository,
    make_device: Callable[..., tuple[Device, str]],
    signatures: Any,
    reviewer: Any,
    researcher: Any,
    api: Any,
) -> None:
    signatures.deploy()
    publish(reviewer)
    new = signatures.deploy()
    publish(reviewer)
    clean_bank_app()
    _, token = make_device()
    report(token, 2, detection(new, 2, sha("bank-1.0"), BANK, BANK_SIGNER))
    auto_halt_check()
    detail = api(reviewer).get("/api/v1/releases/2/").json()
    assert detail["auto_halts"][0]["signature_id"] == new.pk
    assert detail["auto_halts"][0]["resolved_by_release"] is None
    # a researcher may not use it
    refused = api(researcher).post(
        "/api/v1/releases/2/kill-switch/", {"signature_id": new.pk}, format="json"
    )
    assert refused.status_code == 403
    # when a reviewer uses the proposed kill switch
    answer = api(reviewer).post(
        "/api/v1/releases/2/kill-switch/", {"signature_id": new.pk}, format="json"
    )
    assert answer.status_code == 202, answer.json()
    number = answer.json()["number"]
    release_build(number=number)
    # then the signature is noisy, and the new release is signed urgent: phones take it at once
    assert Signature.objects.get(pk=new.pk).status == Status.NOISY
    assert signed(update_repo, number).urgent
    assert AutoHalt.objects.get().resolved_by_release == number
    again = api(reviewer).post(
        "/api/v1/releases/2/kill-switch/", {"signature_id": new.pk}, format="json"
    )
    assert again.status_code == 409
    unknown = api(reviewer).post(
        "/api/v1/releases/2/kill-switch/", {"signature_id": 2**63 + 1}, format="json"
    )
    assert unknown.status_code == 400


@pytest.mark.django_db
def test_one_app_detected_by_too_many_of_a_cohorts_devices_halts_the_release(
    update_repo: UpdateRepository,
    make_device: Callable[..., tuple[Device, str]],
    signatures: Any,
    reviewer: Any,
    settings: Any,
) -> None:
    settings.AUTO_HALT_MIN_DEVICES = 6
    settings.AUTO_HALT_APP_SHARE = 0.5
    settings.DEVICE_REPORT_RATE = "1000/min"
    sig = signatures.deploy()
    publish(reviewer)
    devices = [make_device()[1] for _ in range(6)]
    popular = detection(sig, 1, sha("chat-app"), "com.example.chat", "d" * 64)
    # three of six reporting devices detect the app: a half, not more than a half
    for i, token in enumerate(devices):
        report(token, 1, *([popular] if i < 3 else []))
    assert auto_halt_check() is None
    # a fourth: more than half the cohort
    report(devices[3], 1, popular)
    halt = auto_halt_check()
    assert halt is not None
    assert (halt.rule, halt.cohort, halt.devices, halt.reporting) == (
        HaltRule.APP_SHARE,
        "stable",
        4,
        6,
    )
    assert Release.objects.get(number=1).halted


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_reports_posted_to_the_api_halt_the_release_through_a_worker(
    update_repo: UpdateRepository,
    make_device: Callable[..., tuple[Device, str]],
    signatures: Any,
    reviewer: Any,
    celery_worker: Any,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    settings.AUTO_HALT_DELAY_SECONDS = 1
    monkeypatch.setenv("AUTO_HALT_DELAY_SECONDS", "1")
    signatures.deploy()
    publish(reviewer)
    new = signatures.deploy()
    publish(reviewer)
    clean_bank_app()
    worker = celery_worker("default")
    _, token = make_device()
    # when a phone reports the new signature on the clean app itself
    report(token, 2, detection(new, 2, sha("bank-1.0"), BANK, BANK_SIGNER))
    # then, with no one calling anything, a worker halts release 2
    deadline = time.monotonic() + 60
    while not Release.objects.get(number=2).halted:
        assert time.monotonic() < deadline, f"release 2 not halted; worker:\n{worker.output()}"
        time.sleep(0.5)
    assert AutoHalt.objects.get().rule == HaltRule.CLEAN_APP
