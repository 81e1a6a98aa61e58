"""Re-encrypt every second-factor secret under the first key of MFA_ENCRYPTION_KEYS."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.encryption import EncryptedSecret, SecretUnreadable, primary_key_id, reencrypt_secret
from accounts.models import TotpAuthenticator


class Command(BaseCommand):
    help = (
        "After putting a new key first in MFA_ENCRYPTION_KEYS: re-encrypt every TOTP secret under it, so the "
        "old keys can be removed. Safe to run again; rows already under the first key are left alone."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        primary = primary_key_id()
        stale = TotpAuthenticator.objects.exclude(secret_encrypted="").exclude(secret_key_id=primary)
        rotated = unreadable = 0
        for user_id in stale.values_list("user_id", flat=True).iterator():
            with transaction.atomic():
                row = TotpAuthenticator.objects.select_for_update().filter(user_id=user_id).first()
                if row is None or not row.secret_encrypted or row.secret_key_id == primary:
                    continue  # turned off or rotated meanwhile
                try:
                    fresh = reencrypt_secret(EncryptedSecret(key_id=row.secret_key_id, ciphertext=row.secret_encrypted))
                except SecretUnreadable:
                    unreadable += 1
                    continue
                row.secret_encrypted, row.secret_key_id = fresh.ciphertext, fresh.key_id
                row.save(update_fields=["secret_encrypted", "secret_key_id"])
                rotated += 1
        self.stdout.write(f"Re-encrypted {rotated} secret(s) under key {primary}.")
        if unreadable:
            raise CommandError(
                f"{unreadable} secret(s) could not be decrypted with any configured key: keep the key they need "
                "(their secret_key_id) in MFA_ENCRYPTION_KEYS, or reset those users' two-factor authentication."
            )
