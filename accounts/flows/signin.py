"""Sign-in and sign-out: first factors, the one decision "second step or done", starting and ending sessions.

Every way of signing in (the password here; later an emailed code, a provider, a passkey) ends in
finish_first_factor, which alone decides whether the account needs its second factor now. Sessions
start only from a SignedIn, which only this module makes: a new sign-in method cannot skip the
second step by calling start_browser_session with a user.
"""

import contextlib
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate, login, logout, user_logged_in
from django.db import transaction
from django.http import HttpRequest

from accounts import amr as methods
from accounts.audit import EventKind, record_event
from accounts.client_info import ClientInfo
from accounts.cookies import issue_device_cookie, read_device_cookie
from accounts.exceptions import EmailNotVerified, InvalidCredentials, SessionNotFound, SignInInterrupted
from accounts.flows.account_lock import lock_account
from accounts.flows.device_sessions import EndReason, IssuedTokens, end_device_session, start_device_session
from accounts.flows.known_devices import recognise_device
from accounts.flows.passkeys import Purpose, assertion_options, prove_passkey
from accounts.flows.pending import complete_pending, pending_sign_in, spend_attempt, start_pending_sign_in
from accounts.flows.second_factor import has_mfa, methods_of, prove_second_factor
from accounts.models import Passkey, User
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


@dataclass(frozen=True)
class SignedIn:
    """A finished sign-in: every factor the account asks for is proven. Only this module makes one."""

    user: User
    amr: list[str]
    # The passkey it was proven with (first or second step): the device session remembers it.
    passkey: Passkey | None = None
    # Proven with an emailed code or link alone: its "otp" proves the mailbox, which a password
    # reset proves too, so it is no second factor for what needs one (managing factors, the admin).
    by_mailbox: bool = False

    @property
    def second_factor(self) -> bool:
        return not self.by_mailbox and methods.proves_second_factor(self.amr)


@dataclass(frozen=True)
class SecondStepRequired:
    """The first factor is right and the account has a second: a pending sign-in waits for it."""

    handle: str
    methods: list[str]


def finish_first_factor(
    *, user: User, amr: list[str], passkey: Passkey | None = None, by_mailbox: bool = False
) -> SignedIn | SecondStepRequired:
    """The one place that decides "second step or done", for every first factor.

    An account with a second factor gets a pending sign-in (no session, no cookie, no token yet),
    unless the first factor already counts as two (a passkey with user verification).
    ``by_mailbox``: the factor was an emailed code or link (see SignedIn).
    """
    proven = methods.combine(amr)
    if methods.MULTI_FACTOR not in proven and has_mfa(user):
        return SecondStepRequired(handle=start_pending_sign_in(user=user, amr=proven), methods=methods_of(user))
    return SignedIn(user=user, amr=proven, passkey=passkey, by_mailbox=by_mailbox)


def complete_second_step(
    *, handle: str | None, client: ClientInfo, code: object = None, credential: object = None
) -> SignedIn:
    """The pending sign-in of ``handle``, finished with a TOTP or recovery code, or a passkey's
    answer to ``second_step_passkey_options``.

    PendingSignInInvalid if it expired, ran out of attempts or was finished already; InvalidCode
    for a wrong code and PasskeyRefused for a refused passkey (either way the attempt is spent);
    RateLimited past the account's or the IP's limit.
    """
    pending = pending_sign_in(handle)
    spend_attempt(pending)
    if credential is not None:
        proof = prove_passkey(
            purpose=Purpose.SECOND_STEP, credential=credential, client=client, user=pending.user, pending=pending
        )
        proven, passkey = proof.amr, proof.passkey
    else:
        prove_second_factor(user=pending.user, code=code, client=client)
        proven, passkey = [methods.ONE_TIME_CODE], None
    complete_pending(pending)
    return SignedIn(user=pending.user, amr=methods.combine(pending.amr, proven), passkey=passkey)


