"""In Chromium: keep a watch rule on the Livehunt page, upload a matching app, and see the
bell count go up and the notification listed (a real worker scans and matches)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from livehunt.models import WatchRule
from livehunt.tests.conftest import PACKAGE, YARA_MATCH

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_a_watch_rule_made_on_the_page_notifies_after_an_upload(
    page, login, celery_worker, researcher, small_apk: Path
) -> None:
    worker = celery_worker("scans")
    login(researcher)

    # given a watch rule made with the form on the Livehunt page
    page.goto("/livehunt/")
    page.fill("#id_name", "Tiny apps")
    page.select_option("#id_kind", "yara")
    page.fill("#id_body", YARA_MATCH)
    page.fill("#id_days", "14")
    page.click("#watch-rule-form button[type=submit]")
    page.wait_for_url("**/livehunt/*/")
    rule = WatchRule.objects.get()
    assert page.inner_text("#rule-state") == "active"
    assert page.locator(".bell .count").count() == 0

    # when a matching app is uploaded on the upload page
    page.goto("/samples/upload/")
    page.set_input_files("#upload-files", str(small_apk))
    page.locator("#uploads li").first.wait_for(timeout=30_000)

    # then, once the worker has scanned and matched it, the bell counts one unread
    deadline = time.monotonic() + 120
    while True:
        page.goto(f"/livehunt/{rule.pk}/")
        count = page.locator(".bell .count")
        if count.count() and count.inner_text().strip() == "1":
            break
        if time.monotonic() > deadline:
            pytest.fail(f"no livehunt notification; worker log:\n{worker.output()}")
        time.sleep(1)
    assert PACKAGE in page.inner_text("#watch-hits")

    # and the notifications page lists it, linking to the sample
    page.click(".bell")
    page.wait_for_url("**/notifications/")
    listed = page.inner_text("main")
    assert "Tiny apps" in listed
    assert PACKAGE in listed
