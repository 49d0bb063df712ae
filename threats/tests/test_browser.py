"""The curation workflow in a real browser (Playwright driving chromium)."""

from __future__ import annotations

import pytest

from portal.models import User
from portal.testing import PASSWORD, gate
from threats.models import Signature, Status
from threats.tests.factories import make_family

pytestmark = pytest.mark.browser

BROKEN = """rule premium_sms_sender {
  strings:
    $send = "sendTextMessage"
  condition:
    $send and premium_numbers
}"""
FIXED = BROKEN.replace("$send and premium_numbers", "$send and android.permission_count > 0")


def test_researcher_writes_fixes_and_submits_reviewer_approves(
    page, login, browser, live_server, researcher: User, reviewer: User
) -> None:
    family = make_family(name="Joker")
    # given a researcher in the editor
    login(researcher)
    page.goto("/signatures/new/")
    page.select_option("#id_kind", "yara")
    page.select_option("#id_family", str(family.pk))
    # when they type a rule with a compile error on line 5
    page.fill("#id_body", BROKEN)
    page.press("#id_body", "End")
    # then the editor shows the error at its line, as they type
    error = page.locator("#errors li[data-line='5']")
    error.wait_for()
    assert "Line 5" in error.inner_text()
    assert "premium_numbers" in error.inner_text()
    # when they fix it, the error goes away
    page.fill("#id_body", FIXED)
    page.press("#id_body", "End")
    page.locator("#valid").wait_for()
    assert page.locator("#errors").count() == 0
    # and they save and submit it
    page.click("#save")
    page.wait_for_url("**/signatures/*/")
    sig = Signature.objects.get()
    page.click("button[value=submit]")
    page.locator("#status", has_text="In review").wait_for()
    # the author finds no approve action ...
    assert page.locator("button[value=approve]").count() == 0
    # ... and the API refuses it too
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    refused = page.request.post(
        f"/api/v1/signatures/{sig.pk}/approve/", headers={"X-CSRFToken": csrf}, data={}
    )
    assert refused.status == 403
    assert refused.json()["message"]
    gate(sig)  # the clean-corpus gate: a real retro-hunt (of no samples here)

    # a reviewer, in their own browser session, approves it
    context = browser.new_context(base_url=live_server.url)
    try:
        other = context.new_page()
        other.goto("/accounts/login/")
        other.fill("#id_username", reviewer.username)
        other.fill("#id_password", PASSWORD)
        other.click("button[type=submit]")
        other.wait_for_url(lambda url: "/accounts/login/" not in url)
        other.goto("/signatures/review/")
        other.click(f"text={sig.name}")
        other.fill("form:has(button[value=approve]) input[name=reason]", "premium SMS, confirmed")
        other.click("button[value=approve]")
        other.locator("#status", has_text="Deployed").wait_for()
    finally:
        context.close()
    sig.refresh_from_db()
    assert sig.status == Status.DEPLOYED
    assert sig.deployed_revision is not None
    assert sig.deployed_revision.reviewed_by == reviewer
