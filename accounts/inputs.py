"""The input rules that the page forms and the API serializers share: sizes, email normalisation, password pre-checks.

django-allauth's headless ``inputs.py`` reuses its forms as API inputs. Here the API
keeps DRF serializers (they give the strict JSON types and the OpenAPI schema), and
both front ends call these functions, so that a limit or a message lives once.
Each raises InputRejected; ``accounts/forms.py`` turns it into a form error and
``accounts/api/serializers.py`` into a field error.
"""

from django.conf import settings

from accounts.email_address import MAX_EMAIL_LENGTH, InvalidEmailAddress, normalize_email

# Far more than any address, so that the normaliser (not a browser's maxlength,
# nor a generic "too long") produces the error message.
EMAIL_INPUT_LIMIT = MAX_EMAIL_LENGTH * 2
# Passwords longer than the policy allows are refused by the policy with a clear
# message; this bound only keeps absurd input away from the hasher.
PASSWORD_INPUT_LIMIT = 4096
# The emailed tokens are 43 characters; anything much longer is not one.
TOKEN_INPUT_LIMIT = 256


class InputRejected(ValueError):
    """A value that no flow could accept; ``code`` is stable, ``message`` is for people."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message)
        self.message, self.code = message, code


def clean_email_input(value: str) -> str:
    """The canonical form of an entered address (see email_address.normalize_email)."""
    try:
        return normalize_email(value)
    except InvalidEmailAddress as error:
        raise InputRejected(str(error), code="invalid_email") from None


def check_sign_in_password(value: str) -> str:
    """A password typed to sign in: no password this long can exist here, so say so
    without asking the database (and without hashing megabytes)."""
    if len(value) > settings.ACCOUNTS_PASSWORD_MAX_LENGTH:
        raise InputRejected(
            f"Passwords are at most {settings.ACCOUNTS_PASSWORD_MAX_LENGTH} characters.", code="password_too_long"
        )
    return value
