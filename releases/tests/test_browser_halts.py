"""In Chromium: a reviewer is alerted of an automatic halt by the bell, reads why on the release
page, and uses the proposed kill switch; the signature page names the halt."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from portal.models import User
from releases.halts import auto_halt_check
from releases.models import Release
from releases.services import device_register, release_build, release_publish
from releases.tests.conftest import ENROLLMENT_KEY, SignatureMaker
from releases.tuf_repo import UpdateRepository
from scans.models import Label, Sample
from threats.models import Signature, Status

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_a_reviewer_follows_the_bell_to_an_automatic_halt_and_uses_the_kill_switch(
    page: Any,
    login: Any,
    reviewer: User,
    signatures: SignatureMaker,
    update_repo: UpdateRepository,
) -> None:
    # given release 2 that adds a signature, and a clean banking app
    signatures.deploy()
    release_build(number=release_publish(by=reviewer, enqueue=False).number)
    new = signatures.deploy()
    release_build(number=release_publish(by=reviewer, enqueue=False).number)
    app = hashlib.sha256(b"bank").hexdigest()
    Sample.objects.create(
        sha256=app,
        md5="0" * 32,
        sha1="0" * 40,
        size=1,
        file="samples/bank",
        label=Label.CLEAN,
        package="com.example.bank",
        last_seen=timezone.now(),
    )
    # when a phone reports the new signature on it, and the check runs
    token = device_register(enrollment_key=ENROLLMENT_KEY).token
    phone = APIClient()
    phone.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    batch = {
        "batch_id": str(uuid.uuid4()),
        "installed": {"release": 2, "engine_version": 1},
        "detections": [
            {
                "signature_id": new.pk,
                "revision": 1,
                "release": 2,
                "app_sha256": app,
                "package": "com.example.bank",
                "cert_sha256": "",
                "detected_at": timezone.now().isoformat(),
            }
        ],
    }
    assert phone.post("/api/v1/devices/reports/", batch, format="json").status_code == 201
    assert auto_halt_check() is not None
    # then the reviewer's bell shows one notification, which leads to the release page
    login(reviewer)
    page.goto("/")
    assert page.get_attribute("a.bell", "aria-label") == "Notifications: 1 unread"
    page.click("a.bell")
    page.click("text=Release 2 was halted automatically")
    page.wait_for_url("**/releases/2/")
    section = page.inner_text("section.auto-halt")
    assert "Halted automatically" in section
    assert "an app labelled clean" in section
    assert "halted" in page.inner_text("dl.release-facts")
    # the signature page names the halt too
    page.goto(f"/signatures/{new.pk}/")
    assert "Automatic halts" in page.inner_text("body")
    # when the reviewer uses the kill switch
    page.goto("/releases/2/")
    page.click(".kill-switch-form button[type=submit]")
    page.wait_for_url("**/releases/3/")
    # then the signature is noisy and release 3 is being built to ship it
    assert "urgent release 3 is being built" in page.inner_text("ul.messages")
    assert Signature.objects.get(pk=new.pk).status == Status.NOISY
    assert Release.objects.filter(number=3).exists()
