"""The migration that moves severity and family onto revisions keeps what shipped."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("threats", "0004_revision_gate_and_hit_stats")]
AFTER = [("threats", "0007_revision_severity_family_required")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_every_existing_revision_takes_its_signatures_severity_and_family(make_user):
    # given a database from before the change: two revisions of a riskware Hiddad signature
    old = migrate(BEFORE)
    user = old.get_model("portal", "User").objects.get(pk=make_user("researcher").pk)
    family = old.get_model("threats", "Family").objects.create(
        name="Hiddad", category="adware", severity="riskware"
    )
    sig = old.get_model("threats", "Signature").objects.create(
        kind="hash", family=family, severity="suspicious", author=user, dedup_key="apk:x"
    )
    revision = old.get_model("threats", "SignatureRevision")
    for number in (1, 2):
        revision.objects.create(
            signature=sig, number=number, body={}, author=user, last_editor=user
        )
    try:
        # when the migrations run
        new = migrate(AFTER)
        # then each revision carries the signature's severity and family
        rows = new.get_model("threats", "SignatureRevision").objects.filter(signature_id=sig.pk)
        assert sorted(rows.values_list("number", "severity", "family_id")) == [
            (1, "suspicious", family.pk),
            (2, "suspicious", family.pk),
        ]
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
