"""The email outbox (accounts.outbox): one row per account email until it is sent or has failed."""

import uuid

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0012_social_identities"),
    ]

    operations = [
        migrations.CreateModel(
            name="OutboundEmail",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ("template", models.CharField(editable=False, max_length=64)),
                ("to", models.EmailField(editable=False, max_length=254)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("queued", "Waiting to be sent"),
                            ("sending", "Being sent"),
                            ("sent", "Sent"),
                            ("failed", "Failed for good"),
                        ],
                        default="queued",
                        editable=False,
                        max_length=8,
                    ),
                ),
                ("attempts", models.PositiveSmallIntegerField(default=0, editable=False)),
                ("next_attempt_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ("lease_until", models.DateTimeField(blank=True, editable=False, null=True)),
                ("content_encrypted", models.TextField(blank=True, editable=False)),
                ("content_key_id", models.CharField(blank=True, editable=False, max_length=16)),
                ("last_error", models.CharField(blank=True, editable=False, max_length=500)),
                ("provider_message_id", models.CharField(blank=True, editable=False, max_length=255)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ("sent_at", models.DateTimeField(blank=True, editable=False, null=True)),
                (
                    "send_after",
                    models.ForeignKey(
                        blank=True,
                        editable=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="accounts.outboundemail",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        editable=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "db_table": "outbound_emails",
                "ordering": ["-created_at"],
                "indexes": [
                    models.Index(fields=["status", "next_attempt_at"], name="outbound_email_due_idx"),
                    models.Index(fields=["to", "-created_at"], name="outbound_email_to_idx"),
                ],
            },
        ),
    ]
