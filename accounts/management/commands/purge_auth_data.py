"""Delete expired and ended device sessions, spent link tokens, abandoned accounts, old ESP reports and audit events.

Safe to run from cron while the site serves: it deletes in small batches, each
in its own short transaction, and never touches a row that is still usable.
"""

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.db.models import Model, Q, QuerySet
from django.utils import timezone

from accounts.audit import EventKind, record_event
from accounts.models import (
    DeliveryEvent,
    DeviceSession,
    EmailSignInCode,
    EmailVerificationToken,
    KnownDevice,
    PasswordResetToken,
    PendingSignIn,
    RotatedRefreshToken,
    SecurityEvent,
    User,
    WebAuthnChallenge,
)


def delete_in_batches(queryset: QuerySet[Model], batch_size: int) -> int:
    """Delete what ``queryset`` selects, ``batch_size`` primary keys at a time."""
    model = queryset.model
    total = 0
    while True:
        batch = list(queryset.values_list("pk", flat=True)[:batch_size])
        if not batch:
            return total
        model._default_manager.filter(pk__in=batch).delete()
        total += len(batch)


def delete_abandoned_accounts(*, joined_before: datetime, batch_size: int) -> int:
    """Delete accounts nobody ever verified or signed in to, joined before ``joined_before``.

    Such an account may hold an address someone else typed (maybe on purpose,
    to wait for its owner): it must not keep the address for ever. Staff
    accounts are kept. Each deletion is in the audit log (a keyed hash of the
    address only), written in the transaction that deletes.
    """
    abandoned = User.objects.filter(
        email_verified_at__isnull=True,
        last_login__isnull=True,
        is_staff=False,
        is_superuser=False,
        date_joined__lt=joined_before,
    )
    total = 0
    while True:
        with transaction.atomic():
            batch = list(abandoned.select_for_update().values_list("pk", "email")[:batch_size])
            if not batch:
                return total
            for user_id, email in batch:
                record_event(kind=EventKind.ACCOUNT_DELETED, email=email, user_id=user_id, reason="never_verified")
            User.objects.filter(pk__in=[user_id for user_id, _ in batch]).delete()
        total += len(batch)


class Command(BaseCommand):
    help = (
        "Delete expired and long-ended device sessions, used or expired email-link tokens, accounts never "
        "verified nor signed in to after ACCOUNTS_UNVERIFIED_ACCOUNT_RETENTION_DAYS, the ESP's bounce and delivery "
        "reports after ACCOUNTS_EMAIL_KEEP_DAYS, and security events older than ACCOUNTS_AUDIT_RETENTION_DAYS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        now = timezone.now()
        keep_ended_since = now - timedelta(seconds=settings.ACCOUNTS_ENDED_SESSION_RETENTION)
        idle_cutoff = now - timedelta(seconds=settings.ACCOUNTS_REFRESH_IDLE_LIFETIME)
        # A session is kept while usable, and for the retention period after it
        # ended (so support and the user can still see it).
        dead_sessions = DeviceSession.objects.filter(
            Q(revoked_at__lt=keep_ended_since)
            | Q(revoked_at__isnull=True, expires_at__lt=keep_ended_since)
            | Q(revoked_at__isnull=True, last_used_at__lt=min(idle_cutoff, keep_ended_since))
        )
        # Rotated tokens matter only to detect reuse while their session lives.
        old_rotations = RotatedRefreshToken.objects.filter(
            rotated_at__lt=now - timedelta(seconds=settings.ACCOUNTS_REFRESH_ABSOLUTE_LIFETIME)
        )
        counts = {
            "rotated refresh tokens": delete_in_batches(old_rotations, batch_size),
            "device sessions": delete_in_batches(dead_sessions, batch_size),
            "unverified accounts never signed in to": delete_abandoned_accounts(
                joined_before=now - timedelta(days=settings.ACCOUNTS_UNVERIFIED_ACCOUNT_RETENTION_DAYS),
                batch_size=batch_size,
            ),
        }
        for model in (PasswordResetToken, EmailVerificationToken):
            spent = model.objects.filter(Q(used_at__isnull=False) | Q(expires_at__lt=now))
            counts[str(model._meta.verbose_name_plural)] = delete_in_batches(spent, batch_size)
        # A pending sign-in is over once it expires (completed ones expire too).
        counts["pending sign-ins"] = delete_in_batches(
            PendingSignIn.objects.filter(expires_at__lt=now - timedelta(hours=1)), batch_size
        )
        # A sign-in code is single use and lasts minutes: used or expired, it is kept for nothing.
        counts["email sign-in codes"] = delete_in_batches(
            EmailSignInCode.objects.filter(Q(used_at__isnull=False) | Q(expires_at__lt=now)), batch_size
        )
        # A passkey challenge is single use and lasts minutes: used or expired, it is kept for nothing.
        counts["passkey challenges"] = delete_in_batches(
            WebAuthnChallenge.objects.filter(Q(used_at__isnull=False) | Q(expires_at__lt=now)), batch_size
        )
        # An ESP's report matters while it may be sent again (hours) and while it counts toward
        # repeated soft bounces; what it did stays in the audit log and on the address.
        keep_reports_days = max(settings.ACCOUNTS_EMAIL_KEEP_DAYS, settings.ACCOUNTS_SOFT_BOUNCE_WINDOW_DAYS)
        counts["ESP delivery reports"] = delete_in_batches(
            DeliveryEvent.objects.filter(received_at__lt=now - timedelta(days=keep_reports_days)), batch_size
        )
        # A device unseen for longer than its cookie lasts can never be recognised again.
        counts["known devices"] = delete_in_batches(
            KnownDevice.objects.filter(last_seen_at__lt=now - timedelta(seconds=settings.ACCOUNTS_DEVICE_COOKIE_AGE)),
            batch_size,
        )
        audit_cutoff = now - timedelta(days=settings.ACCOUNTS_AUDIT_RETENTION_DAYS)
        counts["security events"] = delete_in_batches(
            SecurityEvent.objects.filter(created_at__lt=audit_cutoff), batch_size
        )
        for name, count in counts.items():
            self.stdout.write(f"Deleted {count} {name}.")
