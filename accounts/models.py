"""Account data: the custom user and the one-time tokens sent in email links."""

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.managers import UserManager


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in with an email address and a password."""

    # Stored in the canonical form of accounts.email_address.normalize_email.
    email = models.EmailField(
        "email address",
        max_length=254,
        unique=True,
        error_messages={"unique": "A user with this email address already exists."},
    )
    name = models.CharField("display name", max_length=150, blank=True)
    email_verified_at = models.DateTimeField("email verified at", null=True, blank=True)
    is_active = models.BooleanField(
        "active",
        default=True,
        help_text="Inactive users cannot sign in.",
    )
    is_staff = models.BooleanField(
        "staff status",
        default=False,
        help_text="Designates whether the user can sign in to the admin site.",
    )
    date_joined = models.DateTimeField("date joined", default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["name"]

    class Meta:
        verbose_name = "user"
        verbose_name_plural = "users"
        constraints = [
            # Addresses differing only in case are one account, whatever code
            # path writes the row.
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.name or self.email


class EmailLinkToken(models.Model):
    """A single-use secret sent by email; only its SHA-256 hash is stored."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{type(self).__name__} for user {self.user_id}"

    @property
    def is_expired(self) -> bool:
        return timezone.now() >= self.expires_at


class PasswordResetToken(EmailLinkToken):
    class Meta:
        db_table = "password_reset_tokens"
        indexes = [models.Index(fields=["user", "used_at"], name="reset_token_user_idx")]


class EmailVerificationToken(EmailLinkToken):
    # The address this token proves control of: the user's address at the time
    # it was sent, so a token sent before an address change cannot verify the
    # new one.
    email = models.EmailField(max_length=254)

    class Meta:
        db_table = "email_verification_tokens"
        indexes = [models.Index(fields=["user", "used_at"], name="verify_token_user_idx")]
