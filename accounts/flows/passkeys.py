"""Passkeys (WebAuthn, with py_webauthn): registering, naming and removing them, and proving one.

A passkey proves itself in three places: as the whole sign-in (user verification required: the
device and its unlocking are two factors), as the second step after a password (user verification
preferred) and to re-authenticate. Every ceremony signs a challenge made here, kept server-side
only as a hash, used once (a conditional UPDATE) and within WEBAUTHN_CHALLENGE_LIFETIME. The
relying party ID and the origins come from settings, never from the request.

Beyond what py_webauthn checks (signature, origin, RP ID, flags), this module refuses a credential
that is not (or no longer) registered, one handed back for another account, and a device-bound
credential whose signature counter did not rise (two copies of one key: a clone).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import webauthn
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone
from webauthn.helpers import (
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from accounts import amr as methods
from accounts.audit import EventKind, record_event
from accounts.client_info import ClientInfo
from accounts.exceptions import (
    EmailNotVerified,
    InvalidPasskeyName,
    NoPasskey,
    PasskeyAlreadyRegistered,
    PasskeyChallengeInvalid,
    PasskeyCloned,
    PasskeyLimitReached,
    PasskeyNotFound,
    PasskeyRefused,
    PasskeyUnknown,
    TokenInvalid,
)
from accounts.flows.account_lock import lock_account
from accounts.flows.device_sessions import EndReason, end_user_sessions
from accounts.flows.email_tokens import mark_token_used, retire_emailed_links
from accounts.flows.passwords import send_password_changed_notice, set_new_password, validate_new_password
from accounts.flows.profile import is_printable_line
from accounts.flows.reauthentication import SensitiveAction, record_authentication, require_recent_authentication
from accounts.flows.second_factor import has_mfa, has_totp, remove_recovery_codes_if_unneeded, replace_recovery_codes
from accounts.flows.security_reset import security_reset
from accounts.flows.verification import find_not_me_link, issue_verification_link
from accounts.mail import send_account_email, site_link
from accounts.models import EmailVerificationToken, Passkey, PendingSignIn, User, WebAuthnChallenge
from accounts.rate_limits import PASSKEY_IP, hit, ip_key
from accounts.revocation import SessionId

Purpose = WebAuthnChallenge.Purpose
EmailPurpose = EmailVerificationToken.Purpose
Credential = TypeVar("Credential", AuthenticationCredential, RegistrationCredential)

NAME_MAX_LENGTH = 64
# WebAuthn Level 3 caps a credential id at 1023 bytes; longer ones would not fit the unique index.
CREDENTIAL_ID_MAX_LENGTH = 1023
# A browser's credential JSON is a few kilobytes at most; anything larger is not one.
_CREDENTIAL_INPUT_LIMIT = 64 * 1024
_CHALLENGE_BYTES = 32
_USER_HANDLE_BYTES = 32
_KNOWN_TRANSPORTS = {transport.value for transport in AuthenticatorTransport}


@dataclass(frozen=True)
class PasskeyAdded:
    passkey: Passkey
    # The account's first recovery codes, when this passkey turned two-factor on (shown once).
    recovery_codes: list[str] | None


@dataclass(frozen=True)
class PasskeyProof:
    """A passkey of ``user`` signed this ceremony's challenge: the methods it proves (RFC 8176)."""

    user: User
    passkey: Passkey
    amr: list[str]


# --- Challenges -----------------------------------------------------------------------------------


def _challenge_hash(challenge: bytes) -> str:
    return hashlib.sha256(challenge).hexdigest()


def _issue_challenge(
    purpose: str, *, user: User | None = None, pending: PendingSignIn | None = None, user_handle: bytes = b""
) -> bytes:
    challenge = secrets.token_bytes(_CHALLENGE_BYTES)
    now = timezone.now()
    WebAuthnChallenge.objects.create(
        challenge_hash=_challenge_hash(challenge),
        purpose=purpose,
        user=user,
        pending_sign_in=pending,
        user_handle=user_handle,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.WEBAUTHN_CHALLENGE_LIFETIME),
    )
    return challenge


