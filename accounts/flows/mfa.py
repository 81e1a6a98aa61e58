"""Setting up and managing second factors: the authenticator app (TOTP) and recovery codes.

Modelled on django-allauth's ``mfa`` flows, with what it lacks: secrets encrypted at rest, codes
accepted once ever (accounts.flows.second_factor), and a recent second factor required to remove
or replace one. Every change emails the account's address, writes an audit event and retires the
account's unused emailed links (a reset link an intruder asked for must not outlive it).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyotp
import segno
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from accounts import amr as methods
from accounts.audit import EventKind, record_event
from accounts.client_info import ClientInfo
from accounts.encryption import SecretUnreadable
from accounts.exceptions import EmailNotVerified, InvalidCode, MfaNotEnabled, TotpAlreadyEnabled, TotpSetupRequired
from accounts.flows.account_lock import lock_account
from accounts.flows.email_tokens import retire_emailed_links
from accounts.flows.passkeys import passkeys_of
from accounts.flows.reauthentication import SensitiveAction, record_authentication, require_recent_authentication
from accounts.flows.second_factor import (
    TOTP_DIGITS,
    TOTP_PERIOD,
    accept_totp,
    has_mfa,
    has_totp,
    new_totp_secret,
    normalize_code,
    recovery_codes_left,
    remove_totp,
    replace_recovery_codes,
    store_totp_secret,
    totp_secret_of,
)
from accounts.mail import send_account_email, site_link
from accounts.models import Passkey, TotpAuthenticator, User
from accounts.revocation import SessionId


@dataclass(frozen=True)
class MfaStatus:
    enabled: bool
    totp_enabled: bool
    recovery_codes_remaining: int
    passkeys: list[Passkey]


@dataclass(frozen=True)
class TotpSetup:
    """What the person needs to add the account to an authenticator app."""

    secret: str
    otpauth_uri: str
    qr_svg: str


def mfa_status(*, user: User) -> MfaStatus:
    """What is on; never a secret."""
    passkeys = passkeys_of(user=user)
    totp_enabled = has_totp(user)
    enabled = totp_enabled or bool(passkeys)
    return MfaStatus(
        enabled=enabled,
        totp_enabled=totp_enabled,
        recovery_codes_remaining=recovery_codes_left(user) if enabled else 0,
        passkeys=passkeys,
    )


def _setup_for(user: User, secret: str) -> TotpSetup:
    uri = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD).provisioning_uri(
        name=user.email, issuer_name=settings.ACCOUNTS_MFA_TOTP_ISSUER
    )
    # An inline SVG made here: no script, no image from elsewhere, nothing for the CSP to allow.
    qr_svg = segno.make(uri, error="m").svg_inline(scale=4, dark="#000", light="#fff", title="QR code for your app")
    return TotpSetup(secret=secret, otpauth_uri=uri, qr_svg=qr_svg)


@sensitive_variables("secret")
def begin_totp_setup(*, user: User, session_id: SessionId | None) -> TotpSetup:
    """A new secret for an authenticator app, waiting to be confirmed with a code.

    Needs a recent authentication on this device. Starting again replaces a setup not yet
    confirmed; TotpAlreadyEnabled while one is on.
    """
    require_recent_authentication(session_id=session_id, action=SensitiveAction.MANAGE_MFA, user=user)
    if not user.email_verified:
        # Whoever set it up before the address was proven (it may not be theirs) would keep the account.
        raise EmailNotVerified(user)
    secret = new_totp_secret()
    with transaction.atomic():
        lock_account(user)
        # The row stays across setups (it holds the last accepted time step); created on the first.
        authenticator, _created = TotpAuthenticator.objects.select_for_update().get_or_create(user=user)
        if authenticator.confirmed_at is not None:
            raise TotpAlreadyEnabled
        store_totp_secret(authenticator, secret)
        authenticator.created_at = timezone.now()
        authenticator.save(update_fields=["secret_encrypted", "secret_key_id", "created_at"])
    return _setup_for(user, secret)


def pending_totp_setup(*, user: User, session_id: SessionId | None) -> TotpSetup:
    """The setup begun and not yet confirmed (to show its QR code again); TotpSetupRequired if none.

    Needs a recent authentication like beginning it: the secret is on the page."""
    require_recent_authentication(session_id=session_id, action=SensitiveAction.MANAGE_MFA, user=user)
    authenticator = TotpAuthenticator.objects.filter(user=user, confirmed_at__isnull=True).first()
    if authenticator is None or not authenticator.secret_encrypted:
        raise TotpSetupRequired
    try:
        return _setup_for(user, totp_secret_of(authenticator))
    except SecretUnreadable:
        raise TotpSetupRequired from None


@sensitive_variables("code")
def confirm_totp(
    *, user: User, code: object, session_id: SessionId | None, client: ClientInfo | None = None
) -> list[str]:
    """Turn the authenticator app on with a code from it; returns the first set of recovery codes.

    The code is a second factor proven on this device: the session counts as two-factor from now on
    (how a staff member enrolling on the way to the admin gets in).
    """
    require_recent_authentication(session_id=session_id, action=SensitiveAction.MANAGE_MFA, user=user)
    if not TotpAuthenticator.objects.filter(user=user, confirmed_at__isnull=True).exclude(secret_encrypted="").exists():
        raise TotpSetupRequired
    checked = accept_totp(user=user, code=normalize_code(code), confirmed=False) if isinstance(code, str) else None
    if checked is None:
        raise InvalidCode
    with transaction.atomic():
        lock_account(user)
        # Only the secret the code was checked against: a setup begun meanwhile (another tab) made
        # a new one, which nobody has proven to hold.
        turned_on = TotpAuthenticator.objects.filter(
            user=user, confirmed_at__isnull=True, secret_encrypted=checked.secret_encrypted
        ).update(confirmed_at=timezone.now())
        if turned_on != 1:
            raise TotpSetupRequired  # confirmed meanwhile, or replaced by a new setup
        codes = replace_recovery_codes(user=user)
        record_event(kind=EventKind.MFA_ENABLED, user=user, client=client, method="totp")
        retire_emailed_links(user=user)
        _notify(user, "mfa_enabled")
    record_authentication(session_id=session_id, amr=[methods.ONE_TIME_CODE])
    return codes


def disable_totp(*, user: User, session_id: SessionId | None, client: ClientInfo | None = None) -> None:
    """Remove the authenticator app (and, unless a passkey stays, every recovery code); needs a recent
    second factor. Two-factor stays on while the account has a passkey."""
    require_recent_authentication(session_id=session_id, action=SensitiveAction.MANAGE_MFA, user=user)
    with transaction.atomic():
        lock_account(user)
        if not remove_totp(user=user):
            raise MfaNotEnabled
        still_on = has_mfa(user)
        record_event(kind=EventKind.MFA_DISABLED, user=user, client=client, method="totp", still_on=still_on)
        _notify(user, "mfa_disabled", still_on=still_on)


def regenerate_recovery_codes(
    *, user: User, session_id: SessionId | None, client: ClientInfo | None = None
) -> list[str]:
    """A new set of ten recovery codes replacing every earlier one; needs a recent second factor."""
    require_recent_authentication(session_id=session_id, action=SensitiveAction.MANAGE_MFA, user=user)
    with transaction.atomic():
        lock_account(user)
        if not has_mfa(user):
            raise MfaNotEnabled
        codes = replace_recovery_codes(user=user)
        record_event(kind=EventKind.RECOVERY_CODES_REGENERATED, user=user, client=client)
        retire_emailed_links(user=user)
        _notify(user, "recovery_codes_regenerated")
    return codes


def _notify(user: User, template: str, **context: object) -> None:
    send_account_email(
        template=template,
        to=user.email,
        greet=user,
        context={
            "security_link": site_link("accounts:security"),
            "reset_link": site_link("accounts:password_reset"),
            **context,
        },
    )
