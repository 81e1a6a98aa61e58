"""The password policy and the one place a password is set."""

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError

from accounts.exceptions import PasswordRejected
from accounts.models import PasswordResetToken, User


def validate_new_password(*, password: str, user: User) -> None:
    """Raise PasswordRejected unless ``password`` meets the configured policy.

    ``user`` may be unsaved (sign-up); its email and name feed the similarity check.
    """
    try:
        password_validation.validate_password(password, user=user)
    except ValidationError as error:
        raise PasswordRejected(list(error.messages)) from None


def set_new_password(*, user: User, password: str) -> None:
    """Store a new (already validated) password and retire what the old one allowed.

    Changing the hash also changes Django's session auth hash, so every
    browser session signed in with the old password ends at its next request.
    """
    user.set_password(password)
    user.save(update_fields=["password"])
    PasswordResetToken.objects.filter(user=user, used_at__isnull=True).delete()
