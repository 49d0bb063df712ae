"""The REST API: every endpoint for every role, errors as JSON, the workflow over HTTP."""

import json
import secrets

import pytest

from portal.testing import gate
from threats import services
from threats.models import Family, Signature, Status
from threats.tests.factories import make_family

pytestmark = pytest.mark.django_db

ROLES = ("researcher", "reviewer", "admin", "auditor")
YARA_OK = 'rule sms_sender {\n  strings:\n    $a = "sendTextMessage"\n  condition:\n    $a\n}\n'


def sha() -> str:
    return secrets.token_hex(32)


def run_hunt_here(hunt_id):
    from scans.models import RetroHunt
    from scans.retrohunts import retrohunt_chunk_run

    for chunk_id in RetroHunt.objects.get(pk=hunt_id).chunks.values_list("id", flat=True):
        retrohunt_chunk_run(chunk_id=chunk_id)


def new_draft(author):
    return services.signature_create(
        actor=author, kind="hash", body=sha(), family=make_family(name="Joker")
    )


def new_in_review(author):
    """Submitted, and through the clean-corpus gate (a real retro-hunt, here of no samples)."""
    sig = new_draft(author)
    services.signature_submit(signature=sig, actor=author)
    gate(sig)
    return sig


def new_deployed(author, reviewer):
    sig = new_in_review(author)
    return services.signature_approve(signature=sig, actor=reviewer)


# (method, path, payload, setup, {role: status}); setup(author, reviewer) -> signature or None
def matrix():
    ok_all = dict.fromkeys(ROLES, 200)
    writers = {"researcher": 201, "reviewer": 201, "admin": 201, "auditor": 403}
    reviewers = {"researcher": 403, "reviewer": 200, "admin": 200, "auditor": 403}
    return [
        ("get", "/api/v1/families/", None, None, ok_all),
        (
            "post",
            "/api/v1/families/",
            lambda: {
                "name": "Fam" + secrets.token_hex(3),
                "category": "adware",
                "severity": "riskware",
            },
            None,
            writers,
        ),
        ("get", "/api/v1/families/{fam}/", None, None, ok_all),
        (
            "patch",
            "/api/v1/families/{fam}/",
            lambda: {"description": "updated"},
            None,
            {**ok_all, "auditor": 403},
        ),
        ("get", "/api/v1/signatures/", None, None, ok_all),
        (
            "post",
            "/api/v1/signatures/",
            lambda: {"kind": "hash", "body": sha(), "family": "Joker"},
            None,
            writers,
        ),
        ("get", "/api/v1/signatures/{sig}/", None, new_draft, ok_all),
        (
            "patch",
            "/api/v1/signatures/{sig}/",
            lambda: {"description": "edited"},
            new_draft,
            {**ok_all, "auditor": 403},
        ),
        (
            "delete",
            "/api/v1/signatures/{sig}/",
            None,
            new_draft,
            {"researcher": 204, "reviewer": 403, "admin": 204, "auditor": 403},
        ),
        ("post", "/api/v1/signatures/{sig}/submit/", {}, new_draft, {**ok_all, "auditor": 403}),
        ("post", "/api/v1/signatures/{sig}/approve/", {}, new_in_review, reviewers),
        ("post", "/api/v1/signatures/{sig}/reject/", {"reason": "no"}, new_in_review, reviewers),
        ("post", "/api/v1/signatures/{sig}/noisy/", {"reason": "FP"}, new_deployed, reviewers),
        ("post", "/api/v1/signatures/{sig}/disable/", {"reason": "old"}, new_deployed, reviewers),
        ("get", "/api/v1/signatures/{sig}/history/", None, new_deployed, ok_all),
        ("post", "/api/v1/signatures/validate/", {"kind": "yara", "body": YARA_OK}, None, ok_all),
        ("get", "/api/v1/signatures/export/?format=csv", None, new_deployed, ok_all),
        (
            "post",
            "/api/v1/signatures/bulk/",
            lambda: {"ids": [1], "action": "disable", "reason": "x"},
            None,
            reviewers,
        ),
    ]


