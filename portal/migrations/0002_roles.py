from django.db import migrations

from portal.roles import grant


def create_roles(apps, schema_editor):
    grant(
        apps,
        {
            "researcher": [],
            "reviewer": [],
            "auditor": ["portal.view_auditentry", "portal.view_user"],
            "admin": [
                "portal.view_auditentry",
                "portal.add_user",
                "portal.change_user",
                "portal.view_user",
                "portal.view_apitoken",
                "portal.view_workerheartbeat",
                "auth.view_group",
                "auth.change_group",
            ],
        },
    )


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
