from django.db import migrations

from portal.roles import grant, permissions_for_app


def grant_releases(apps, schema_editor):
    grant(apps, permissions_for_app("releases"))


class Migration(migrations.Migration):
    dependencies = [("releases", "0001_initial"), ("portal", "0002_roles")]

    operations = [migrations.RunPython(grant_releases, migrations.RunPython.noop)]
