from __future__ import annotations

import pytest
from django.test import Client

from portal.audit import audit_log
from portal.models import AuditEntry, User
from portal.services import user_set_roles


def test_an_audited_action_writes_one_row_with_its_diff(admin_user: User, make_user) -> None:
    # given a researcher
    target = make_user("researcher", username="newbie")
    before = AuditEntry.objects.count()
    # when an admin makes them a reviewer too
    user_set_roles(user=target, roles=["researcher", "reviewer"], actor=admin_user)
    # then exactly one audit row says who did what, with the field-level change
    assert AuditEntry.objects.count() == before + 1
    entry = AuditEntry.objects.latest("id")
    assert entry.actor == admin_user
    assert entry.action == "user.roles"
    assert entry.object_type == "portal.user"
    assert entry.object_id == str(target.pk)
    assert entry.changes == {
        "roles": {"before": ["researcher"], "after": ["researcher", "reviewer"]}
    }


def test_audit_rows_cannot_be_changed_or_deleted(admin_user: User) -> None:
    entry = audit_log(actor=admin_user, action="test.action", object_type="x", reason="why")
    entry.reason = "rewritten"
    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        entry.delete()
    with pytest.raises(PermissionError):
        AuditEntry.objects.filter(pk=entry.pk).update(reason="x")
    with pytest.raises(PermissionError):
        AuditEntry.objects.filter(pk=entry.pk).delete()
    assert AuditEntry.objects.get(pk=entry.pk).reason == "why"


def test_audit_records_the_source_ip(client: Client, researcher: User) -> None:
    client.post(
        "/accounts/login/",
        {"username": researcher.username, "password": "bad"},
        REMOTE_ADDR="203.0.113.9",
    )
    entry = AuditEntry.objects.get(action="login.failed")
    assert entry.source_ip == "203.0.113.9"
    assert entry.actor is None


def test_audit_page_filters_by_actor_object_type_action_and_date(
    client: Client, auditor: User, admin_user: User, researcher: User
) -> None:
    audit_log(actor=admin_user, action="family.create", object_type="threats.family", reason="a")
    audit_log(actor=researcher, action="signature.submit", object_type="threats.signature")
    client.force_login(auditor)

    by_actor = client.get("/audit/", {"actor": researcher.username})
    rows = list(by_actor.context["page"])
    assert [r.action for r in rows] == ["signature.submit"]

    by_type = client.get("/audit/", {"object_type": "threats.family"})
    assert [r.action for r in by_type.context["page"]] == ["family.create"]

    by_action = client.get("/audit/", {"action": "family.create"})
    assert [r.actor_name for r in by_action.context["page"]] == [admin_user.username]

    future = client.get("/audit/", {"date_from": "2999-01-01"})
    assert list(future.context["page"]) == []
    assert b"No audit entries match." in future.content


def test_audit_page_htmx_request_returns_only_the_rows(client: Client, auditor: User) -> None:
    client.force_login(auditor)
    response = client.get("/audit/", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert b"<html" not in response.content
    assert b"<table>" in response.content


def test_admin_cannot_change_audit_rows_in_django_admin(client: Client, admin_user: User) -> None:
    entry = audit_log(actor=admin_user, action="test.action", object_type="x")
    client.force_login(admin_user)
    listing = client.get("/admin/portal/auditentry/")
    assert listing.status_code == 200
    assert client.get(f"/admin/portal/auditentry/{entry.pk}/delete/").status_code == 403
    response = client.post(f"/admin/portal/auditentry/{entry.pk}/change/", {"reason": "x"})
    assert response.status_code == 403
    assert AuditEntry.objects.get(pk=entry.pk).reason == ""


def test_audit_page_shows_changes_as_people_read_them(
    client: Client, auditor: User, admin_user: User, make_user
) -> None:
    target = make_user("researcher", username="newcomer")
    user_set_roles(user=target, roles=["researcher", "reviewer"], actor=admin_user)
    client.force_login(auditor)
    html = client.get("/audit/", {"actor": admin_user.username}).content.decode()
    assert "<del>researcher</del> → <ins>researcher, reviewer</ins>" in html
