"""Model managers for accounts: creating users and finding them by email."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.auth.base_user import BaseUserManager
from django.utils import timezone

from accounts.email_address import InvalidEmailAddress, normalize_email

if TYPE_CHECKING:
    from accounts.models import User


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def get_by_natural_key(self, email: str | None) -> User:
        """Case-insensitive and normalisation-aware, so sign-in and admin agree."""
        if email is None:
            raise self.model.DoesNotExist
        try:
            canonical = normalize_email(email)
        except InvalidEmailAddress:
            raise self.model.DoesNotExist from None
        return self.get(email=canonical)

    def find_by_email(self, email: str) -> User | None:
        """The user with this address, or None (also for input that is not an address)."""
        try:
            return self.get_by_natural_key(email)
        except self.model.DoesNotExist:
            return None

    def _create_user(self, email: str, password: str | None, **extra_fields: Any) -> User:
        user = self.model(email=normalize_email(email), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra_fields: Any) -> User:
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email: str, password: str | None = None, **extra_fields: Any) -> User:
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        # Whoever runs createsuperuser controls the address by definition.
        extra_fields.setdefault("email_verified_at", timezone.now())
        if extra_fields["is_staff"] is not True or extra_fields["is_superuser"] is not True:
            raise ValueError("A superuser must have is_staff=True and is_superuser=True.")
        return self._create_user(email, password, **extra_fields)
