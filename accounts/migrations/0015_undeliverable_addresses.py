"""Addresses mail does not reach and the ESP reports behind them (accounts.flows.deliverability); suppressed emails."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0014_support_may_view_the_outbox"),
    ]

    operations = [
        migrations.CreateModel(
            name="UndeliverableAddress",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("address", models.EmailField(editable=False, max_length=254, unique=True)),
                (
                    "reason",
                    models.CharField(
                        choices=[
                            ("hard_bounce", "Bounced: the mailbox does not exist"),
                            ("soft_bounces", "Bounced again and again (full or unavailable)"),
                            ("rejected", "Refused by the email provider"),
                            ("complaint", "Reported as spam by its owner"),
                        ],
                        editable=False,
                        max_length=16,
                    ),
                ),
                ("description", models.CharField(blank=True, editable=False, max_length=200)),
                ("marked_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
            ],
            options={
                "db_table": "undeliverable_addresses",
                "ordering": ["-marked_at"],
                "permissions": [("clear_undeliverable_address", "Can let email go to an undeliverable address again")],
            },
        ),
        migrations.AlterField(
            model_name="outboundemail",
            name="status",
            field=models.CharField(
                choices=[
                    ("queued", "Waiting to be sent"),
                    ("sending", "Being sent"),
                    ("sent", "Sent"),
                    ("failed", "Failed for good"),
                    ("suppressed", "Not sent: the address is undeliverable"),
                ],
                default="queued",
                editable=False,
                max_length=10,
            ),
        ),
        migrations.AlterField(
            model_name="securityevent",
            name="kind",
            field=models.CharField(
                choices=[
                    ("sign_up", "Account created"),
                    ("sign_up_existing", "Sign-up attempted with this address"),
                    ("sign_in_succeeded", "Signed in"),
                    ("sign_in_failed", "Sign-in failed"),
                    ("sign_out", "Signed out"),
                    ("refresh_reuse_detected", "Refresh token reuse detected"),
                    ("session_ended", "Session ended"),
                    ("password_reset_requested", "Password reset requested"),
                    ("password_reset_completed", "Password reset completed"),
                    ("password_changed", "Password changed"),
                    ("email_change_requested", "Email change requested"),
                    ("email_change_confirmed", "Email change confirmed"),
                    ("email_change_cancelled", "Email change cancelled or undone"),
                    ("email_verified", "Email address verified"),
                    ("account_deleted", "Account deleted"),
                    ("rate_limited", "Rate limited"),
                    ("staff_action", "Staff action"),
                    ("mfa_enabled", "Two-factor authentication turned on"),
                    ("mfa_disabled", "Two-factor authentication turned off"),
                    ("mfa_failed", "Wrong two-factor code"),
                    ("recovery_codes_regenerated", "New recovery codes made"),
                    ("recovery_code_used", "Recovery code used"),
                    ("passkey_added", "Passkey added"),
                    ("passkey_removed", "Passkey removed"),
                    ("passkey_renamed", "Passkey renamed"),
                    ("passkey_refused", "Passkey refused"),
                    ("social_connected", "Provider connected"),
                    ("social_disconnected", "Provider disconnected"),
                    ("social_failed", "Provider sign-in failed"),
                    ("email_undeliverable", "Email to the address bounced or was reported as spam"),
                    ("email_deliverable_again", "Email to the address allowed again"),
                ],
                max_length=32,
            ),
        ),
        migrations.CreateModel(
            name="DeliveryEvent",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("esp", models.CharField(editable=False, max_length=32)),
                ("event_id", models.CharField(editable=False, max_length=255)),
                ("address", models.EmailField(editable=False, max_length=254)),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("hard_bounce", "Hard bounce"),
                            ("soft_bounce", "Soft bounce"),
                            ("rejected", "Rejected"),
                            ("complaint", "Spam complaint"),
                            ("delivered", "Delivered"),
                            ("other", "Other"),
                        ],
                        editable=False,
                        max_length=16,
                    ),
                ),
                ("description", models.CharField(blank=True, editable=False, max_length=200)),
                ("occurred_at", models.DateTimeField(editable=False)),
                ("received_at", models.DateTimeField(default=django.utils.timezone.now, editable=False)),
            ],
            options={
                "db_table": "delivery_events",
                "ordering": ["-occurred_at"],
                "indexes": [models.Index(fields=["address", "kind", "occurred_at"], name="delivery_event_address_idx")],
                "constraints": [
                    models.UniqueConstraint(fields=("esp", "event_id", "address"), name="delivery_event_once")
                ],
            },
        ),
    ]
