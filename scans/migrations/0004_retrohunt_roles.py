from django.db import migrations

from portal.roles import grant, permissions_for_app


def grant_scans(apps, schema_editor):
    # idempotent: re-applies the scans part of ROLE_PERMISSIONS, now with retro-hunts
    grant(apps, permissions_for_app("scans"))


class Migration(migrations.Migration):
    dependencies = [("scans", "0003_retrohunts"), ("portal", "0002_roles")]

    operations = [migrations.RunPython(grant_scans, migrations.RunPython.noop)]
