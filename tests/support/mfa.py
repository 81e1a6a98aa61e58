"""Second factors in tests: turning TOTP on for a user directly, and the codes an authenticator app would show."""

import time

import pyotp


def enable_totp(user, *, recovery_codes: bool = False):
    """Give ``user`` a confirmed authenticator app (as the setup flow leaves it); returns the base32
    secret, or (secret, codes) with ``recovery_codes``."""
    from django.utils import timezone

    from accounts.flows.second_factor import new_totp_secret, replace_recovery_codes, store_totp_secret
    from accounts.models import TotpAuthenticator

    secret = new_totp_secret()
    authenticator, _ = TotpAuthenticator.objects.get_or_create(user=user)
    store_totp_secret(authenticator, secret)
    authenticator.confirmed_at = timezone.now()
    authenticator.save()
    if recovery_codes:
        return secret, replace_recovery_codes(user=user)
    return secret


def totp_code(secret: str, *, at: float | None = None, steps: int = 0) -> str:
    """The code an app shows for ``secret`` now (or at Unix time ``at``), ``steps`` time steps later."""
    moment = (time.time() if at is None else at) + steps * 30
    return pyotp.TOTP(secret).at(moment)


def wrong_code(secret: str) -> str:
    """A 6-digit code that is not the app's code for any time step near now (drift included), so
    it is refused whenever it is typed."""
    near = {totp_code(secret, steps=steps) for steps in range(-3, 4)}
    return next(code for code in (f"{n:06d}" for n in range(123456, 1_000_000, 111_111)) if code not in near)
