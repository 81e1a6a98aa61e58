"""Model managers for accounts: creating users and finding them by email."""

from django.contrib.auth.base_user import BaseUserManager
from django.utils import timezone

from accounts.email_address import InvalidEmailAddress, normalize_email


class UserManager(BaseUserManager):
    use_in_migrations = True

    def get_by_natural_key(self, email):
        """Case-insensitive and normalisation-aware, so sign-in and admin agree."""
        try:
            canonical = normalize_email(email)
        except InvalidEmailAddress:
            raise self.model.DoesNotExist from None
        return self.get(email=canonical)

    def find_by_email(self, email: str):
        """The user with this address, or None (also for input that is not an address)."""
        try:
            return self.get_by_natural_key(email)
        except self.model.DoesNotExist:
            return None

    def _create_user(self, email, password, **extra_fields):
        user = self.model(email=normalize_email(email), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        # Whoever runs createsuperuser controls the address by definition.
        extra_fields.setdefault("email_verified_at", timezone.now())
        if extra_fields["is_staff"] is not True or extra_fields["is_superuser"] is not True:
            raise ValueError("A superuser must have is_staff=True and is_superuser=True.")
        return self._create_user(email, password, **extra_fields)
