"""Hostile input gets a 4xx a person understands, never a 500: ids and integers the database
cannot hold or int() cannot read, JSON nested too deep, bodies too large (portal/params.py,
portal/parsers.py, portal/exceptions.py)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from portal.models import User
from portal.testing import CORPUS
from releases.services import device_register
from scans.models import Sample
from threats import services as threat_services
from threats.models import Family, Signature
from threats.tests.factories import make_family

pytestmark = pytest.mark.django_db

SMALL_APK = CORPUS / "apks" / "v1-only-with-rsa-pkcs1-sha256-1.2.840.113549.1.1.11-2048.apk"
FULLWIDTH_12 = "\uff11\uff12"  # str.isdigit() and int() accept it: 12
# over 2^63-1, 2^63 itself, negative, a superscript, fullwidth digits, a float, nothing
BAD_IDS = [
    "100000000000000000000",
    "9223372036854775808",
    "-1",
    "³",
    FULLWIDTH_12,
    "1e3",
    "",
]
HUGE = "99999999999999999999"
DEEP = 100_000


def _hash() -> str:
    return secrets.token_hex(32)


@pytest.fixture
def joker(db: None) -> Family:
    return make_family(name="Joker")


@pytest.fixture
def signature(researcher: User, joker: Family) -> Signature:
    return threat_services.signature_create(
        actor=researcher, kind="hash", body=_hash(), family=joker
    )


@pytest.fixture
def device_client(settings: Any) -> APIClient:
    settings.DEVICE_ENROLLMENT_KEY = "test-enrollment-key"
    enrolment = device_register(enrollment_key="test-enrollment-key")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {enrolment.token}")
    return client


def _json_error(response: Any, status: int | tuple[int, ...]) -> dict[str, Any]:
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["message"], str)
    assert body["message"]
    assert isinstance(body.get("extra", {}), dict)
    return dict(body)


# --- ids and integers in queries, forms and JSON -----------------------------------------------
def _sig_list(client: APIClient, value: str, **_: Any) -> Any:
    return client.get("/api/v1/signatures/", {"family": value})


def _sample_list(client: APIClient, value: str, **_: Any) -> Any:
    return client.get("/api/v1/samples/", {"family": value})


def _export(client: APIClient, value: str, **_: Any) -> Any:
    return client.get("/api/v1/signatures/export/", {"family": value, "format": "csv"})


def _bulk(client: APIClient, value: str, **_: Any) -> Any:
    return client.post(
        "/api/v1/signatures/bulk/", {"ids": [value], "action": "submit"}, format="json"
    )


def _hunt(client: APIClient, value: str, **_: Any) -> Any:
    return client.post("/api/v1/retrohunts/", {"signatures": [value]}, format="json")


def _create(client: APIClient, value: str, **_: Any) -> Any:
    body = {"kind": "hash", "body": _hash(), "family": value}
    return client.post("/api/v1/signatures/", body, format="json")


def _update(client: APIClient, value: str, *, signature: Signature) -> Any:
    return client.patch(f"/api/v1/signatures/{signature.pk}/", {"family": value}, format="json")


def _upload(client: APIClient, value: str, **_: Any) -> Any:
    data = {"file": SimpleUploadedFile("app.apk", SMALL_APK.read_bytes()), "family": value}
    return client.post("/api/v1/samples/", data, format="multipart")


# endpoint, and whether "" means "none" there: a list's filter form sends it for "any", and an
# empty optional form field is "not given" (DRF)
ID_ENDPOINTS: list[tuple[str, Callable[..., Any], bool]] = [
    ("signature list ?family=", _sig_list, True),
    ("sample list ?family=", _sample_list, True),
    ("signature export ?family=", _export, True),
    ("bulk ids", _bulk, False),
    ("retro-hunt signatures", _hunt, False),
    ("signature create family", _create, False),
    ("signature update family", _update, False),
    ("sample upload family", _upload, True),
]


@pytest.mark.parametrize("value", BAD_IDS)
@pytest.mark.parametrize(
    ("endpoint", "call", "blank_means_none"), ID_ENDPOINTS, ids=[e[0] for e in ID_ENDPOINTS]
)
def test_a_bad_id_is_a_400_naming_the_field_never_a_500(
    api: Callable[..., APIClient],
    reviewer: User,
    signature: Signature,
    endpoint: str,
    call: Callable[..., Any],
    blank_means_none: bool,
    value: str,
) -> None:
    # family 12 exists: fullwidth "12" read as 12 by int() would quietly find it (on PostgreSQL
    # the sequence is not reset between tests, so the signature's family may already be 12)
    if not Family.objects.filter(pk=12).exists():
        make_family(pk=12, name="Twelve")
    client = api(reviewer)
    client.raise_request_exception = False
    # when a client sends an id no table can hold, or digits int() cannot read
    response = call(client, value, signature=signature)
    # then it is told what is wrong with which field, in JSON
    if value == "" and blank_means_none:
        assert response.status_code in (200, 201), response.content[:300]
        return
    body = _json_error(response, 400)
    field = "ids" if "bulk" in endpoint else "signatures" if "hunt" in endpoint else "family"
    assert field in body["message"] or field in json.dumps(body["extra"])
    assert Signature.objects.count() == 1
    assert not Sample.objects.exists()


@pytest.mark.parametrize("value", [10**20, 2**63, -1, 0, 1000.0, True])
def test_json_numbers_as_ids_are_checked_too(
    api: Callable[..., APIClient], reviewer: User, value: Any
) -> None:
    client = api(reviewer)
    client.raise_request_exception = False
    bulk = client.post(
        "/api/v1/signatures/bulk/", {"ids": [value], "action": "submit"}, format="json"
    )
    assert "ids" in _json_error(bulk, 400)["message"]
    hunt = client.post("/api/v1/retrohunts/", {"signatures": [value]}, format="json")
    assert "signatures" in _json_error(hunt, 400)["message"]


def test_the_largest_id_is_accepted_and_simply_not_found(
    api: Callable[..., APIClient], reviewer: User
) -> None:
    response = api(reviewer).post(
        "/api/v1/signatures/bulk/", {"ids": [2**63 - 1], "action": "submit"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["succeeded"] == []
    assert [f["id"] for f in response.json()["failed"]] == [2**63 - 1]


@pytest.mark.parametrize("value", [*BAD_IDS, "1" * 5000])
def test_device_update_installed_must_be_a_release_number(
    device_client: APIClient, value: str
) -> None:
    device_client.raise_request_exception = False
    response = device_client.get("/api/v1/devices/update/", {"installed": value})
    assert "installed" in _json_error(response, 400)["message"]


def test_device_registration_refuses_an_engine_version_no_column_holds(
    api: Callable[..., APIClient], settings: Any
) -> None:
    settings.DEVICE_ENROLLMENT_KEY = "k"
    client = api()
    client.raise_request_exception = False
    response = client.post(
        "/api/v1/devices/register/", {"enrollment_key": "k", "engine_version": 10**20}
    )
    assert "engine_version" in _json_error(response, 400)["message"]


@pytest.mark.parametrize(
    "value", ["#100000000000000000000", "9223372036854775808", "#" + FULLWIDTH_12, "³"]
)
def test_searching_for_an_impossible_id_finds_nothing(
    api: Callable[..., APIClient], reviewer: User, signature: Signature, value: str
) -> None:
    response = api(reviewer).get("/api/v1/signatures/", {"q": value})
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_the_normal_ways_to_name_a_family_still_work(
    api: Callable[..., APIClient], reviewer: User, signature: Signature, joker: Family
) -> None:
    client = api(reviewer)
    for value in (str(joker.pk), "joker", " Joker "):
        response = client.get("/api/v1/signatures/", {"family": value})
        assert [r["id"] for r in response.json()["results"]] == [signature.pk], value
    created = client.post(
        "/api/v1/signatures/",
        {"kind": "hash", "body": _hash(), "family": joker.pk},
        format="json",
    )
    assert created.status_code == 201, created.json()


def test_a_normal_sample_upload_still_works(
    api: Callable[..., APIClient], researcher: User, joker: Family
) -> None:
    response = _upload(api(researcher), str(joker.pk))
    assert response.status_code == 201, response.json()
    assert Sample.objects.get().family == joker


# --- the pages ---------------------------------------------------------------------------------
@pytest.mark.parametrize("value", BAD_IDS)
def test_list_pages_show_a_bad_family_filter_instead_of_failing(
    client: Client, reviewer: User, signature: Signature, value: str
) -> None:
    client.force_login(reviewer)
    client.raise_request_exception = False
    for url in ("/signatures/", "/samples/"):
        response = client.get(url, {"family": value})
        assert response.status_code == 200, (url, response.status_code)
        if value:  # the filter's error is shown, and no rows
            assert b'<p class="error">' in response.content
            assert b"family" in response.content


@pytest.mark.parametrize("value", BAD_IDS)
def test_page_forms_refuse_bad_ids_with_a_message(
    client: Client, reviewer: User, signature: Signature, value: str
) -> None:
    client.force_login(reviewer)
    client.raise_request_exception = False
    bulk = client.post("/signatures/bulk/", {"ids": [value], "action": "submit"}, follow=True)
    assert bulk.status_code == 200
    assert any("ids" in str(m) for m in bulk.context["messages"])
    hunt = client.post("/retrohunts/", {"signatures": [value]}, follow=True)
    assert hunt.status_code == 200
    assert any("not started" in str(m) for m in hunt.context["messages"])
    editor = client.post("/signatures/new/", {"kind": "hash", "family": value, "body": _hash()})
    assert editor.status_code == 400
    assert b"Choose a family" in editor.content


@pytest.mark.parametrize("value", ["³", FULLWIDTH_12, "100000000000000000000", "-1", ""])
def test_the_rollout_form_refuses_a_bad_percent(client: Client, reviewer: User, value: str) -> None:
    from releases.models import Release
    from releases.pins import pack

    Release.objects.create(number=1, created_by=reviewer, pins=pack([]), state="published")
    client.force_login(reviewer)
    client.raise_request_exception = False
    response = client.post("/releases/1/rollout/", {"percent": value}, follow=True)
    assert response.status_code == 200
    assert any("percent" in str(m) for m in response.context["messages"])


# --- ids in paths ------------------------------------------------------------------------------
PATHS = [
    ("get", f"/api/v1/signatures/{HUGE}/"),
    ("get", f"/api/v1/signatures/{HUGE}/history/"),
    ("post", f"/api/v1/signatures/{HUGE}/submit/"),
    ("patch", f"/api/v1/signatures/{HUGE}/"),
    ("get", f"/api/v1/families/{HUGE}/"),
    ("get", f"/api/v1/scans/{HUGE}/"),
    ("get", f"/api/v1/retrohunts/{HUGE}/"),
    ("post", f"/api/v1/retrohunts/{HUGE}/cancel/"),
    ("get", f"/api/v1/releases/{HUGE}/"),
    ("post", f"/api/v1/releases/{HUGE}/rollout/"),
    ("post", f"/api/v1/releases/{HUGE}/halt/"),
    ("get", "/api/v1/signatures/9223372036854775808/"),
    ("get", "/api/v1/signatures/0/"),
]


@pytest.mark.parametrize(("method", "url"), PATHS)
def test_an_id_past_2_63_in_a_path_is_404_json(
    api: Callable[..., APIClient], admin_user: User, method: str, url: str
) -> None:
    client = api(admin_user)
    client.raise_request_exception = False
    response = getattr(client, method)(url, {"percent": 50}, format="json")
    _json_error(response, 404)


@pytest.mark.parametrize(
    "url",
    [f"/signatures/{HUGE}/", f"/families/{HUGE}/", f"/scans/{HUGE}/", f"/releases/{HUGE}/"],
)
def test_an_id_past_2_63_in_a_page_path_is_the_404_page(
    client: Client, admin_user: User, url: str
) -> None:
    client.force_login(admin_user)
    client.raise_request_exception = False
    assert client.get(url).status_code == 404


def test_links_to_objects_still_resolve(
    api: Callable[..., APIClient], reviewer: User, signature: Signature
) -> None:
    response = api(reviewer).get(f"/api/v1/signatures/{signature.pk}/")
    assert response.status_code == 200
    assert response.json()["url"] == f"/signatures/{signature.pk}/"


# --- JSON nested too deep ----------------------------------------------------------------------
def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_json_nested_100000_levels_is_a_400_not_a_recursion_error(
    api: Callable[..., APIClient], researcher: User, joker: Family
) -> None:
    client = api(researcher)
    client.raise_request_exception = False
    validate = client.post(
        "/api/v1/signatures/validate/",
        '{"kind": "behavior", "body": ' + _deep(DEEP) + "}",
        content_type="application/json",
    )
    body = _json_error(validate, 400)
    assert "levels deep" in body["message"]
    assert body["extra"] == {"max_depth": 64}
    create = client.post(
        "/api/v1/signatures/",
        '{"kind": "hash", "family": "Joker", "body": {"value": ' + _deep(DEEP) + "}}",
        content_type="application/json",
    )
    assert "levels deep" in _json_error(create, 400)["message"]
    objects = client.post(
        "/api/v1/retrohunts/",
        '{"rule": ' + '{"a":' * DEEP + "1" + "}" * DEEP + "}",
        content_type="application/json",
    )
    assert "levels deep" in _json_error(objects, 400)["message"]
    assert not Signature.objects.exists()


def test_brackets_inside_strings_do_not_count_as_depth(
    api: Callable[..., APIClient], researcher: User
) -> None:
    rule = 'rule deep { strings: $a = "' + "[{" * 5000 + '\\"]" condition: $a }'
    response = api(researcher).post(
        "/api/v1/signatures/validate/", {"kind": "yara", "body": rule}, format="json"
    )
    assert "levels deep" not in json.dumps(response.json())


def test_json_64_levels_deep_is_still_parsed(
    api: Callable[..., APIClient], researcher: User
) -> None:
    response = api(researcher).post(
        "/api/v1/signatures/validate/",
        '{"kind": "behavior", "body": ' + _deep(63) + "}",
        content_type="application/json",
    )
    assert response.status_code == 400  # not a valid behaviour rule, but parsed
    assert "levels deep" not in response.json()["message"]


def test_deep_json_in_the_editor_pages_is_shown_not_a_500(
    client: Client, researcher: User, joker: Family
) -> None:
    client.force_login(researcher)
    client.raise_request_exception = False
    live = client.post("/signatures/validate/", {"kind": "behavior", "body": _deep(DEEP)})
    assert live.status_code == 200
    assert b"levels deep" in live.content
    new = client.post(
        "/signatures/new/", {"kind": "behavior", "family": joker.pk, "body": _deep(DEEP)}
    )
    assert new.status_code == 400
    assert b"levels deep" in new.content
    hunt = client.post("/retrohunts/", {"kind": "behavior", "body": _deep(DEEP)}, follow=True)
    assert any("levels deep" in str(m) for m in hunt.context["messages"])


# --- bodies too large --------------------------------------------------------------------------
TEN_MB = json.dumps({"kind": "hash", "body": "x" * (10 * 1024 * 1024)})


@pytest.mark.parametrize(
    ("url", "who"),
    [
        ("/api/v1/signatures/validate/", "researcher"),
        ("/api/v1/signatures/", "researcher"),
        ("/api/v1/signatures/bulk/", "researcher"),
        ("/api/v1/retrohunts/", "researcher"),
        ("/api/v1/scans/", "researcher"),
        ("/api/v1/auth/token/", None),
        ("/api/v1/devices/register/", None),
    ],
)
def test_a_10_mb_json_body_is_413_json(
    api: Callable[..., APIClient], researcher: User, url: str, who: str | None
) -> None:
    client = api(researcher if who else None)
    client.raise_request_exception = False
    response = client.post(url, TEN_MB, content_type="application/json")
    body = _json_error(response, 413)
    assert "larger than 2.5 MB" in body["message"]
    assert body["extra"] == {"max_bytes": 2_621_440}


def test_a_large_form_body_on_the_api_is_413_json(
    api: Callable[..., APIClient], researcher: User
) -> None:
    client = api(researcher)
    client.raise_request_exception = False
    response = client.post(
        "/api/v1/signatures/validate/",
        "kind=hash&body=" + "x" * (3 * 1024 * 1024),
        content_type="application/x-www-form-urlencoded",
    )
    _json_error(response, 413)


def test_the_schema_documents_the_new_answers(
    api: Callable[..., APIClient], admin_user: User
) -> None:
    schema = api(admin_user).get("/api/schema/", {"format": "json"}).json()
    create = schema["paths"]["/api/v1/signatures/"]["post"]["responses"]
    assert {"400", "413"} <= set(create)
    token = schema["paths"]["/api/v1/auth/token/"]["post"]["responses"]
    assert {"401", "413", "429"} <= set(token)
    detail = schema["paths"]["/api/v1/signatures/{id}/"]["get"]["parameters"]
    assert detail[0]["schema"]["maximum"] == 2**63 - 1
    bulk = schema["components"]["schemas"]["BulkInputRequest"]["properties"]["ids"]["items"]
    assert bulk["maximum"] == 2**63 - 1