@pytest.mark.parametrize("role", ROLES)
def test_each_role_on_each_endpoint(role, api, make_user):
    # given a caller, the drafts' author (the caller when a researcher: their own drafts) and
    # a reviewer who is not the caller
    caller = make_user(role, username=f"caller-{role}")
    author = caller if role == "researcher" else make_user("researcher", username="author")
    other_reviewer = make_user("reviewer", username="other-reviewer")
    family = make_family(name="Joker")
    client = api(caller)
    for method, path, payload, setup, expected in matrix():
        sig = (
            setup(author, other_reviewer)
            if setup is new_deployed
            else (setup(author) if setup else None)
        )
        url = path.format(fam=family.pk, sig=sig.pk if sig else 0)
        data = payload() if callable(payload) else payload
        response = getattr(client, method)(url, data, format="json")
        assert response.status_code == expected[role], (role, method, path, response.content)
        if response.status_code == 403:
            assert response.json()["message"]


def test_a_researcher_cannot_edit_or_delete_anothers_draft(api, researcher, researcher2):
    sig = new_draft(researcher)
    client = api(researcher2)
    response = client.patch(f"/api/v1/signatures/{sig.pk}/", {"description": "x"}, format="json")
    assert response.status_code == 403
    assert client.delete(f"/api/v1/signatures/{sig.pk}/").status_code == 403
    assert client.post(f"/api/v1/signatures/{sig.pk}/submit/").status_code == 403


def test_anonymous_gets_json_401_or_403(api):
    response = api(None).get("/api/v1/signatures/")
    assert response.status_code in (401, 403)
    assert response.json()["message"]


def test_import_role_check(api, role_users, tmp_path):
    for role, expected in [("researcher", 200), ("auditor", 403)]:
        upload = tmp_path / f"{role}.hdb"
        upload.write_text(f"{sha()}:1234:Andr.Test.Import-{role}\n")
        with upload.open("rb") as f:
            response = api(role_users[role]).post(
                "/api/v1/signatures/import/", {"files": [f]}, format="multipart"
            )
        assert response.status_code == expected, response.content


def test_create_then_duplicate_is_409_with_a_link(api, researcher, researcher2):
    make_family(name="Joker")
    body = {"kind": "hash", "body": {"value": "AB" * 32, "target": "apk"}, "family": "joker"}
    first = api(researcher).post("/api/v1/signatures/", body, format="json")
    assert first.status_code == 201, first.content
    created = first.json()
    assert created["name"] == f"Andr.SmsFraud.Joker-{created['id']}-1"
    assert created["body"]["value"] == "ab" * 32
    second = api(researcher2).post("/api/v1/signatures/", body, format="json")
    assert second.status_code == 409
    assert second.json()["extra"]["existing"] == {
        "id": created["id"],
        "url": f"/signatures/{created['id']}/",
    }


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"kind": "bogus", "body": "x", "family": "Joker"}, "Unknown signature kind"),
        ({"kind": "hash", "body": "x", "family": "Nope"}, "Unknown family"),
        ({"kind": "hash", "body": "123", "family": "Joker"}, "not valid"),
        ({"kind": "hash", "family": "Joker"}, "body"),
        ({"kind": "hash", "body": sha(), "family": "Joker", "linked_samples": ["x"]}, "SHA-256"),
    ],
)
def test_bad_inputs_are_json_400(api, researcher, payload, needle):
    make_family(name="Joker")
    response = api(researcher).post("/api/v1/signatures/", payload, format="json")
    assert response.status_code == 400, response.content
    assert needle in response.json()["message"]


