"""Browsers and devices each account has signed in on (accounts.flows.known_devices), by the hash of their device cookie."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0016_support_may_clear_undeliverable_addresses"),
    ]

    operations = [
        migrations.CreateModel(
            name="KnownDevice",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("device_hash", models.CharField(editable=False, max_length=64)),
                ("user_agent", models.CharField(blank=True, editable=False, max_length=512)),
                ("first_seen_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ("last_seen_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                (
                    "user",
                    models.ForeignKey(
                        editable=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "db_table": "known_devices",
                "indexes": [models.Index(fields=["last_seen_at"], name="known_device_seen_idx")],
                "constraints": [models.UniqueConstraint(fields=("user", "device_hash"), name="known_device_once")],
            },
        ),
    ]
