"""Proving a second factor: TOTP codes (each time step once, ever) and single-use recovery codes.

Both "use once" rules are one conditional UPDATE each, so two requests presenting the same code at
the same instant, on two processes, cannot both pass: the database decides, not a cache entry.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from enum import StrEnum

import pyotp
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.views.decorators.debug import sensitive_variables

from accounts.audit import EventKind, record_event
from accounts.client_info import ClientInfo
from accounts.encryption import EncryptedSecret, SecretUnreadable, decrypt_secret, encrypt_secret
from accounts.exceptions import InvalidCode
from accounts.flows.email_tokens import retire_emailed_links
from accounts.mail import send_account_email, site_link
from accounts.models import Passkey, RecoveryCode, TotpAuthenticator, User
from accounts.rate_limits import MFA_ACCOUNT, MFA_ACCOUNT_DAY, MFA_IP, forget, give_back, hit, ip_key

TOTP_DIGITS = 6
TOTP_PERIOD = 30
# Codes of the previous and the next time step count too: a phone's clock a little off, or a code
# typed as it changed.
TOTP_DRIFT_STEPS = 1

RECOVERY_CODE_COUNT = 10
# Crockford's base32 (no I, L, O, U; typed O, I and L read as 0, 1, 1): 5 bits a symbol, 12 of them
# = 60 bits, shown as XXXX-XXXX-XXXX.
RECOVERY_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CROCKFORD_READS = str.maketrans({"O": "0", "I": "1", "L": "1"})
RECOVERY_CODE_LENGTH = 12
# ASCII digits only (\d would take other scripts' digits too).
_TOTP_SHAPE = re.compile(rf"^[0-9]{{{TOTP_DIGITS}}}$", re.ASCII)
_CODE_INPUT_LIMIT = 64


class Method(StrEnum):
    TOTP = "totp"
    RECOVERY_CODE = "recovery_code"
    PASSKEY = "passkey"


def has_totp(user: User | int) -> bool:
    user_id = user if isinstance(user, int) else user.pk
    return TotpAuthenticator.objects.filter(user_id=user_id, confirmed_at__isnull=False).exists()


def has_passkey(user: User | int) -> bool:
    user_id = user if isinstance(user, int) else user.pk
    return Passkey.objects.filter(user_id=user_id).exists()


def has_mfa(user: User | int) -> bool:
    """Whether the account has a second factor: a confirmed authenticator app, or a passkey."""
    return has_totp(user) or has_passkey(user)


def methods_of(user: User) -> list[str]:
    """The second factors sign-in offers the account. Recovery codes always, used up or not: the
    answer to someone who only knows the password must not tell them how many are left."""
    offered = [Method.PASSKEY.value] if has_passkey(user) else []
    if has_totp(user):
        offered.append(Method.TOTP.value)
    return [*offered, Method.RECOVERY_CODE.value] if offered else []


def normalize_code(code: object) -> str:
    """A code as typed (spaces, hyphens, lower case) in its canonical form; "" for anything else."""
    if not isinstance(code, str) or len(code) > _CODE_INPUT_LIMIT:
        return ""
    return re.sub(r"[\s-]", "", code).upper().translate(_CROCKFORD_READS)


# --- TOTP ------------------------------------------------------------------------------------------


def new_totp_secret() -> str:
    """160 random bits in base32 (RFC 4226's recommended length), what authenticator apps expect."""
    return pyotp.random_base32(length=32)


def store_totp_secret(authenticator: TotpAuthenticator, secret: str) -> None:
    encrypted = encrypt_secret(secret)
    authenticator.secret_encrypted = encrypted.ciphertext
    authenticator.secret_key_id = encrypted.key_id


def totp_secret_of(authenticator: TotpAuthenticator) -> str:
    """The plaintext secret; SecretUnreadable if no configured key opens it."""
    encrypted = EncryptedSecret(key_id=authenticator.secret_key_id, ciphertext=authenticator.secret_encrypted)
    return decrypt_secret(encrypted)


def current_step(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // TOTP_PERIOD)


@sensitive_variables("code", "secret")
def matching_step(secret: str, code: str, *, now: float | None = None) -> int | None:
    """The time step within the drift window whose code is ``code``, or None. Every candidate is
    compared (in constant time), so the answer takes as long whichever matches."""
    if not _TOTP_SHAPE.fullmatch(code):
        return None  # compare_digest refuses non-ASCII text, and nothing else could match anyway
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD)
    step = current_step(now)
    found = None
    for candidate in range(step - TOTP_DRIFT_STEPS, step + TOTP_DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(candidate), code):
            found = candidate
    return found


@sensitive_variables("code", "secret")
def accept_totp(*, user: User, code: str, confirmed: bool = True, now: float | None = None) -> TotpAuthenticator | None:
    """The account's authenticator if ``code`` is its TOTP code for a time step not accepted before
    (accepting it uses that step, and every earlier one, up); None otherwise. ``confirmed=False``
    checks the app being set up."""
    authenticator = TotpAuthenticator.objects.filter(user=user, confirmed_at__isnull=not confirmed).first()
    if authenticator is None or not authenticator.secret_encrypted:
        return None
    try:
        secret = totp_secret_of(authenticator)
    except SecretUnreadable:
        secret = None
    step = matching_step(secret, code, now=now) if secret is not None else None
    # The one "use once": a later step than any accepted before, for the very secret that was
    # checked (a setup begun meanwhile replaced it), decided by the database. A wrong code runs the
    # same statement, matching nothing, so a used code and a wrong one take the same work.
    used = (
        TotpAuthenticator.objects.filter(
            user_id=user.pk if step is not None else -1,
            confirmed_at__isnull=not confirmed,
            secret_encrypted=authenticator.secret_encrypted,
        )
        .filter(Q(last_used_step__isnull=True) | Q(last_used_step__lt=step if step is not None else 0))
        .update(last_used_step=step if step is not None else 0)
    )
    return authenticator if used == 1 else None


# --- Recovery codes -------------------------------------------------------------------------------


def _recovery_code_hash(user_id: int, code: str, *, secret: str | None = None) -> str:
    # Keyed (SECRET_KEY), bound to the account: a database dump alone cannot be searched for codes.
    return salted_hmac("accounts.mfa.recovery-code", f"{user_id}:{code}", secret=secret, algorithm="sha256").hexdigest()


def _recovery_code_hashes(user_id: int, code: str) -> list[str]:
    """The code's hash under SECRET_KEY and each fallback key, so codes outlive a key rotation."""
    return [_recovery_code_hash(user_id, code, secret=secret) for secret in [None, *settings.SECRET_KEY_FALLBACKS]]


def format_recovery_code(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def is_recovery_code_shape(code: str) -> bool:
    return len(code) == RECOVERY_CODE_LENGTH and all(symbol in RECOVERY_ALPHABET for symbol in code)


def _new_recovery_code() -> str:
    return "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))


@sensitive_variables("codes")
def replace_recovery_codes(*, user: User) -> list[str]:
    """A new set of codes for ``user``, replacing the whole previous set; shown once, as returned."""
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    with transaction.atomic():
        RecoveryCode.objects.filter(user=user).delete()
        RecoveryCode.objects.bulk_create(
            RecoveryCode(user=user, code_hash=_recovery_code_hash(user.pk, code)) for code in codes
        )
    return [format_recovery_code(code) for code in codes]


def recovery_codes_left(user: User | int) -> int:
    user_id = user if isinstance(user, int) else user.pk
    return RecoveryCode.objects.filter(user_id=user_id, used_at__isnull=True).count()


@sensitive_variables("code")
def use_recovery_code(*, user: User, code: str) -> bool:
    """Whether ``code`` is one of the account's unused recovery codes; using it marks it used."""
    if not is_recovery_code_shape(code):
        return False
    used = RecoveryCode.objects.filter(
        user=user, code_hash__in=_recovery_code_hashes(user.pk, code), used_at__isnull=True
    ).update(used_at=timezone.now())
    return used >= 1


# --- The one check both sign-in and re-authentication use -----------------------------------------


def _limit_key(user: User) -> str:
    return f"user:{user.pk}"


@sensitive_variables("code", "canonical")
def prove_second_factor(*, user: User, code: object, client: ClientInfo | None = None) -> Method:
    """Which factor ``code`` proves for ``user`` (using it up); InvalidCode otherwise.

    Every code counts against the client's IP and the account (across every pending sign-in and
    re-authentication: per window, and per day), counted before it is checked, in one atomic step,
    so that codes sent at once cannot all pass a check made before any of them was counted; past a
    limit, RateLimited. A code that proves the factor is given back: only wrong ones stay counted.
    The same answer, whether the code was wrong, used before, of a removed factor or of no shape.
    """
    client = client or ClientInfo()
    # The IP first: codes it refuses never count against the account.
    counted = [
        (MFA_IP, ip_key(client.ip_address)),
        (MFA_ACCOUNT, _limit_key(user)),
        (MFA_ACCOUNT_DAY, _limit_key(user)),
    ]
    for limit, key in counted:
        hit(limit, key, client=client)
    canonical = normalize_code(code)
    method: Method | None = None
    if has_mfa(user):
        if _TOTP_SHAPE.fullmatch(canonical):
            method = Method.TOTP if accept_totp(user=user, code=canonical) is not None else None
        elif use_recovery_code(user=user, code=canonical):
            method = Method.RECOVERY_CODE
    if method is None:
        with transaction.atomic():
            record_event(kind=EventKind.MFA_FAILED, user=user, client=client)
        raise InvalidCode
    # Only wrong codes stay counted: the owner's own sign-ins must not use up the limits (theirs, or
    # those of everyone behind the same NAT).
    for limit, key in counted:
        give_back(limit, key)
    if method is Method.RECOVERY_CODE:
        left = recovery_codes_left(user)
        with transaction.atomic():
            record_event(kind=EventKind.RECOVERY_CODE_USED, user=user, client=client, remaining=left)
            send_account_email(
                template="recovery_code_used",
                to=user.email,
                greet=user,
                context={
                    "remaining": left,
                    "security_link": site_link("accounts:security"),
                    "reset_link": site_link("accounts:password_reset"),
                },
            )
    return method


def forget_wrong_codes(*, user: User) -> None:
    """Clear the account's counts of wrong codes (a security reset): someone who knows the password
    can use them up to keep the owner out, and the owner's reset is how that ends."""
    forget(MFA_ACCOUNT, _limit_key(user))
    forget(MFA_ACCOUNT_DAY, _limit_key(user))


def remove_totp(*, user: User) -> bool:
    """Forget the account's app secret (the row and its last step stay); whether the app was on.
    The recovery codes stay while a passkey does. Call inside the caller's transaction."""
    turned_off = TotpAuthenticator.objects.filter(user=user, confirmed_at__isnull=False).update(
        confirmed_at=None, secret_encrypted="", secret_key_id=""
    )
    TotpAuthenticator.objects.filter(user=user).update(secret_encrypted="", secret_key_id="")
    remove_recovery_codes_if_unneeded(user=user)
    if turned_off:
        retire_emailed_links(user=user)
    return turned_off == 1


def remove_recovery_codes_if_unneeded(*, user: User) -> None:
    """The recovery codes stand in for a lost second factor: with none left, they go too."""
    if not has_mfa(user):
        RecoveryCode.objects.filter(user=user).delete()


def remove_factors(*, user: User) -> bool:
    """Forget every second factor of the account: the app secret, the passkeys, the recovery codes;
    whether one was on. Call inside the caller's transaction, which records why."""
    passkeys_removed, _ = Passkey.objects.filter(user=user).delete()
    totp_removed = remove_totp(user=user)
    RecoveryCode.objects.filter(user=user).delete()
    if passkeys_removed:
        retire_emailed_links(user=user)
    return totp_removed or passkeys_removed > 0
