"""Template context shared by every page: the site's name, the password rules and the sign-in providers."""

from django.conf import settings
from django.http import HttpRequest

from accounts.flows.social_providers import configured_providers


def site(request: HttpRequest) -> dict[str, object]:
    return {
        "social_providers": configured_providers(),
        "site_name": settings.SITE_NAME,
        "password_min_length": settings.ACCOUNTS_PASSWORD_MIN_LENGTH,
        "password_max_length": settings.ACCOUNTS_PASSWORD_MAX_LENGTH,
    }
