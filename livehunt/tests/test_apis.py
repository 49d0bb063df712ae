"""The livehunt REST API: CRUD of watch rules, their hits, roles, and JSON errors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from livehunt.models import WatchRule
from livehunt.services import sample_watch, watch_rule_create
from livehunt.tests.conftest import PACKAGE, YARA_MATCH, YARA_MISS

pytestmark = pytest.mark.django_db

RULES = "/api/v1/livehunt/rules/"


def test_a_researcher_creates_reads_changes_and_deletes_a_rule(api, researcher) -> None:
    client = api(researcher)
    expires = (timezone.now() + timedelta(days=7)).replace(microsecond=0)

    created = client.post(
        RULES,
        {"name": "tiny", "kind": "yara", "body": YARA_MATCH, "expires_at": expires.isoformat()},
        format="json",
    )
    assert created.status_code == 201, created.json()
    rule = created.json()
    assert rule["name"] == "tiny"
    assert rule["active"] is True
    assert rule["owner"] == researcher.username
    assert rule["url"] == f"/livehunt/{rule['id']}/"

    listed = client.get(RULES).json()
    assert [r["id"] for r in listed["results"]] == [rule["id"]]

    changed = client.patch(f"{RULES}{rule['id']}/", {"enabled": False}, format="json")
    assert changed.status_code == 200
    assert changed.json()["active"] is False
    assert changed.json()["version"] == 2

    assert client.delete(f"{RULES}{rule['id']}/").status_code == 204
    assert not WatchRule.objects.exists()


def test_invalid_input_is_a_json_error_with_a_human_message(api, researcher) -> None:
    client = api(researcher)
    bad = client.post(RULES, {"kind": "yara", "body": "rule x { condition: }"}, format="json")
    assert bad.status_code == 400
    assert "The yara rule is not valid" in bad.json()["message"]

    far = (timezone.now() + timedelta(days=400)).isoformat()
    too_far = client.post(
        RULES, {"kind": "yara", "body": YARA_MATCH, "expires_at": far}, format="json"
    )
    assert too_far.status_code == 400
    assert "within 365 days" in too_far.json()["message"]

    nothing = client.post(RULES, {}, format="json")
    assert nothing.status_code == 400
    assert nothing.json()["message"]


def test_auditors_read_every_rule_but_cannot_write(api, researcher, auditor) -> None:
    rule = watch_rule_create(user=researcher, kind="yara", body=YARA_MATCH)
    client = api(auditor)

    assert [r["id"] for r in client.get(RULES).json()["results"]] == [rule.pk]
    assert client.get(f"{RULES}{rule.pk}/").json()["webhook_url"] == ""
    refused = client.post(RULES, {"kind": "yara", "body": YARA_MATCH}, format="json")
    assert refused.status_code == 403
    assert refused.json()["message"]
    assert client.delete(f"{RULES}{rule.pk}/").status_code == 403


def test_others_rules_are_not_found_and_admins_may_change_them(
    api, researcher, researcher2, admin_user
) -> None:
    rule = watch_rule_create(user=researcher, kind="yara", body=YARA_MATCH)

    other = api(researcher2)
    assert other.get(RULES).json()["results"] == []
    missing = other.get(f"{RULES}{rule.pk}/")
    assert missing.status_code == 404
    assert missing.json()["message"] == f"No watch rule {rule.pk}."
    assert other.patch(f"{RULES}{rule.pk}/", {"enabled": False}, format="json").status_code == 404

    admin = api(admin_user)
    assert admin.patch(f"{RULES}{rule.pk}/", {"enabled": False}, format="json").status_code == 200


@pytest.mark.parametrize("rule_id", ["9223372036854775808", "99999999999999999999", "0"])
def test_ids_out_of_range_are_json_404s(api, researcher, rule_id) -> None:
    for path in (f"{RULES}{rule_id}/", f"{RULES}{rule_id}/hits/"):
        answer = api(researcher).get(path)
        assert answer.status_code == 404
        assert answer.json()["message"]


def test_the_hits_of_a_rule_are_listed_newest_first(api, researcher, scanned_sample) -> None:
    rule = watch_rule_create(user=researcher, kind="yara", body=YARA_MATCH)
    watch_rule_create(user=researcher, kind="yara", body=YARA_MISS)
    sample_watch(sample_id=scanned_sample.pk, scan_id=5)

    page = api(researcher).get(f"{RULES}{rule.pk}/hits/").json()

    assert page["count"] == 1
    (hit,) = page["results"]
    assert hit["sample"] == scanned_sample.sha256
    assert hit["package"] == PACKAGE
    assert hit["scan_id"] == 5
    assert hit["url"] == f"/samples/{scanned_sample.sha256}/"


def test_a_rule_from_a_draft_revision_by_api(api, researcher) -> None:
    from threats.tests.factories import make_signature

    signature = make_signature(kind="yara", body=YARA_MATCH, author=researcher)
    answer = api(researcher).post(
        RULES, {"revision_id": signature.current_revision_id}, format="json"
    )
    assert answer.status_code == 201, answer.json()
    assert answer.json()["source_signature_id"] == signature.pk
    assert answer.json()["kind"] == "yara"


def test_the_schema_declares_the_livehunt_operations() -> None:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]
    assert set(paths[RULES]) >= {"get", "post"}
    assert set(paths[RULES + "{rule_id}/"]) >= {"get", "patch", "delete"}
    hits = paths[RULES + "{rule_id}/hits/"]["get"]
    assert {"200", "403", "404"} <= set(hits["responses"])