def second_step_methods(*, handle: str | None) -> list[str]:
    """The second factors the pending sign-in of ``handle`` can finish with; PendingSignInInvalid if none waits."""
    return methods_of(pending_sign_in(handle).user)


def second_step_passkey_options(*, handle: str | None, client: ClientInfo) -> dict[str, Any]:
    """Request options for finishing the pending sign-in of ``handle`` with one of its account's
    passkeys; PendingSignInInvalid, or NoPasskey if the account has none."""
    pending = pending_sign_in(handle)
    return assertion_options(purpose=Purpose.SECOND_STEP, client=client, user=pending.user, pending=pending)


def sign_in_passkey_options(*, client: ClientInfo) -> dict[str, Any]:
    """Request options for signing in with a passkey: they name no account and no credential."""
    return assertion_options(purpose=Purpose.SIGN_IN, client=client)


def authenticate_passkey(*, credential: object, client: ClientInfo) -> SignedIn | SecondStepRequired:
    """A sign-in with a passkey (user verification required, so both factors at once); PasskeyRefused
    (with its audit event) otherwise."""
    proof = prove_passkey(purpose=Purpose.SIGN_IN, credential=credential, client=client)
    return finish_first_factor(user=proof.user, amr=proof.amr, passkey=proof.passkey)


def _start_device_session(sign_in: SignedIn, client: ClientInfo, via: str) -> IssuedTokens:
    return start_device_session(
        user=sign_in.user,
        ip_address=client.ip_address,
        user_agent=client.user_agent,
        via=via,
        amr=sign_in.amr,
        second_factor=sign_in.second_factor,
        passkey=sign_in.passkey,
    )


def _open_session(request: HttpRequest, sign_in: SignedIn, via: str) -> IssuedTokens:
    """The device session, and the browser recognised (or its owner told of a new one) with it.

    SignInInterrupted if the account changed since the first factor read it: a password reset,
    the takeover of an unproven account or a deactivation that committed while the password was
    being hashed ends every session, and must end this one before it starts. They lock the
    account's row, so under the same lock this sign-in sees them or they see its session.
    """
    client = ClientInfo.from_request(request)
    with transaction.atomic():
        lock_account(sign_in.user)
        # The stored hash as a security stamp: any of them changes it, or is_active. (A hash
        # upgraded by two concurrent sign-ins differs too: the later one is asked again.)
        user = sign_in.user
        if not User.objects.filter(pk=user.pk, password=user.password, is_active=True).exists():
            raise SignInInterrupted
        issued = _start_device_session(sign_in, client, via)
        device_id = recognise_device(user=sign_in.user, device_id=read_device_cookie(request), client=client)
    issue_device_cookie(request, device_id)
    return issued


def start_api_session(*, request: HttpRequest, sign_in: SignedIn) -> IssuedTokens:
    """Open a device session for the SPA: an access token and a refresh token."""
    issued = _open_session(request, sign_in, "api")
    # What django.contrib.auth.login() sends for the pages (it sets last_login).
    user_logged_in.send(sender=type(sign_in.user), request=request, user=sign_in.user)
    return issued


def start_browser_session(*, request: HttpRequest, sign_in: SignedIn) -> IssuedTokens:
    """Sign ``user`` in to this browser's pages and open its device session.

    Django issues a new session key. The returned refresh token lets an SPA on
    this site continue without asking for the password again. A device session
    this browser already had ends: its refresh cookie is replaced, so nothing
    could use it, and it must not stay listed as another device.
    """
    # The device session first: if it cannot open (its passkey was removed meanwhile), nothing is signed in.
    issued = _open_session(request, sign_in, "page")
    if request.user.is_authenticated:
        end_browser_session(request=request, record_as=EndReason.ENDED_BY_USER)
    login(request, sign_in.user, backend="django.contrib.auth.backends.ModelBackend")
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
