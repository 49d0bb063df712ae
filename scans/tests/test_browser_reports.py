"""In Chromium: files dropped on the upload page show their verdict (or why they failed) when
their scans end, without leaving the page; a copy button puts a hash on the clipboard."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from scans.rulesets import EMPTY
from scans.services import scan_run
from scans.tests.factories import stored_sample

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_the_upload_page_shows_each_verdict_and_a_copy_button_copies_the_hash(
    page, login, live_server, celery_worker, researcher, small_apk: Path, tmp_path: Path
) -> None:
    # given a scan worker (no release published: every app is matched against no signature)
    worker = celery_worker("scans")
    notes = tmp_path / "notes.apk"
    notes.write_text("These are notes, not an app.\n" * 20)
    login(researcher)
    # when a researcher drops an app and a text file on the upload page
    page.goto("/samples/upload/")
    page.set_input_files("#upload-files", [str(small_apk), str(notes)])
    # then each row shows its scan's outcome once the scan ends, on the same page
    app_row = page.locator("#uploads li", has_text=small_apk.name)
    notes_row = page.locator("#uploads li", has_text="notes.apk")
    try:
        page.wait_for_function(
            "() => document.querySelectorAll('#uploads li[data-verdict]').length === 2",
            timeout=90_000,
        )
    except Exception:
        pytest.fail(f"the verdicts did not appear; worker log:\n{worker.output()}")
    assert app_row.get_attribute("data-verdict") == "clean"
    assert "clean" in app_row.locator(".verdict").inner_text()
    assert notes_row.get_attribute("data-verdict") == "failed"
    assert "a text file, not a ZIP archive" in notes_row.locator(".verdict").inner_text()

    # and on the app's scan page, the copy button next to the SHA-256 copies it
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    app_row.locator("a.scan-link").click()
    page.wait_for_selector("#scan-status[data-status=succeeded]")
    sha256 = hashlib.sha256(small_apk.read_bytes()).hexdigest()
    button = page.locator(f'button.copy[data-copy="{sha256}"]')
    button.click()
    page.wait_for_selector(f'button.copy[data-copy="{sha256}"][data-copied="yes"]')
    assert button.inner_text() == "Copied"
    assert page.evaluate("navigator.clipboard.readText()") == sha256
    # the certificate fingerprints (SHA-256 and SHA-1) of the features have the same button
    cert = page.locator("section.cert").first
    assert cert.locator("button.copy").count() == 2
    fingerprint = cert.locator(".cert-sha256 button.copy")
    fingerprint.click()
    page.wait_for_function(
        "v => navigator.clipboard.readText().then(t => t === v)",
        arg=fingerprint.get_attribute("data-copy"),
    )


def test_the_scans_list_updates_itself_while_a_scan_runs_and_then_stops(
    page, login, researcher, small_apk: Path
) -> None:
    # given a queued scan (no worker yet)
    _, scan = stored_sample(small_apk)
    login(researcher)
    page.goto("/scans/")
    row = page.locator(f"tr[data-scan='{scan.pk}']")
    assert row.get_attribute("data-status") == "queued"
    assert page.locator("#scan-rows-live").is_visible()
    # when the scan ends
    scan_run(scan_id=scan.pk, ruleset_provider=lambda: EMPTY)
    # then the row shows it without a reload, and the list stops polling
    page.wait_for_selector(f"tr[data-scan='{scan.pk}'][data-status='succeeded']", timeout=15_000)
    assert "clean" in row.inner_text()
    assert page.locator("#scan-rows-live").count() == 0
    assert page.locator("#scan-rows-body").get_attribute("hx-trigger") is None
