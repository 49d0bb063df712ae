from django.db import migrations

from portal.roles import grant, permissions_for_app


def create_roles(apps, schema_editor):
    grants = permissions_for_app("portal")
    for role, perms in permissions_for_app("auth").items():
        grants[role] = grants[role] + perms
    grant(apps, grants)


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
