"""The demo seed: families for every threat of DESIGN.md, every kind, deployed for real."""

from collections import Counter

import pytest

from portal.models import AuditEntry
from threats import demo
from threats import public as api
from threats.models import Family, Signature, Status

pytestmark = pytest.mark.django_db


def test_seed_deploys_every_kind_through_the_workflow_and_is_idempotent(role_users):
    users = {
        "researcher": role_users["researcher"],
        "reviewer": role_users["reviewer"],
        "admin": role_users["admin"],
        "auditor": role_users["auditor"],
    }
    demo.seed(users)
    demo.seed(users)  # again: nothing new
    assert Family.objects.count() == len(demo.FAMILIES)
    assert Signature.objects.count() == len(demo.SIGNATURES)
    by_kind = Counter(Signature.objects.values_list("kind", flat=True))
    assert set(by_kind) == {"hash", "package_cert", "yara", "behavior", "indicator"}
    assert min(by_kind.values()) >= 4
    assert set(Signature.objects.values_list("status", flat=True)) == {Status.DEPLOYED}
    assert AuditEntry.objects.filter(action="signature.approve").count() == len(demo.SIGNATURES)
    assert len(api.deployed_records()) == len(demo.SIGNATURES)
    categories = set(Family.objects.values_list("category", flat=True))
    assert {"sms-fraud", "sms-stealer", "counterfeit-app", "phishing", "adware"} <= categories


def test_dashboard_shows_signature_counts(client, role_users):
    demo.seed(role_users)
    client.force_login(role_users["auditor"])
    page = client.get("/").content.decode()
    assert 'aria-label="Signatures"' in page
    assert f"{len(demo.SIGNATURES)} signature(s) · 0 waiting for review" in page


def test_admin_lists_threats_models(client, role_users):
    admin = role_users["admin"]
    admin.is_staff = True
    admin.save()
    client.force_login(admin)
    demo.seed(role_users)
    for path in ("family", "signature", "signaturerevision", "tag"):
        assert client.get(f"/admin/threats/{path}/").status_code == 200, path
