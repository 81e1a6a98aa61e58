"""The suite's test password, signing a page client in the way a real sign-in does (without the form), and
the digest the stored tokens are checked against."""

import hashlib
import time

STRONG_PASSWORD = "correct horse battery staple"


def force_page_login(client, user, *, user_agent: str = "pytest", second_factor: bool | None = None):
    """Sign ``client`` in to the pages as ``user`` without the form, the way a real
    sign-in does: a Django session tied to a new device session (a page session
    without one is signed out). Returns the device session.

    Staff sign in as the admin requires (flows.support.admin_access): with an
    authenticator app, on a session that passed it; ``second_factor`` says so
    for anyone (False: a staff member who has not set one up yet)."""
    from accounts.flows.device_sessions import start_device_session
    from accounts.flows.second_factor import has_mfa
    from accounts.flows.signin import DEVICE_SESSION_KEY, PAGE_USE_KEY
    from tests.support.mfa import enable_totp

    if second_factor is None:
        second_factor = user.is_staff
    if second_factor and not has_mfa(user):
        enable_totp(user)
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    issued = start_device_session(
        user=user,
        ip_address="127.0.0.1",
        user_agent=user_agent,
        via="page",
        amr=["pwd", "otp", "mfa"] if second_factor else ["pwd"],
        second_factor=second_factor,
    )
    session = client.session
    session[DEVICE_SESSION_KEY] = str(issued.session.pk)
    session[PAGE_USE_KEY] = int(time.time())
    session.save()
    return issued.session


def sha256(text: str) -> str:
    """The SHA-256 hex digest of ``text``, computed here rather than by accounts.tokens, to check what it stores."""
    return hashlib.sha256(text.encode()).hexdigest()
