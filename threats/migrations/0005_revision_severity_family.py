# Severity and family move onto the revision (what ships is what was reviewed).
# Three migrations: add the columns nullable, copy the values, then require them; each runs
# in its own transaction (PostgreSQL refuses ALTER TABLE with pending trigger events).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("threats", "0004_revision_gate_and_hit_stats"),
    ]

    operations = [
        migrations.AddField(
            model_name="signaturerevision",
            name="severity",
            field=models.CharField(
                choices=[
                    ("malicious", "Malicious"),
                    ("suspicious", "Suspicious"),
                    ("riskware", "Riskware"),
                ],
                max_length=16,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="signaturerevision",
            name="family",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="revisions",
                to="threats.family",
            ),
        ),
    ]
