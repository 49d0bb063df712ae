"""Pages in a real browser (Playwright driving Debian's chromium)."""

from __future__ import annotations

import pytest

from portal.audit import audit_log
from portal.models import User
from portal.testing import PASSWORD

pytestmark = pytest.mark.browser


def test_login_lands_on_the_dashboard(page, researcher: User) -> None:
    page.goto("/")
    # an anonymous visitor is sent to the log-in page
    assert "/accounts/login/" in page.url
    page.fill("#id_username", researcher.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/")
    assert page.locator("h1").inner_text() == "Dashboard"
    assert page.get_by_role("region", name="System").is_visible()
    # researchers see no audit entry in the navigation
    assert page.locator("nav.areas a", has_text="Audit").count() == 0


def test_wrong_password_is_said_plainly(page, researcher: User) -> None:
    page.goto("/accounts/login/")
    page.fill("#id_username", researcher.username)
    page.fill("#id_password", "not it")
    page.click("button[type=submit]")
    assert page.get_by_role("alert").inner_text() == "Wrong username or password."


def test_auditor_filters_the_audit_page(page, login, auditor: User, admin_user: User) -> None:
    audit_log(actor=admin_user, action="family.create", object_type="threats.family")
    audit_log(actor=admin_user, action="user.roles", object_type="portal.user")
    login(auditor)
    page.click("nav.areas >> text=Audit")
    page.wait_for_url("**/audit/")
    assert page.locator("#audit-rows tbody tr").count() >= 2
    # choosing an action filters the rows in place (htmx), and the URL follows
    page.select_option("select[name=action]", "family.create")
    page.wait_for_url("**action=family.create**")
    rows = page.locator("#audit-rows tbody tr")
    assert rows.count() == 1
    assert "family.create" in rows.first.inner_text()


def test_navigation_fits_a_phone(browser, live_server, auditor: User) -> None:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844})
    pg = context.new_page()
    pg.goto("/accounts/login/")
    pg.fill("#id_username", auditor.username)
    pg.fill("#id_password", PASSWORD)
    pg.click("button[type=submit]")
    pg.wait_for_url("**/")
    # the page never scrolls sideways; the navigation scrolls within itself
    width = pg.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    assert pg.locator("nav.areas a", has_text="Audit").count() == 1
    context.close()
