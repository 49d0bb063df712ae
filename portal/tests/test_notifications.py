"""Notifications: the bell, the page, the API, and e-mail, each delivered once per key."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from portal.models import Notification
from portal.notifications import notify_role

pytestmark = pytest.mark.django_db


def halt_notice() -> Any:
    return notify_role(
        "reviewer",
        kind="release.auto_halt",
        key="release-halt:7",
        title="Release 7 was halted automatically",
        body="Signature 12 fired on a clean banking app on 40 devices.",
        url="/releases/7/",
    )


def test_a_notice_reaches_every_reviewer_once_even_when_sent_again(
    make_user: Any, mailoutbox: list[Any]
) -> None:
    vera = make_user("reviewer", username="vera", email="vera@example.org")
    make_user("reviewer", username="victor", email="victor@example.org")
    rita = make_user("researcher", username="rita", email="rita@example.org")
    first = halt_notice()
    # a retried task sends the same notice again
    again = halt_notice()
    assert (first.created, first.mailed) == (2, 2)
    assert (again.created, again.mailed) == (0, 0)
    assert sorted(m.to[0] for m in mailoutbox) == ["vera@example.org", "victor@example.org"]
    assert "http://127.0.0.1:8000/releases/7/" in mailoutbox[0].body
    assert Notification.objects.filter(recipient=vera).count() == 1
    assert not Notification.objects.filter(recipient=rita).exists()


def test_the_bell_counts_unread_and_the_page_lists_and_marks_them_read(reviewer: Any) -> None:
    halt_notice()
    client = Client()
    client.force_login(reviewer)
    dashboard = client.get("/").content.decode()
    assert 'aria-label="Notifications: 1 unread"' in dashboard
    page = client.get("/notifications/").content.decode()
    assert "Release 7 was halted automatically" in page
    assert 'href="/releases/7/"' in page
    client.post("/notifications/", {"action": "read-all"})
    assert 'aria-label="Notifications: 0 unread"' in client.get("/").content.decode()


def test_the_api_lists_only_the_callers_notifications_and_marks_them_read(
    api: Any, reviewer: Any, researcher: Any
) -> None:
    halt_notice()
    mine = api(reviewer).get("/api/v1/notifications/").json()
    assert mine["unread"] == 1
    assert mine["results"][0]["title"] == "Release 7 was halted automatically"
    assert api(researcher).get("/api/v1/notifications/").json() == {"unread": 0, "results": []}
    # someone else's notification id marks nothing
    other = api(researcher).post(
        "/api/v1/notifications/read/", {"ids": [mine["results"][0]["id"]]}, format="json"
    )
    assert other.json() == {"marked": 0}
    assert api(reviewer).post("/api/v1/notifications/read/", {}, format="json").json() == {
        "marked": 1
    }
    bad = api(reviewer).post("/api/v1/notifications/read/", {"ids": [2**64]}, format="json")
    assert bad.status_code == 400
    assert api(None).get("/api/v1/notifications/").status_code in (401, 403)
