"""Passkeys in tests: the endpoints, registering one for a user through the real flow, and signing in
with one on the pages and through the API."""

import json

from django.conf import settings
from django.test import Client

from tests.support.api import api_client, post_json
from tests.support.pages import csrf_token_of, submit
from tests.support.webauthn import SoftAuthenticator

PASSKEYS_URL = "/api/auth/passkeys/"
REGISTER_OPTIONS_URL = "/api/auth/passkeys/register/options/"
REGISTER_URL = "/api/auth/passkeys/register/"
SIGN_IN_OPTIONS_URL = "/api/auth/passkeys/sign-in/options/"
SIGN_IN_URL = "/api/auth/passkeys/sign-in/"
MFA_PASSKEY_OPTIONS_URL = "/api/auth/mfa/passkey/options/"
VERIFY_URL = "/api/auth/mfa/verify/"
REAUTHENTICATE_URL = "/api/auth/reauthenticate/"
REAUTHENTICATE_OPTIONS_URL = "/api/auth/reauthenticate/passkey/options/"
LOGIN_PAGE = "/accounts/login/"
LOGIN_PASSKEY = "/accounts/login/passkey/"
LOGIN_PASSKEY_OPTIONS = "/accounts/login/passkey/options/"


def soft_authenticator(**options) -> SoftAuthenticator:
    """A software authenticator for this site's relying party and first origin."""
    options.setdefault("rp_id", settings.WEBAUTHN_RP_ID)
    options.setdefault("origin", settings.WEBAUTHN_ORIGINS[0])
    return SoftAuthenticator(**options)


def add_passkey(user, authenticator: SoftAuthenticator | None = None, *, name: str = "Laptop"):
    """Register a passkey of ``authenticator`` (a new one unless given) for ``user`` through the flow,
    on a fresh device session; returns (authenticator, PasskeyAdded)."""
    from accounts.flows.device_sessions import start_device_session
    from accounts.flows.passkeys import register_passkey, registration_options

    authenticator = authenticator or soft_authenticator()
    # A second passkey of an account with two-factor on needs a second factor on the session.
    session = start_device_session(
        user=user, ip_address="127.0.0.1", user_agent="pytest", via="api", second_factor=True
    ).session
    options = registration_options(user=user, session_id=str(session.pk))
    added = register_passkey(user=user, session_id=str(session.pk), credential=authenticator.create(options), name=name)
    return authenticator, added


def page_options(client: Client, path: str):
    """What the pages' script does first: POST for a ceremony's options, with the CSRF header."""
    return client.post(path, HTTP_X_CSRFTOKEN=csrf_token_of(client))


def page_passkey_sign_in(client: Client, authenticator: SoftAuthenticator, **answer):
    """Sign in on the sign-in page with a passkey, as its script does; the form post's response."""
    assert client.get(LOGIN_PAGE).status_code == 200
    response = page_options(client, LOGIN_PASSKEY_OPTIONS)
    assert response.status_code == 200, response.content
    return submit(client, LOGIN_PASSKEY, {"credential": json.dumps(authenticator.get(response.json(), **answer))})


def api_passkey_sign_in(authenticator: SoftAuthenticator, client: Client | None = None, **answer):
    """Sign in through the API with a passkey, as the SPA does; (the response, the client)."""
    client = client or api_client()
    options = post_json(client, SIGN_IN_OPTIONS_URL)
    assert options.status_code == 200, options.content
    return post_json(client, SIGN_IN_URL, {"credential": authenticator.get(options.json(), **answer)}), client
