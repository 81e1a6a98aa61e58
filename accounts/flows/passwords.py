"""The password policy and the one place a password is set."""

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError

from accounts.exceptions import PasswordRejected
from accounts.mail import send_account_email, site_link
from accounts.models import User


def validate_new_password(*, password: str, user: User, field: str | None = None) -> None:
    """Raise PasswordRejected (on ``field``) unless ``password`` meets the configured policy.

    ``user`` may be unsaved (sign-up); its email and name feed the similarity check.
    """
    try:
        password_validation.validate_password(password, user=user)
    except ValidationError as error:
        raise PasswordRejected(list(error.messages), field=field) from None


def set_new_password(*, user: User, password: str) -> None:
    """Store a new (already validated) password.

    Changing the hash also changes Django's session auth hash, so every
    browser session signed in with the old password ends at its next request.
    The caller follows with a security reset (flows.security_reset), which
    ends the device sessions and retires the emailed links the old password's
    holder may have asked for.
    """
    user.set_password(password)
    user.save(update_fields=["password"])


def send_password_changed_notice(*, user: User, all_devices_signed_out: bool) -> None:
    """Tell the account's address that its password changed, with the way back if it was not them."""
    send_account_email(
        template="password_changed",
        to=user.email,
        context={"reset_link": site_link("accounts:password_reset"), "all_devices_signed_out": all_devices_signed_out},
        greet=user,
    )
