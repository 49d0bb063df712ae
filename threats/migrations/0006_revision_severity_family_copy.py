# Every existing revision takes its signature's current severity and family (the only values
# there were): one UPDATE with correlated subqueries, however many revisions there are.

from typing import Any

from django.db import migrations
from django.db.models import OuterRef, Subquery


def copy_from_signature(apps: Any, schema_editor: Any) -> None:
    Signature = apps.get_model("threats", "Signature")
    SignatureRevision = apps.get_model("threats", "SignatureRevision")
    owner = Signature.objects.filter(pk=OuterRef("signature_id"))
    SignatureRevision.objects.filter(severity__isnull=True).update(
        severity=Subquery(owner.values("severity")[:1])
    )
    SignatureRevision.objects.filter(family__isnull=True).update(
        family_id=Subquery(owner.values("family_id")[:1])
    )


class Migration(migrations.Migration):
    dependencies = [
        ("threats", "0005_revision_severity_family"),
    ]

    operations = [
        migrations.RunPython(copy_from_signature, migrations.RunPython.noop, elidable=True),
    ]
