"""Signing in with the local OpenID provider (tests/support/oidc.py): configuring it as "acme" and the round trip."""

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from django.test import Client

from accounts.mail import site_link
from tests.support.oidc import PROVIDER_PASSWORD, Provider
from tests.support.pages import submit

NAME = "acme"
LOGIN = f"/accounts/social/{NAME}/login/"
CALLBACK = f"/accounts/social/{NAME}/callback/"


def acme_settings(provider: Provider, *, trust_email: bool = False, skip_consent: bool = True, **changes) -> dict:
    """SOCIAL_PROVIDERS with the local provider as "acme" (a client registered for this site's callback)."""
    client_id, client_secret = provider.register_client(
        redirect_uris=[site_link("accounts:social_callback", provider=NAME)], skip_authorization=skip_consent
    )
    acme = {
        "name": NAME,
        "kind": "oidc",
        "display_name": "Acme",
        "client_id": client_id,
        "client_secret": client_secret,
        "scopes": ["openid", "email", "profile"],
        "trust_email": trust_email,
        "issuer": provider.issuer,
        **changes,
    }
    return {NAME: acme}


def use_acme(settings, provider: Provider, **options) -> dict:
    settings.SOCIAL_PROVIDERS = acme_settings(provider, **options)
    return settings.SOCIAL_PROVIDERS[NAME]


@dataclass
class RoundTrip:
    authorize_url: str
    callback: str  # the path and query the provider sends the browser back to

    @property
    def state(self) -> str:
        return parse_qs(urlsplit(self.callback).query).get("state", [""])[0]


def leave_for_provider(client: Client, *, data: dict | None = None, name: str = NAME, **extra) -> str:
    """POST the sign-in button (with the CSRF token); the provider URL it redirects to."""
    response = submit(client, f"/accounts/social/{name}/login/", data or {}, **extra)
    assert response.status_code == 302, response.content[:500]
    return response["Location"]


def round_trip(
    client: Client,
    provider: Provider,
    *,
    email: str,
    password: str = PROVIDER_PASSWORD,
    consent: bool = True,
    data: dict | None = None,
    **extra,
) -> RoundTrip:
    """Leave for the provider, sign in there as ``email``: where it sends the browser back (not followed)."""
    authorize_url = leave_for_provider(client, data=data, **extra)
    location = provider.authorize(authorize_url, email=email, password=password, consent=consent)
    parts = urlsplit(location)
    return RoundTrip(authorize_url=authorize_url, callback=f"{parts.path}?{parts.query}")


def social_sign_in(client: Client, provider: Provider, *, email: str, data: dict | None = None, **extra):
    """The whole sign-in: the callback's response."""
    trip = round_trip(client, provider, email=email, data=data, **extra)
    return client.get(trip.callback, **extra)
