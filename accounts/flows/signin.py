"""Sign-in and sign-out: checking credentials and starting or ending a browser session."""

from django.conf import settings
from django.contrib.auth import authenticate, login, logout
from django.http import HttpRequest

from accounts.exceptions import EmailNotVerified, InvalidCredentials
from accounts.models import User


def authenticate_user(*, request: HttpRequest | None, email: str, password: str) -> User:
    """The user these credentials belong to, or InvalidCredentials.

    Unknown address, wrong password and inactive account fail alike, and the
    password hasher runs exactly once in each case (Django's ModelBackend hashes
    the password against nothing when the address is unknown). Only after the
    password is proven right does an unverified address get its own error.
    """
    user = authenticate(request, username=email, password=password)
    if user is None:
        raise InvalidCredentials
    if settings.ACCOUNTS_EMAIL_VERIFICATION == "mandatory" and not user.email_verified:
        raise EmailNotVerified(user)
    return user


def start_browser_session(*, request: HttpRequest, user: User) -> None:
    """Sign ``user`` in to this browser; Django issues a new session key."""
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")


def end_browser_session(*, request: HttpRequest) -> None:
    logout(request)