def _use_challenge(
    client_data_json: bytes, purpose: str, *, user: User | None = None, pending: PendingSignIn | None = None
) -> tuple[bytes, WebAuthnChallenge]:
    """The challenge the answer signed, used up (once, ever); PasskeyChallengeInvalid if it was not
    issued for this ceremony (and this account, this pending sign-in), expired, or was used before."""
    try:
        challenge = parse_client_data_json(bytes(client_data_json)).challenge
    except (WebAuthnException, ValueError, TypeError, RecursionError) as error:
        raise _refusal(PasskeyRefused, why=str(error)) from error
    now = timezone.now()
    bound: dict[str, Any] = {"user": user} if user is not None else {"user__isnull": True}
    if pending is not None:
        bound["pending_sign_in"] = pending
    used = WebAuthnChallenge.objects.filter(
        challenge_hash=_challenge_hash(challenge), purpose=purpose, used_at__isnull=True, expires_at__gt=now, **bound
    ).update(used_at=now)
    if used != 1:
        raise _refusal(PasskeyChallengeInvalid, why="challenge not issued, expired or used")
    return challenge, WebAuthnChallenge.objects.get(challenge_hash=_challenge_hash(challenge))


def _options_json(options: object) -> dict[str, Any]:
    """The options in WebAuthn Level 3's JSON encoding, as the browser's parse*OptionsFromJSON() reads it."""
    result: dict[str, Any] = json.loads(webauthn.options_to_json(options))  # type: ignore[arg-type]
    return result


def _parse(credential: object, parser: Callable[[Any], Credential]) -> Credential:
    """The browser's credential (its toJSON(), as an object or a JSON string); PasskeyRefused for anything else."""
    if isinstance(credential, str):
        if len(credential) > _CREDENTIAL_INPUT_LIMIT:
            raise PasskeyRefused
        try:
            credential = json.loads(credential)
        except (ValueError, RecursionError):  # RecursionError: arrays nested a few thousand deep
            raise PasskeyRefused from None
    if not isinstance(credential, dict):
        raise PasskeyRefused
    try:
        return parser(credential)
    except (WebAuthnException, ValueError, TypeError, KeyError, AttributeError, RecursionError) as error:
        raise _refusal(PasskeyRefused, why=str(error)) from error


def _refusal(kind: type[PasskeyRefused], *, account: User | None = None, why: str = "") -> PasskeyRefused:
    error = kind()
    error.account, error.why = account, why[:200]
    return error


def _record_refusal(error: PasskeyRefused, *, purpose: str, user: User | None, client: ClientInfo) -> None:
    """The refusal in the audit log: the account's, where the passkey or the ceremony names one."""
    with transaction.atomic():
        record_event(
            kind=EventKind.PASSKEY_REFUSED,
            user=error.account or user,
            client=client,
            reason=error.code,
            purpose=purpose,
            why=error.why,
        )


def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    transports = [AuthenticatorTransport(value) for value in passkey.transports if value in _KNOWN_TRANSPORTS]
    return PublicKeyCredentialDescriptor(id=bytes(passkey.credential_id), transports=transports or None)


# --- The account's passkeys -----------------------------------------------------------------------


def passkeys_of(*, user: User) -> list[Passkey]:
    return list(Passkey.objects.filter(user=user).order_by("created_at"))


def clean_passkey_name(name: object) -> str:
    """The name as stored: one line of 1 to 64 characters, by the display name's rule (it goes into
    emails and pages too); InvalidPasskeyName otherwise."""
    if not isinstance(name, str) or not is_printable_line(name):
        raise InvalidPasskeyName
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > NAME_MAX_LENGTH:
        raise InvalidPasskeyName
    return cleaned


def _may_add_passkey(user: User, session_id: SessionId | None) -> list[Passkey]:
    require_recent_authentication(session_id=session_id, action=SensitiveAction.MANAGE_MFA, user=user)
    if not user.email_verified:
        # Whoever added a passkey before the address was proven (it may not be theirs) would keep the account.
        raise EmailNotVerified(user)
    existing = passkeys_of(user=user)
    if len(existing) >= settings.WEBAUTHN_MAX_PASSKEYS:
        raise PasskeyLimitReached
    return existing


def check_may_add_passkey(*, user: User, session_id: SessionId | None) -> None:
    """ReauthenticationRequired, EmailNotVerified or PasskeyLimitReached if adding one would be refused now."""
    _may_add_passkey(user, session_id)


