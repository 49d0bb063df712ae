"""In Chromium: a reviewer publishes from the releases page (built by a real worker on queue
``publish``), steers the rollout and halts it; a researcher cannot publish; the devices page
counts a phone that has just enrolled through the device API."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from portal.models import User
from portal.testing import wait_for
from releases.models import Release
from releases.tests.conftest import ENROLLMENT_KEY, SignatureMaker
from releases.tuf_repo import UpdateRepository

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def _facts(page: Any) -> str:
    return str(page.inner_text("dl.release-facts"))


def _state(page: Any) -> str:
    return str(page.inner_text("dl.release-facts dd >> nth=0"))


def test_a_reviewer_publishes_sets_the_rollout_and_halts_a_release(
    page: Any,
    login: Any,
    celery_worker: Any,
    reviewer: User,
    signatures: SignatureMaker,
    update_repo: UpdateRepository,
) -> None:
    # given two deployed signatures and a worker on the publish queue
    signatures.deploy()
    signatures.deploy()
    worker = celery_worker("publish")
    # when the reviewer publishes with the button on the releases page
    login(reviewer)
    page.goto("/releases/")
    page.fill(".publish-form input[name=notes]", "two new Joker hashes")
    page.click(".publish-form button[type=submit]")
    page.wait_for_url("**/releases/1/")
    assert "Release 1 is being built." in page.inner_text("ul.messages")

    # then the worker builds it, and the release page says it is published with its files
    def published() -> bool:
        page.reload()
        return _state(page) == "Published"

    wait_for(published, timeout=90, what=f"release 1 published; worker:\n{worker.output()}")
    assert "2 (0 noisy)" in _facts(page)
    assert "full-1.bin" in page.inner_text("body")
    assert "full-1.bin" in update_repo.target_files()

    # when the reviewer sets the rollout to 10 %
    page.fill(".rollout-form input[name=percent]", "10")
    page.click(".rollout-form button[type=submit]")
    # then the page shows the new percentage
    assert "now goes to 10% of stable devices" in page.inner_text("ul.messages")
    assert "10% of stable devices" in _facts(page)
    assert Release.objects.get(number=1).rollout_percent == 10

    # when the reviewer halts it
    page.click("#halt-open")
    page.fill("#halt-reason", "false positives on a banking app")
    page.click(".halt-form button[name=halt]")
    # then it is halted, its controls are gone, and the list says so too
    assert "Release 1 is halted." in page.inner_text("ul.messages")
    assert _state(page).startswith("Published · halted")
    assert page.locator(".rollout-form").count() == 0
    assert page.locator(".halt-form").count() == 0
    page.goto("/releases/")
    assert "halted" in page.inner_text("table.releases tbody tr >> nth=0")
    assert Release.objects.get(number=1).halted


def test_a_researcher_sees_releases_but_no_publish_button(
    page: Any, login: Any, researcher: User, signatures: SignatureMaker, update_repo: Any
) -> None:
    login(researcher)
    page.goto("/releases/")
    assert page.inner_text("h1") == "Releases"
    assert page.locator(".publish-form").count() == 0
    assert page.get_by_role("button", name="Publish a release").count() == 0


def test_the_devices_page_counts_a_phone_after_it_enrols(
    page: Any, login: Any, auditor: User, update_repo: UpdateRepository
) -> None:
    # given no device yet
    login(auditor)
    page.goto("/devices/")
    assert "0 enrolled device(s)." in page.inner_text("main")
    # when a beta phone enrols through the device API
    answer = APIClient().post(
        "/api/v1/devices/register/",
        {"enrollment_key": ENROLLMENT_KEY, "channel": "beta", "app_version": "2.7.1"},
        format="json",
    )
    assert answer.status_code == 201, answer.content
    # then the devices page counts it by channel, app version and installed release
    page.reload()
    assert "1 enrolled device(s)." in page.inner_text("main")
    counts = page.inner_text(".device-counts")
    assert "beta\t1" in counts
    assert "2.7.1\t1" in counts
    assert "none yet\t1" in counts
