"""Passkeys in tests: registering one for a user through the real flow, and answering a page's options."""

from django.conf import settings

from tests.support.webauthn import SoftAuthenticator


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
