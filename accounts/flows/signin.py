"""Sign-in and sign-out: checking credentials and starting or ending a browser session."""

import contextlib
import time

from django.conf import settings
from django.contrib.auth import authenticate, login, logout, user_logged_in
from django.db import transaction
from django.http import HttpRequest

from accounts.audit import EventKind, record_event
from accounts.client_info import ClientInfo
from accounts.exceptions import EmailNotVerified, InvalidCredentials, SessionNotFound
from accounts.flows.device_sessions import EndReason, IssuedTokens, end_device_session, start_device_session
from accounts.models import User
from accounts.rate_limits import SIGN_IN_ACCOUNT, SIGN_IN_IP, address_key, check, count, ip_key

# The device session behind a browser's Django session, so that ending the
# device (from any device) also signs the pages out.
DEVICE_SESSION_KEY = "_device_session_id"
# When the pages last told the device session they were used (a Unix time),
# and how often they tell it: the idle clock needs no more than minutes.
PAGE_USE_KEY = "_device_session_used"
PAGE_USE_INTERVAL = 60


def _record_failure(*, client: ClientInfo, email: str, reason: str) -> None:
    with transaction.atomic():
        record_event(
            kind=EventKind.SIGN_IN_FAILED,
            user=User.objects.find_by_email(email),
            client=client,
            email=email,
            reason=reason,
        )


def authenticate_user(*, request: HttpRequest | None, email: str, password: str) -> User:
    """The user these credentials belong to, or InvalidCredentials.

    Unknown address, wrong password and inactive account fail alike, and the
    password hasher runs exactly once in each case (Django's ModelBackend hashes
    the password against nothing when the address is unknown). Only after the
    password is proven right does an unverified address get its own error.
    Every failure is written to the audit log and counted against both the
    address (known or not) and the client's IP; past either limit, RateLimited.
    """
    client = ClientInfo.from_request(request) if request is not None else ClientInfo()
    check(SIGN_IN_ACCOUNT, address_key(email), client=client, email=email)
    check(SIGN_IN_IP, ip_key(client.ip_address), client=client, email=email)
    user = authenticate(request, username=email, password=password)
    if user is None:
        count(SIGN_IN_ACCOUNT, address_key(email))
        count(SIGN_IN_IP, ip_key(client.ip_address))
        _record_failure(client=client, email=email, reason=InvalidCredentials.code)
        raise InvalidCredentials
    if settings.ACCOUNTS_EMAIL_VERIFICATION == "mandatory" and not user.email_verified:
        _record_failure(client=client, email=email, reason=EmailNotVerified.code)
        raise EmailNotVerified(user)
    return user


def start_api_session(*, request: HttpRequest, user: User) -> IssuedTokens:
    """Open a device session for the SPA: an access token and a refresh token."""
    client = ClientInfo.from_request(request)
    issued = start_device_session(user=user, ip_address=client.ip_address, user_agent=client.user_agent, via="api")
    # What django.contrib.auth.login() sends for the pages (it sets last_login).
    user_logged_in.send(sender=type(user), request=request, user=user)
    return issued


def start_browser_session(*, request: HttpRequest, user: User) -> IssuedTokens:
    """Sign ``user`` in to this browser's pages and open its device session.

    Django issues a new session key. The returned refresh token lets an SPA on
    this site continue without asking for the password again. A device session
    this browser already had ends: its refresh cookie is replaced, so nothing
    could use it, and it must not stay listed as another device.
    """
    if request.user.is_authenticated:
        end_browser_session(request=request, record_as=EndReason.ENDED_BY_USER)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    client = ClientInfo.from_request(request)
    issued = start_device_session(user=user, ip_address=client.ip_address, user_agent=client.user_agent, via="page")
    request.session[DEVICE_SESSION_KEY] = str(issued.session.pk)
    request.session[PAGE_USE_KEY] = int(time.time())
    return issued


def end_browser_session(*, request: HttpRequest, record_as: str = EndReason.LOGOUT) -> None:
    """Sign this browser out: its device session ends too."""
    session_id = request.session.get(DEVICE_SESSION_KEY)
    if session_id and request.user.is_authenticated:
        with contextlib.suppress(SessionNotFound):
            end_device_session(
                user=request.user,
                session_id=session_id,
                reason=record_as,
                client=ClientInfo.from_request(request),
            )
    logout(request)
