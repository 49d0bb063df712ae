"""The signature pages: right role for each, useful content, never a 500."""

import io
import secrets

import pytest

from portal.testing import gate
from threats import services
from threats.models import Signature, Status
from threats.tests.factories import make_family

pytestmark = pytest.mark.django_db

YARA_OK = 'rule sms_sender {\n  strings:\n    $a = "sendTextMessage"\n  condition:\n    $a\n}\n'


def draft(author, **kwargs):
    return services.signature_create(
        actor=author,
        kind=kwargs.pop("kind", "hash"),
        body=kwargs.pop("body", secrets.token_hex(32)),
        family=make_family(name="Joker"),
        **kwargs,
    )


def login(client, user):
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/signatures/", {"researcher", "reviewer", "admin", "auditor"}),
        ("/signatures/new/", {"researcher", "reviewer", "admin"}),
        ("/signatures/review/", {"reviewer", "admin"}),
        ("/signatures/import/", {"researcher", "reviewer", "admin"}),
        ("/families/", {"researcher", "reviewer", "admin", "auditor"}),
        ("/families/{fam}/", {"researcher", "reviewer", "admin", "auditor"}),
        ("/signatures/{sig}/", {"researcher", "reviewer", "admin", "auditor"}),
        ("/signatures/{sig}/edit/", {"researcher", "reviewer", "admin"}),
    ],
)
def test_each_page_needs_its_role(client, role_users, path, allowed):
    sig = draft(role_users["researcher"])
    url = path.format(fam=sig.family_id, sig=sig.pk)
    for role, user in role_users.items():
        response = login(client, user).get(url)
        assert response.status_code == (200 if role in allowed else 403), (role, url)