def registration_options(*, user: User, session_id: SessionId | None) -> dict[str, Any]:
    """Creation options for a new passkey of ``user``: a discoverable credential, user verification
    required, none of the account's passkeys again. Needs what managing second factors needs."""
    existing = _may_add_passkey(user, session_id)
    hit(PASSKEY_IP, f"user:{user.pk}")  # the prompts' limit, per account here: each stores a challenge
    user_handle = bytes(existing[0].user_handle) if existing else secrets.token_bytes(_USER_HANDLE_BYTES)
    challenge = _issue_challenge(Purpose.REGISTER, user=user, user_handle=user_handle)
    options = webauthn.generate_registration_options(
        rp_id=settings.WEBAUTHN_RP_ID,
        rp_name=settings.WEBAUTHN_RP_NAME,
        user_name=user.email,
        user_id=user_handle,
        user_display_name=user.name or user.email,
        challenge=challenge,
        timeout=settings.WEBAUTHN_CHALLENGE_LIFETIME * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED, user_verification=UserVerificationRequirement.REQUIRED
        ),
        exclude_credentials=[_descriptor(passkey) for passkey in existing],
    )
    return _options_json(options)


def register_passkey(
    *, user: User, session_id: SessionId | None, credential: object, name: object, client: ClientInfo | None = None
) -> PasskeyAdded:
    """Add the passkey the browser just created (with ``registration_options``) to the account.

    The first second factor of the account turns two-factor on and comes with the first recovery
    codes. Emails the address, writes an audit event and retires the account's emailed links."""
    client = client or ClientInfo()
    _may_add_passkey(user, session_id)
    cleaned_name = clean_passkey_name(name)
    try:
        parsed = _parse(credential, parse_registration_credential_json)
        challenge, issued = _use_challenge(parsed.response.client_data_json, Purpose.REGISTER, user=user)
        try:
            verified = webauthn.verify_registration_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=settings.WEBAUTHN_RP_ID,
                expected_origin=list(settings.WEBAUTHN_ORIGINS),
                require_user_verification=True,
            )
        except Exception as error:  # whatever fails while checking untrusted bytes is a refusal, not a 500
            raise _refusal(PasskeyRefused, why=str(error)) from error
    except PasskeyRefused as error:
        _record_refusal(error, purpose=Purpose.REGISTER, user=user, client=client)
        raise
    if len(verified.credential_id) > CREDENTIAL_ID_MAX_LENGTH:
        too_long = _refusal(PasskeyRefused, why=f"credential id of {len(verified.credential_id)} bytes")
        _record_refusal(too_long, purpose=Purpose.REGISTER, user=user, client=client)
        raise too_long
    synced = verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE
    transports = [str(getattr(value, "value", value)) for value in (parsed.response.transports or [])]
    codes: list[str] | None = None
    with transaction.atomic():
        lock_account(user)
        if Passkey.objects.filter(user=user).count() >= settings.WEBAUTHN_MAX_PASSKEYS:
            raise PasskeyLimitReached
        first_factor = not has_mfa(user)
        try:
            with transaction.atomic():
                passkey = Passkey.objects.create(
                    user=user,
                    name=cleaned_name,
                    credential_id=verified.credential_id,
                    public_key=verified.credential_public_key,
                    sign_count=verified.sign_count,
                    aaguid=verified.aaguid,
                    transports=[value for value in transports if value in _KNOWN_TRANSPORTS],
                    backup_eligible=synced,
                    backed_up=verified.credential_backed_up,
                    user_handle=bytes(issued.user_handle),
                )
        except IntegrityError:
            raise PasskeyAlreadyRegistered from None
        if first_factor:
            codes = replace_recovery_codes(user=user)
            record_event(kind=EventKind.MFA_ENABLED, user=user, client=client, method="passkey")
        record_event(
            kind=EventKind.PASSKEY_ADDED,
            user=user,
            client=client,
            passkey=str(passkey.pk),
            name=cleaned_name,
            synced=synced,
        )
        retire_emailed_links(user=user)
        not_me_link = issue_verification_link(
            user=user,
            email=user.email,
            purpose=EmailPurpose.REMOVE_PASSKEY,
            lifetime_seconds=settings.ACCOUNTS_PASSKEY_NOT_ME_TIMEOUT,
            replace_older=False,  # each passkey keeps its own way out
            viewname="accounts:passkey_not_me",
            passkey=passkey,
            # Only a passkey that turned two-factor on may take it off again (see the not-me check).
            undo_allowed=first_factor,
        )
        _notify(
            user,
            "passkey_added",
            passkey_name=cleaned_name,
            first_factor=first_factor,
            not_me_link=not_me_link,
            valid_hours=max(1, settings.ACCOUNTS_PASSKEY_NOT_ME_TIMEOUT // 3600),
        )
    # The new passkey verified its user on this device: like a first TOTP code, the session now
    # counts as two-factor (how a staff member enrolling on the way to the admin gets in).
    record_authentication(
        session_id=session_id, amr=amr_of(passkey, user_verified=verified.user_verified), passkey=passkey
    )
    return PasskeyAdded(passkey=passkey, recovery_codes=codes)


def _own_passkey(user: User, passkey_id: object) -> Passkey:
    try:
        key = uuid.UUID(str(passkey_id))
    except ValueError:
        raise PasskeyNotFound from None
    passkey = Passkey.objects.filter(user=user, pk=key).first()
    if passkey is None:
        raise PasskeyNotFound
    return passkey


def rename_passkey(*, user: User, passkey_id: object, name: object, client: ClientInfo | None = None) -> Passkey:
    """A new name for one of the account's passkeys (a label only: it changes no one's access)."""
    cleaned_name = clean_passkey_name(name)
    passkey = _own_passkey(user, passkey_id)
    with transaction.atomic():
        Passkey.objects.filter(pk=passkey.pk).update(name=cleaned_name)
        record_event(
            kind=EventKind.PASSKEY_RENAMED, user=user, client=client, passkey=str(passkey.pk), name=cleaned_name
        )
    passkey.name = cleaned_name
    return passkey


def remove_passkey(
    *, user: User, passkey_id: object, session_id: SessionId | None, client: ClientInfo | None = None
) -> None:
    """Remove one of the account's passkeys: it signs in no more, and the sessions that rest on it
    end (but this one). Needs a recent second factor.

    The last second factor gone, two-factor is off and the recovery codes go with it."""
    require_recent_authentication(session_id=session_id, action=SensitiveAction.MANAGE_MFA, user=user)
    with transaction.atomic():
        lock_account(user)
        passkey = _own_passkey(user, passkey_id)
        ended = end_user_sessions(
            user=user,
            reason=EndReason.PASSKEY_REMOVED,
            keep_session_id=session_id,
            client=client,
            opened_with=[passkey],
        )
        mfa_off = _delete_passkey(user, passkey, client=client, sessions_ended=ended)
        retire_emailed_links(user=user)
        _notify(user, "passkey_removed", passkey_name=passkey.name, mfa_off=mfa_off, sessions_ended=ended)


def _delete_passkey(
    user: User, passkey: Passkey, *, client: ClientInfo | None, sessions_ended: int, by: str = "owner"
) -> bool:
    """Delete ``passkey`` (the account locked) with its audit event; True when it was the last
    second factor, so two-factor and the recovery codes went with it."""
    removed_id, removed_name = str(passkey.pk), passkey.name
    passkey.delete()
    mfa_off = not has_mfa(user)
    if mfa_off:
        remove_recovery_codes_if_unneeded(user=user)
        record_event(kind=EventKind.MFA_DISABLED, user=user, client=client, method="passkey", by=by)
    record_event(
        kind=EventKind.PASSKEY_REMOVED,
        user=user,
        client=client,
        passkey=removed_id,
        name=removed_name,
        sessions_ended=sessions_ended,
        by=by,
    )
    return mfa_off


# --- "Not me": the owner's way out of a passkey someone else added ---------------------------------


@dataclass(frozen=True)
class NotMeLink:
    """A redeemable "not me" link: the passkey it is about, and the ones added after it, which go too
    (whoever added the first may have added them, from its session)."""

    row: EmailVerificationToken
    passkey: Passkey
    later: list[Passkey]

    @property
    def removes(self) -> list[Passkey]:
        return [self.passkey, *self.later]

    def turns_mfa_off(self) -> bool:
        """Whether removing them leaves the account without a second factor."""
        others = Passkey.objects.filter(user_id=self.passkey.user_id).exclude(pk__in=[p.pk for p in self.removes])
        return not has_totp(self.passkey.user) and not others.exists()


def check_passkey_not_me_token(*, token: str | None) -> NotMeLink:
    """The redeemable "not me" link of the passkey-added notice, without using it up.

    A passkey signs in without the password, so resetting the password does not shut out
    whoever added one (someone who knew the password), and removing it needs a second factor
    the owner may not have. This link is the owner's way out: it survives security resets, goes
    with its passkey, and works on a deactivated account too. It proves the mailbox the notice
    went to, so it stops working once the account's address changed (that address may now be
    someone else's). Whoever reads that mailbox can use it too, so it may leave the account
    without a second factor only where its passkey turned two-factor on (the account goes back
    to how it was); otherwise that is support's to do."""
    row = find_not_me_link(token=token, purpose=EmailPurpose.REMOVE_PASSKEY)
    try:
        # Loaded now, once: it may be removed at any moment, and its link with it.
        passkey = row.passkey
    except Passkey.DoesNotExist:
        passkey = None
    if passkey is None:
        raise TokenInvalid
    later = list(
        Passkey.objects.filter(user_id=passkey.user_id, created_at__gt=passkey.created_at).order_by("created_at")
    )
    link = NotMeLink(row=row, passkey=passkey, later=later)
    if not row.undo_allowed and link.turns_mfa_off():
        raise TokenInvalid(
            "This link would leave your account without two-factor authentication, which it had before "
            "this passkey was added, so it cannot be used. Please contact support."
        )
    return link


def remove_passkey_not_me(*, token: str | None, new_password: str, client: ClientInfo | None = None) -> User:
    """ "Not me": remove the passkey the notice was about (and any added after it) and secure the account.

    The account takes ``new_password`` (the old one is known to whoever added the passkey), and
    every session, every sign-in waiting for its second step and every other emailed link ends.
    The account's older second factors stay. Where the passkey turned two-factor on, it goes off
    with it, as it was before the passkey came; whoever reads the mailbox could do that too, within
    the link's short lifetime (see ACCOUNTS_PASSKEY_NOT_ME_TIMEOUT). Returns the user, who signs in anew.
    """
    with transaction.atomic():
        lock_account(check_passkey_not_me_token(token=token).row.user_id)
        link = check_passkey_not_me_token(token=token)  # again, now that nothing else changes the account
        user = link.row.user
        validate_new_password(password=new_password, user=user, field="new_password")
        mark_token_used(link.row)
        set_new_password(user=user, password=new_password)
        ended = security_reset(user=user, reason=EndReason.ACCOUNT_SECURED, record=False)
        # The link's row goes with its passkey: used, and gone.
        for passkey in link.removes:
            _delete_passkey(user, passkey, client=client, by="emailed link", sessions_ended=ended)
        send_password_changed_notice(user=user, all_devices_signed_out=True)
    return user


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


# --- Proving a passkey ----------------------------------------------------------------------------


def amr_of(passkey: Passkey, *, user_verified: bool) -> list[str]:
    """What using ``passkey`` proves: a device-bound or synced key, and its user when verified."""
    key = methods.SOFTWARE_KEY if passkey.backup_eligible else methods.HARDWARE_KEY
    return [key, methods.USER_VERIFIED] if user_verified else [key]


def assertion_options(
    *, purpose: str, client: ClientInfo, user: User | None = None, pending: PendingSignIn | None = None
) -> dict[str, Any]:
    """Request options for proving a passkey: for a sign-in, naming no credential (nothing tells
    who has an account) with user verification required; otherwise the account's own passkeys,
    user verification preferred. NoPasskey if the account has none."""
    hit(PASSKEY_IP, ip_key(client.ip_address), client=client)
    allowed: list[PublicKeyCredentialDescriptor] = []
    if user is not None:
        allowed = [_descriptor(passkey) for passkey in passkeys_of(user=user)]
        if not allowed:
            raise NoPasskey
    challenge = _issue_challenge(purpose, user=user, pending=pending)
    options = webauthn.generate_authentication_options(
        rp_id=settings.WEBAUTHN_RP_ID,
        challenge=challenge,
        timeout=settings.WEBAUTHN_CHALLENGE_LIFETIME * 1000,
        allow_credentials=allowed,
        user_verification=(
            UserVerificationRequirement.REQUIRED
            if purpose == Purpose.SIGN_IN
            else UserVerificationRequirement.PREFERRED
        ),
    )
    return _options_json(options)


def prove_passkey(
    *,
    purpose: str,
    credential: object,
    client: ClientInfo | None = None,
    user: User | None = None,
    pending: PendingSignIn | None = None,
) -> PasskeyProof:
    """The account whose passkey signed the challenge of ``assertion_options``, or PasskeyRefused
    (PasskeyUnknown, PasskeyChallengeInvalid, PasskeyCloned), each written to the audit log.

    ``user``: the passkey must be that account's (the second step, re-authentication); without it
    (a sign-in) the credential names its account and user verification is required."""
    client = client or ClientInfo()
    try:
        return _verify_assertion(purpose=purpose, credential=credential, user=user, pending=pending)
    except PasskeyRefused as error:
        _record_refusal(error, purpose=purpose, user=user, client=client)
        raise


def _verify_assertion(
    *, purpose: str, credential: object, user: User | None, pending: PendingSignIn | None
) -> PasskeyProof:
    parsed = _parse(credential, parse_authentication_credential_json)
    challenge, _issued = _use_challenge(parsed.response.client_data_json, purpose, user=user, pending=pending)
    if len(parsed.raw_id) > CREDENTIAL_ID_MAX_LENGTH:
        raise _refusal(PasskeyUnknown, why="credential id too long")
    passkey = Passkey.objects.select_related("user").filter(credential_id=bytes(parsed.raw_id)).first()
    if passkey is None or (user is not None and passkey.user_id != user.pk) or not passkey.user.is_active:
        if passkey is None:
            why = "no such credential"
        elif user is not None and passkey.user_id != user.pk:
            why = "another account's"
        else:
            why = "inactive account"
        raise _refusal(PasskeyUnknown, why=why)
    handle = parsed.response.user_handle
    if handle is None and user is None:
        # A discoverable credential says whose it is; without that, nothing ties it to the account.
        raise _refusal(PasskeyRefused, account=passkey.user, why="no user handle")
    if handle is not None and not hmac.compare_digest(bytes(handle), bytes(passkey.user_handle)):
        raise _refusal(PasskeyUnknown, account=passkey.user, why="another account's user handle")
    try:
        verified = webauthn.verify_authentication_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=settings.WEBAUTHN_RP_ID,
            expected_origin=list(settings.WEBAUTHN_ORIGINS),
            credential_public_key=bytes(passkey.public_key),
            # The counter is checked below, where a synced passkey is told from a cloned one.
            credential_current_sign_count=0,
            require_user_verification=user is None,
        )
    except Exception as error:  # whatever fails while checking untrusted bytes is a refusal, not a 500
        raise _refusal(PasskeyRefused, account=passkey.user, why=str(error)) from error
    if not _count_use(passkey, new_sign_count=verified.new_sign_count, backed_up=verified.credential_backed_up):
        if not Passkey.objects.filter(pk=passkey.pk).exists():
            raise _refusal(PasskeyUnknown, account=passkey.user, why="removed while signing in")
        raise _refusal(
            PasskeyCloned,
            account=passkey.user,
            why=f"sign count {verified.new_sign_count} after {passkey.sign_count}",
        )
    return PasskeyProof(user=passkey.user, passkey=passkey, amr=amr_of(passkey, user_verified=verified.user_verified))


