"""Halting a release asks first, and asks why: in Chromium the halt button opens a dialog, Cancel
leaves the release as it was, and a halt with a reason stops the release and puts the reason in
the audit log. The API and the page refuse a halt without a reason."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from portal.models import AuditEntry, User
from releases.models import Release
from releases.services import release_build, release_publish
from releases.tests.conftest import SignatureMaker
from releases.tuf_repo import UpdateRepository

REASON = "false positives on com.example.bank reported by 40 phones"


@pytest.fixture
def release(signatures: SignatureMaker, reviewer: User, update_repo: UpdateRepository) -> Release:
    signatures.deploy()
    return release_build(number=release_publish(by=reviewer, enqueue=False).number)


def _halts() -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action="release.halt"))


@pytest.mark.django_db
@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}])
def test_the_api_refuses_a_halt_without_a_reason(
    release: Release, reviewer: User, api: Any, body: dict[str, str]
) -> None:
    # when a reviewer halts release 1 by API without saying why
    answer = api(reviewer).post(f"/api/v1/releases/{release.number}/halt/", body, format="json")
    # then they are told what is missing, and nothing is halted or audited
    assert answer.status_code == 400
    assert "reason" in answer.json()["extra"]["fields"]
    assert not Release.objects.get(number=release.number).halted
    assert _halts() == []


@pytest.mark.django_db
def test_a_halt_by_api_records_its_reason(release: Release, reviewer: User, api: Any) -> None:
    client: APIClient = api(reviewer)
    answer = client.post(f"/api/v1/releases/{release.number}/halt/", {"reason": REASON})
    assert answer.status_code == 200
    assert answer.json()["halted"] is True
    [entry] = _halts()
    assert (entry.actor, entry.reason) == (reviewer, REASON)


@pytest.mark.django_db
def test_the_page_refuses_a_halt_without_a_reason(
    release: Release, reviewer: User, client: Any
) -> None:
    client.force_login(reviewer)
    url = f"/releases/{release.number}/rollout/"
    answer = client.post(url, {"halt": "1", "reason": " "}, follow=True)
    assert "Say why the release is halted" in answer.content.decode()
    assert not Release.objects.get(number=release.number).halted
    assert _halts() == []


@pytest.mark.browser
@pytest.mark.integration
def test_halting_asks_for_confirmation_and_a_reason(
    page: Any, login: Any, reviewer: User, release: Release, make_user: Any
) -> None:
    # given a reviewer on a published release's page
    login(reviewer)
    page.goto(f"/releases/{release.number}/")
    dialog = page.locator("#halt-dialog")
    assert not dialog.is_visible()
    # when they press Halt, a dialog asks them to confirm and to say why
    page.click("#halt-open")
    assert dialog.is_visible()
    assert f"Halt release {release.number}?" in dialog.inner_text()
    # and when they cancel, nothing happens
    dialog.locator("button", has_text="Cancel").click()
    assert not dialog.is_visible()
    assert not Release.objects.get(number=release.number).halted
    assert _halts() == []
    # when they confirm without a reason, the dialog stays open and the release is not halted
    page.click("#halt-open")
    page.click(".halt-form button[name=halt]")
    assert dialog.is_visible()
    assert page.locator("#halt-reason").evaluate("el => el.validity.valueMissing")
    assert not Release.objects.get(number=release.number).halted
    # when they give a reason and confirm, the release is halted
    page.fill("#halt-reason", REASON)
    page.click(".halt-form button[name=halt]")
    page.wait_for_selector("ul.messages")
    assert f"Release {release.number} is halted." in page.inner_text("ul.messages")
    assert "halted" in page.inner_text("dl.release-facts")
    assert page.locator("#halt-open").count() == 0
    # and the reason is in the audit log, where an auditor reads it
    assert [e.reason for e in _halts()] == [REASON]
    auditor = make_user("auditor", username="a.auditor")
    page.context.clear_cookies()
    login(auditor)
    page.goto("/audit/?action=release.halt")
    row = page.inner_text("#audit-rows tbody")
    assert REASON in row
    assert reviewer.username in row