def test_anonymous_is_sent_to_log_in(client):
    response = client.get("/signatures/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_unknown_signature_and_family_are_404_pages(client, auditor):
    login(client, auditor)
    assert client.get("/signatures/999999/").status_code == 404
    assert client.get("/families/999999/").status_code == 404


def test_list_shows_filters_search_and_pagination(client, researcher):
    for _ in range(55):
        draft(researcher)
    indicator = draft(researcher, kind="indicator", body="premium-billing.example")
    login(client, researcher)
    page = client.get("/signatures/").content.decode()
    assert "page 1 of 2 · 56 signature(s)" in page
    found = client.get("/signatures/", {"q": "premium-billing"}).content.decode()
    assert indicator.name in found
    assert "1 signature(s)" in found
    # the htmx request gets the rows alone
    rows = client.get("/signatures/", {"kind": "indicator"}, HTTP_HX_REQUEST="true")
    assert b"<h1>" not in rows.content
    assert indicator.name.encode() in rows.content
    bad = client.get("/signatures/", {"status": "nonsense"})
    assert bad.status_code == 200
    assert b"Select a valid choice" in bad.content


def test_list_page_has_no_n_plus_1(client, researcher, django_assert_max_num_queries):
    for _ in range(50):
        sig = draft(researcher)
        services.signature_update(signature=sig, actor=researcher, tags=["x", "y"])
    login(client, researcher)
    client.get("/signatures/")  # session and roles warm
    with django_assert_max_num_queries(12):
        response = client.get("/signatures/")
    assert response.content.count(b'class="mono">Andr.SmsFraud.Joker-') == 50


def test_signature_page_highlights_and_shows_history_and_samples(client, researcher, reviewer):
    sha = "ab" * 32
    sig = draft(researcher, kind="yara", body=YARA_OK, linked_samples=[sha])
    services.signature_submit(signature=sig, actor=researcher)
    gate(sig)
    services.signature_approve(signature=sig, actor=reviewer, comment="fine")
    services.signature_update(
        signature=sig, actor=researcher, body=YARA_OK.replace("sendTextMessage", "abortBroadcast")
    )
    login(client, researcher)
    page = client.get(f"/signatures/{sig.pk}/").content.decode()
    assert 'class="code"' in page  # Pygments
    assert f'href="/samples/{sha}/"' in page
    assert "approved by vera" in page
    assert "abortBroadcast" in page
    assert 'class="del">-    $a = &quot;sendTextMessage&quot;' in page
    assert "keeps shipping until this one is approved" in page


def test_status_actions_follow_the_role_and_four_eyes(client, researcher, reviewer, auditor):
    sig = draft(researcher)
    services.signature_submit(signature=sig, actor=researcher)
    url = f"/signatures/{sig.pk}/"
    author_page = login(client, researcher).get(url).content.decode()
    assert "Approve" not in author_page
    reviewer_page = login(client, reviewer).get(url).content.decode()
    assert "Approve" in reviewer_page
    assert "Reject" in reviewer_page
    auditor_page = login(client, auditor).get(url).content.decode()
    assert "No action for your role" in auditor_page
    # the author posting the approve form anyway is refused, with a message, not a 500
    response = login(client, researcher).post(f"{url}approve/", follow=True)
    assert response.status_code == 200
    assert b"Only a reviewer may approve" in response.content
    sig.refresh_from_db()
    assert sig.status == Status.IN_REVIEW
    gate(sig)
    response = login(client, reviewer).post(f"{url}approve/", {"reason": "ok"}, follow=True)
    assert b"approve done" in response.content
    sig.refresh_from_db()
    assert sig.status == Status.DEPLOYED


def test_editor_creates_a_draft_and_shows_errors(client, researcher):
    family = make_family(name="Joker")
    login(client, researcher)
    bad = client.post(
        "/signatures/new/",
        {"kind": "yara", "family": family.pk, "body": "rule x { condition: nope }"},
    )
    assert bad.status_code == 400
    assert b"not valid" in bad.content
    ok = client.post(
        "/signatures/new/", {"kind": "yara", "family": family.pk, "body": YARA_OK, "tags": "sms"}
    )
    assert ok.status_code == 302
    sig = Signature.objects.get()
    assert ok["Location"] == f"/signatures/{sig.pk}/"
    # the same body again: refused with a link to the first
    dup = client.post("/signatures/new/", {"kind": "yara", "family": family.pk, "body": YARA_OK})
    assert f'href="/signatures/{sig.pk}/"'.encode() in dup.content
    for payload in (
        {"kind": "nope", "family": family.pk, "body": "x"},
        {"kind": "hash", "family": "999", "body": "x"},
        {"kind": "hash", "family": "abc", "body": "{"},
    ):
        response = client.post("/signatures/new/", payload)
        assert response.status_code == 400, payload


def test_validate_fragment_marks_the_line(client, researcher):
    login(client, researcher)
    body = 'rule x {\n  strings:\n    $a = "x"\n  condition:\n    $a and foo\n}\n'
    fragment = client.post("/signatures/validate/", {"kind": "yara", "body": body})
    text = fragment.content.decode()
    assert 'data-line="5"' in text
    assert "Line 5, column 12" in text
    assert "$a and foo" in text
    ok = client.post("/signatures/validate/", {"kind": "yara", "body": YARA_OK})
    assert b"Valid" in ok.content
    unknown = client.post("/signatures/validate/", {"kind": "zzz", "body": "x"})
    assert b"Unknown signature kind" in unknown.content


def test_import_page_shows_the_summary(client, researcher):
    login(client, researcher)
    upload = io.BytesIO(f"{'c' * 64}:1:Andr.X.Y\n{'d' * 64}:1:Andr.X.Z\nbad line\n".encode())
    upload.name = "feed.hdb"
    response = client.post("/signatures/import/", {"files": [upload]})
    page = response.content.decode()
    assert response.status_code == 200
    assert '<dd id="imported">2</dd>' in page
    assert "Invalid, by reason" in page
    empty = client.post("/signatures/import/", {})
    assert empty.status_code == 400


def test_bulk_from_the_list(client, researcher):
    sigs = [draft(researcher) for _ in range(3)]
    login(client, researcher)
    response = client.post(
        "/signatures/bulk/",
        {"action": "submit", "ids": [s.pk for s in sigs], "next": "/signatures/"},
        follow=True,
    )
    assert b"submit: 3 signature(s) done." in response.content
    assert Signature.objects.filter(status=Status.IN_REVIEW).count() == 3
    refused = client.post("/signatures/bulk/", {"action": "approve", "ids": [sigs[0].pk]})
    assert refused.status_code == 302  # back to the list, with a message


def test_review_queue_leaves_out_own_work(client, reviewer, make_user):
    other = make_user("researcher", username="someone")
    theirs = draft(other)
    services.signature_submit(signature=theirs, actor=other)
    mine = draft(reviewer)
    services.signature_submit(signature=mine, actor=reviewer)
    page = login(client, reviewer).get("/signatures/review/").content.decode()
    assert theirs.name in page
    assert mine.name not in page
    assert "1 more are your own work" in page


def test_family_pages(client, researcher, auditor):
    login(client, researcher)
    created = client.post(
        "/families/", {"name": "Harly", "category": "sms-fraud", "severity": "malicious"}
    )
    assert created.status_code == 302
    bad = client.post("/families/", {"name": "not camel", "category": "x", "severity": "y"})
    assert bad.status_code == 400
    listing = client.get("/families/").content.decode()
    assert "Harly" in listing
    assert login(client, auditor).post("/families/", {"name": "Xx"}).status_code == 403
