"""The suite's test password, signing a page client in the way a real sign-in does (without the form), and
the digest the stored tokens are checked against."""

import hashlib
import time

STRONG_PASSWORD = "correct horse battery staple"


def force_page_login(client, user, *, user_agent: str = "pytest"):
    """Sign ``client`` in to the pages as ``user`` without the form, the way a real
    sign-in does: a Django session tied to a new device session (a page session
    without one is signed out). Returns the device session."""
    from accounts.flows.device_sessions import start_device_session
    from accounts.flows.signin import DEVICE_SESSION_KEY, PAGE_USE_KEY

    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    issued = start_device_session(user=user, ip_address="127.0.0.1", user_agent=user_agent, via="page")
    session = client.session
    session[DEVICE_SESSION_KEY] = str(issued.session.pk)
    session[PAGE_USE_KEY] = int(time.time())
    session.save()
    return issued.session


def sha256(text: str) -> str:
    """The SHA-256 hex digest of ``text``, computed here rather than by accounts.tokens, to check what it stores."""
    return hashlib.sha256(text.encode()).hexdigest()
