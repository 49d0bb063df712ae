import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("threats", "0006_revision_severity_family_copy"),
    ]

    operations = [
        migrations.AlterField(
            model_name="signaturerevision",
            name="severity",
            field=models.CharField(
                choices=[
                    ("malicious", "Malicious"),
                    ("suspicious", "Suspicious"),
                    ("riskware", "Riskware"),
                ],
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="signaturerevision",
            name="family",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="revisions",
                to="threats.family",
            ),
        ),
    ]
