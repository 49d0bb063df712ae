from django.db import migrations

from portal.roles import grant, permissions_for_app


def grant_threats(apps, schema_editor):
    grant(apps, permissions_for_app("threats"))


class Migration(migrations.Migration):
    dependencies = [("threats", "0001_initial"), ("portal", "0002_roles")]

    operations = [migrations.RunPython(grant_threats, migrations.RunPython.noop)]
