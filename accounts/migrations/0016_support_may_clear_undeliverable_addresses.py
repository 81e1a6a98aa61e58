"""Let the Support group see undeliverable addresses and let email go to them again."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

SUPPORT_GROUP = "Support"
PERMISSIONS = ["view_undeliverableaddress", "clear_undeliverable_address"]


def grant(apps, schema_editor):
    # Permissions are normally created after all migrations ran; this one needs it now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=SUPPORT_GROUP)
    group.permissions.add(*Permission.objects.filter(content_type__app_label="accounts", codename__in=PERMISSIONS))


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name=SUPPORT_GROUP).first()
    if group is not None:
        group.permissions.remove(
            *Permission.objects.filter(content_type__app_label="accounts", codename__in=PERMISSIONS)
        )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0015_undeliverable_addresses")]

    operations = [migrations.RunPython(grant, revoke)]
