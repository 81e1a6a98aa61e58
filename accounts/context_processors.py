"""Template context shared by every page: the site's name and the password rules."""

from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict[str, str | int]:
    return {
        "site_name": settings.SITE_NAME,
        "password_min_length": settings.ACCOUNTS_PASSWORD_MIN_LENGTH,
        "password_max_length": settings.ACCOUNTS_PASSWORD_MAX_LENGTH,
    }
