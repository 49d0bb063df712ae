"""Each role reaches what it may and gets 403 (or the log-in page) where it may not."""

from __future__ import annotations

import pytest
from django.test import Client

from portal.models import User

PAGES_BY_ROLE = {
    # path: roles allowed
    "/": {"researcher", "reviewer", "admin", "auditor"},
    "/audit/": {"admin", "auditor"},
}


@pytest.mark.parametrize("path", sorted(PAGES_BY_ROLE))
@pytest.mark.parametrize("role", ["researcher", "reviewer", "admin", "auditor"])
def test_each_role_reaches_only_its_pages(
    client: Client, role_users: dict[str, User], role: str, path: str
) -> None:
    # given a user of the role, logged in
    client.force_login(role_users[role])
    # when they open the page
    response = client.get(path)
    # then they see it, or a 403 page
    expected = 200 if role in PAGES_BY_ROLE[path] else 403
    assert response.status_code == expected


@pytest.mark.parametrize("role", ["researcher", "reviewer", "admin", "auditor"])
def test_only_admins_reach_the_django_admin(
    client: Client, role_users: dict[str, User], role: str
) -> None:
    client.force_login(role_users[role])
    response = client.get("/admin/")
    if role == "admin":
        assert response.status_code == 200
        assert b"Audit entries" in response.content
    else:
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/audit/", "/api/docs/"])
def test_every_page_but_login_needs_a_login(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.django_db
def test_login_page_is_open(client: Client) -> None:
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b'name="password"' in response.content


def test_user_without_role_gets_no_api(client: Client, make_user) -> None:
    nobody = make_user()
    client.force_login(nobody)
    response = client.get("/api/v1/auth/me/")
    assert response.status_code == 403
    assert "role" in response.json()["message"]


def test_navigation_shows_audit_only_to_those_who_may_read_it(
    client: Client, role_users: dict[str, User]
) -> None:
    client.force_login(role_users["researcher"])
    assert b'href="/audit/"' not in client.get("/").content
    client.force_login(role_users["auditor"])
    assert b'href="/audit/"' in client.get("/").content
