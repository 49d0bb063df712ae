"""The livehunt pages: a form for those who keep rules, read-only for auditors."""

from __future__ import annotations

import pytest

from livehunt.models import WatchRule
from livehunt.services import sample_watch, watch_rule_create
from livehunt.tests.conftest import YARA_MATCH

pytestmark = pytest.mark.django_db


def test_a_researcher_creates_a_rule_with_the_form(client, researcher) -> None:
    client.force_login(researcher)
    page = client.get("/livehunt/")
    assert page.status_code == 200
    assert b'id="watch-rule-form"' in page.content

    answer = client.post(
        "/livehunt/", {"name": "tiny", "kind": "yara", "body": YARA_MATCH, "days": "10"}
    )

    rule = WatchRule.objects.get()
    assert answer.status_code == 302
    assert answer["Location"] == f"/livehunt/{rule.pk}/"
    assert rule.owner == researcher
    assert rule.name == "tiny"


def test_a_bad_rule_keeps_the_form_and_says_why(client, researcher) -> None:
    client.force_login(researcher)
    answer = client.post("/livehunt/", {"kind": "yara", "body": "rule x {", "days": "10"})
    assert answer.status_code == 400
    assert b"The watch rule was not saved" in answer.content
    assert b"rule x {" in answer.content
    assert not WatchRule.objects.exists()


def test_auditors_read_the_pages_without_the_form_and_cannot_post(
    client, auditor, researcher, scanned_sample
) -> None:
    rule = watch_rule_create(user=researcher, kind="yara", body=YARA_MATCH, name="tiny")
    sample_watch(sample_id=scanned_sample.pk)
    client.force_login(auditor)

    listing = client.get("/livehunt/")
    assert listing.status_code == 200
    assert b"tiny" in listing.content
    assert b'id="watch-rule-form"' not in listing.content
    detail = client.get(f"/livehunt/{rule.pk}/")
    assert detail.status_code == 200
    assert scanned_sample.sha256[:12].encode() in detail.content
    assert client.post("/livehunt/", {"kind": "yara", "body": YARA_MATCH}).status_code == 403
    assert client.post(f"/livehunt/{rule.pk}/", {"action": "delete"}).status_code == 403


def test_the_owner_disables_and_deletes_from_the_rule_page(client, researcher) -> None:
    rule = watch_rule_create(user=researcher, kind="yara", body=YARA_MATCH)
    client.force_login(researcher)
    client.post(f"/livehunt/{rule.pk}/", {"action": "disable"})
    rule.refresh_from_db()
    assert not rule.enabled
    client.post(f"/livehunt/{rule.pk}/", {"action": "delete"})
    assert not WatchRule.objects.exists()


def test_the_navigation_links_livehunt(client, researcher) -> None:
    client.force_login(researcher)
    assert b'href="/livehunt/"' in client.get("/livehunt/").content


def test_the_pages_need_a_login_and_a_role(client, make_user) -> None:
    answer = client.get("/livehunt/")
    assert answer.status_code == 302
    assert answer["Location"].startswith("/accounts/login/?next=")
    client.force_login(make_user())  # no role
    assert client.get("/livehunt/").status_code == 403
    api = client.get("/api/v1/livehunt/rules/")
    assert api.status_code == 403
    assert api.json()["message"]