def _count_use(passkey: Passkey, *, new_sign_count: int, backed_up: bool) -> bool:
    """Record the use; False (nothing recorded) when a device-bound passkey's counter did not rise,
    or when the passkey is gone (removed between the lookup and now).

    One conditional UPDATE, so two answers with the same counter (a key and its copy, at once)
    cannot both pass. A synced passkey's counter is shared by copies that are all the owner's (or
    stays 0): it cannot reveal a clone, so it is only kept at the highest value seen."""
    now = timezone.now()
    this = Passkey.objects.filter(pk=passkey.pk)
    if not passkey.backup_eligible and (new_sign_count > 0 or passkey.sign_count > 0):
        counted = this.filter(sign_count__lt=new_sign_count).update(
            sign_count=new_sign_count, last_used_at=now, backed_up=backed_up
        )
        return counted == 1
    counted = this.update(sign_count=Greatest(F("sign_count"), new_sign_count), last_used_at=now, backed_up=backed_up)
    return counted == 1


def reauthentication_options(*, user: User, client: ClientInfo) -> dict[str, Any]:
    """Request options for confirming it is the account's owner with one of its passkeys."""
    return assertion_options(purpose=Purpose.REAUTHENTICATE, client=client, user=user)


def reauthenticate_with_passkey(
    *, user: User, session_id: SessionId | None, credential: object, client: ClientInfo | None = None
) -> None:
    """One of the account's passkeys, used again on this device: opens the window for sensitive
    actions, the one for managing second factors included (a passkey is one)."""
    proof = prove_passkey(purpose=Purpose.REAUTHENTICATE, credential=credential, client=client, user=user)
    record_authentication(session_id=session_id, amr=proof.amr, passkey=proof.passkey)
