"""Template context of every page: site name, password rules, sign-in providers, whether mail reaches the person."""

from django.conf import settings
from django.http import HttpRequest

from accounts.flows.deliverability import undeliverable_reason
from accounts.flows.social_providers import configured_providers


def site(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    return {
        "social_providers": configured_providers(),
        "site_name": settings.SITE_NAME,
        "password_min_length": settings.ACCOUNTS_PASSWORD_MIN_LENGTH,
        "password_max_length": settings.ACCOUNTS_PASSWORD_MAX_LENGTH,
        # Why mail does not reach the signed-in person's address (the banner in base.html), or None.
        "undeliverable_email": undeliverable_reason(user.email) if user is not None and user.is_authenticated else None,
    }
