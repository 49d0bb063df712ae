"""In Chromium: an MD5 in the address bar opens the sample, and the signer certificate's
pivot lands on a list holding the other app that certificate signed."""

from __future__ import annotations

from pathlib import Path

import pytest

from scans.models import Sample
from scans.rulesets import EMPTY
from scans.services import scan_run
from scans.tests.factories import stored_sample

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _analysed(path: Path) -> Sample:
    sample, scan = stored_sample(path)
    scan_run(scan_id=scan.pk, ruleset_provider=lambda: EMPTY)
    sample.refresh_from_db()
    return sample


def test_md5_redirect_and_the_certificate_pivot(page, login, researcher, corpus: Path) -> None:
    # given two apps signed by the same certificate
    issue = _analysed(corpus / "apks" / "issue2701.apk")
    other = _analysed(corpus / "apks" / "GHSA-2hqv-2xv4-5h5w.apk")
    login(researcher)
    # when a researcher types an MD5 after /samples/
    page.goto(f"/samples/{issue.md5}/")
    # then the sample's own page opens
    page.wait_for_url(f"**/samples/{issue.sha256}/")
    assert page.inner_text("#sample-sha256").strip().startswith(issue.sha256)
    # and the signer certificate's link lists every app it signed, the other one included
    page.locator(".cert-sha256 a.pivot").first.click()
    page.wait_for_url("**/samples/?cert=*")
    rows = page.locator("#sample-rows tbody tr")
    assert rows.count() == 2
    page.locator(f'#sample-rows a[title="{other.sha256}"]').wait_for()
    assert "cert" in page.inner_text("#pivot-filters")