def test_body_not_json_is_a_json_400(api, researcher):
    response = api(researcher).post(
        "/api/v1/signatures/", data="{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["message"]


def test_unknown_signature_is_json_404(api, auditor):
    response = api(auditor).get("/api/v1/signatures/999999/")
    assert response.status_code == 404
    assert response.json()["message"] == "No such signature."


def test_bad_filter_is_json_400(api, auditor):
    response = api(auditor).get("/api/v1/signatures/", {"status": "bogus"})
    assert response.status_code == 400
    assert "status" in response.json()["message"]


def test_validate_reports_errors_with_line_and_column(api, researcher):
    rule = 'rule x {\n  strings:\n    $a = "x"\n  condition:\n    $a and foo\n}\n'
    response = api(researcher).post(
        "/api/v1/signatures/validate/", {"kind": "yara", "body": rule}, format="json"
    )
    assert response.status_code == 400
    data = response.json()
    assert data["valid"] is False
    assert data["errors"][0]["line"] == 5
    assert data["errors"][0]["column"] == 12
    assert data["message"]
    ok = api(researcher).post(
        "/api/v1/signatures/validate/", {"kind": "yara", "body": YARA_OK}, format="json"
    )
    assert ok.status_code == 200
    assert ok.json()["valid"] is True


def test_validate_errors_are_api_errors_like_every_other(api, researcher):
    """A body that does not compile answers {message, extra} like every error (and like
    signatures_create), so one error handler in a client reads both kinds of 400."""
    rule = "rule x { condition: foo }"
    client = api(researcher)

    broken = client.post(
        "/api/v1/signatures/validate/", {"kind": "yara", "body": rule}, format="json"
    ).json()
    missing = client.post("/api/v1/signatures/validate/", {}, format="json").json()

    assert broken["extra"]["errors"] == broken["errors"]
    assert broken["extra"]["warnings"] == broken["warnings"]
    assert broken["valid"] is False
    assert set(missing) == {"message", "extra"}
    assert "kind" in missing["extra"]["fields"]


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("post", "/api/v1/signatures/", {"kind": "yara", "family": "Joker"}),
        ("patch", "/api/v1/signatures/{pk}/", {}),
        ("post", "/api/v1/signatures/validate/", {"kind": "yara"}),
    ],
)
def test_a_body_with_a_nul_character_is_400_not_500(api, researcher, method, path, payload):
    """A valid YARA rule with U+0000 in a string reached the database: 500 on PostgreSQL
    (neither text nor jsonb holds NUL). Refused like NUL in any text field."""
    rule = 'rule nul { strings: $a = "\u0000" condition: $a }'
    sig = new_draft(researcher)
    client = api(researcher)
    client.raise_request_exception = False

    response = getattr(client, method)(
        path.format(pk=sig.pk), {**payload, "body": rule}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["extra"]["fields"] == {"body": ["Null characters are not allowed."]}
    assert Signature.objects.count() == 1


def test_every_family_answer_has_its_signature_count(api, researcher):
    """The list had signature_count and the schema required it; create, read and edit left
    it out (found by the schema contract run)."""
    client = api(researcher)

    created = client.post(
        "/api/v1/families/",
        {"name": "Harly", "category": "sms-stealer", "severity": "malicious"},
        format="json",
    )
    pk = created.json()["id"]
    services.signature_create(
        actor=researcher, kind="hash", body=sha(), family=Family.objects.get(pk=pk)
    )
    read = client.get(f"/api/v1/families/{pk}/")
    edited = client.patch(f"/api/v1/families/{pk}/", {"aliases": ["Harly2"]}, format="json")
    listed = client.get("/api/v1/families/").json()["results"]

    assert created.status_code == 201
    assert created.json()["signature_count"] == 0
    assert read.json()["signature_count"] == 1
    assert edited.json()["signature_count"] == 1
    assert [f["signature_count"] for f in listed if f["id"] == pk] == [1]


def test_author_cannot_approve_over_the_api(api, make_user):
    author = make_user("reviewer", username="writer-reviewer")
    sig = new_in_review(author)
    response = api(author).post(f"/api/v1/signatures/{sig.pk}/approve/", {}, format="json")
    assert response.status_code == 403
    assert "four eyes" in response.json()["message"]


def test_workflow_over_http_and_history(api, researcher, reviewer):
    make_family(name="Joker")
    created = (
        api(researcher)
        .post(
            "/api/v1/signatures/",
            {"kind": "yara", "body": YARA_OK, "family": "Joker"},
            format="json",
        )
        .json()
    )
    pk = created["id"]
    assert api(researcher).post(f"/api/v1/signatures/{pk}/submit/").status_code == 200
    refused = api(reviewer).post(f"/api/v1/signatures/{pk}/approve/", {}, format="json")
    assert refused.status_code == 409
    assert refused.json()["extra"]["gate"] == "not_gated"
    hunted = api(researcher).post("/api/v1/retrohunts/", {"signatures": [pk]}, format="json")
    assert hunted.status_code == 201
    run_hunt_here(hunted.json()["id"])
    approved = api(reviewer).post(
        f"/api/v1/signatures/{pk}/approve/", {"reason": "good"}, format="json"
    )
    assert approved.json()["status"] == "deployed"
    # editing a deployed signature makes revision 2 while revision 1 keeps shipping
    edited = (
        api(researcher)
        .patch(
            f"/api/v1/signatures/{pk}/",
            {"body": YARA_OK.replace("sendTextMessage", "SmsManager")},
            format="json",
        )
        .json()
    )
    assert edited["revision"] == 2
    assert edited["deployed_revision"] == 1
    assert edited["status"] == "deployed"
    history = api(researcher).get(f"/api/v1/signatures/{pk}/history/").json()
    assert [h["number"] for h in history] == [2, 1]
    assert history[1]["reviewed_by"] == "vera"
    assert '-    $a = "sendTextMessage"' in history[0]["diff"]
    assert '+    $a = "SmsManager"' in history[0]["diff"]


def test_reason_is_required_for_reject(api, researcher, reviewer):
    sig = new_in_review(researcher)
    response = api(reviewer).post(f"/api/v1/signatures/{sig.pk}/reject/", {}, format="json")
    assert response.status_code == 400
    assert "reason" in response.json()["message"]


def test_bulk_answers_which_succeeded(api, researcher, reviewer):
    sigs = [new_draft(researcher) for _ in range(3)]
    ids = [s.pk for s in sigs]
    response = api(researcher).post(
        "/api/v1/signatures/bulk/", {"ids": [*ids, 4242], "action": "submit"}, format="json"
    )
    assert response.status_code == 200
    assert response.json() == {
        "succeeded": ids,
        "failed": [{"id": 4242, "message": "No such signature."}],
    }
    gate(*sigs)
    response = api(reviewer).post(
        "/api/v1/signatures/bulk/", {"ids": ids, "action": "approve"}, format="json"
    )
    assert response.json()["succeeded"] == ids
    assert Signature.objects.filter(status=Status.DEPLOYED).count() == 3


def test_list_filters(api, researcher, reviewer):
    a = new_deployed(researcher, reviewer)
    b = new_draft(researcher)
    services.signature_update(signature=b, actor=researcher, tags=["otp"])
    fam = make_family(name="Harly", category="sms-stealer")
    c = services.signature_create(
        actor=reviewer, kind="indicator", body="premium-sms.example", family=fam
    )
    client = api(researcher)

    def ids(**params):
        return [r["id"] for r in client.get("/api/v1/signatures/", params).json()["results"]]

    assert ids() == [c.pk, b.pk, a.pk]
    assert ids(status="deployed") == [a.pk]
    assert ids(kind="indicator") == [c.pk]
    assert ids(family="harly") == [c.pk]
    assert ids(family=str(fam.pk)) == [c.pk]
    assert ids(author="vera") == [c.pk]
    assert ids(tag="otp") == [b.pk]
    assert ids(q="premium-sms") == [c.pk]
    assert ids(q=f"Andr.SmsStealer.Harly-{c.pk}-1") == [c.pk]
    assert ids(severity="riskware") == []


def test_list_has_no_n_plus_1(api, researcher, django_assert_max_num_queries):
    for _ in range(40):
        sig = new_draft(researcher)
        services.signature_update(signature=sig, actor=researcher, tags=["a", "b"])
    client = api(researcher)
    with django_assert_max_num_queries(8):
        response = client.get("/api/v1/signatures/")
    assert len(response.json()["results"]) == 40


def test_export_formats(api, researcher, reviewer):
    new_deployed(researcher, reviewer)
    client = api(researcher)
    stix = client.get("/api/v1/signatures/export/", {"format": "stix"})
    assert stix.status_code == 200
    bundle = json.loads(stix.content)
    assert bundle["type"] == "bundle"
    assert len(bundle["objects"]) == 1
    bad = client.get("/api/v1/signatures/export/", {"format": "pdf"})
    assert bad.status_code == 400
    assert bad.json()["message"] == "format must be yara, csv or stix."
