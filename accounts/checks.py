"""Production-safety rules for the settings, as Django system checks tagged ``deploy``.

The one source of these rules: ``manage.py check --deploy`` lists every failing one with its id,
and outside DEBUG ``AccountsConfig.ready()`` calls ``refuse_unsafe_production_settings()``, so that
gunicorn, manage.py and the WSGI app all refuse to start while any fails. Under DEBUG the settings
fill in local defaults and nothing is refused at start-up. Advice that is not a safety rule (ids
``accounts.W…``) is a warning: ``check --deploy`` lists it, and nothing refuses to start for it.

Values that are wrong in every mode (Argon2 minimums, JWT_ALGORITHM, password length limits, the
email verification mode) are refused earlier, when config/settings.py is imported.
"""

import ipaddress
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from accounts.encryption import invalid_keys

MIN_SECRET_KEY_LENGTH = 50
MIN_SECRET_KEY_DISTINCT_CHARACTERS = 5
# HS256 keys shorter than this are refused here and by accounts.access_tokens when it loads one
# (which imports it from here: importing simplejwt reads SECRET_KEY, whose absence is reported here).
MIN_HMAC_KEY_BYTES = 32  # 256 bits
MIN_WEBHOOK_PASSWORD_LENGTH = 16


def _secret_key() -> str:
    # Django refuses to hand out an empty SECRET_KEY (ImproperlyConfigured); here that is the problem to report.
    try:
        return str(settings.SECRET_KEY)
    except ImproperlyConfigured:
        return ""


@checks.register(checks.Tags.security, deploy=True)
def check_production_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """One error for each way the current settings are unsafe to serve in production."""
    errors: list[checks.CheckMessage] = []
    secret_key = _secret_key()
    if not secret_key:
        errors.append(
            checks.Error("SECRET_KEY is required (or set DEBUG=true for local development).", id="accounts.E001")
        )
    elif (
        len(secret_key) < MIN_SECRET_KEY_LENGTH
        or len(set(secret_key)) < MIN_SECRET_KEY_DISTINCT_CHARACTERS
        or secret_key.startswith("django-insecure")
    ):
        errors.append(checks.Error("SECRET_KEY must be at least 50 random characters.", id="accounts.E002"))
    if not settings.ALLOWED_HOSTS or "*" in settings.ALLOWED_HOSTS:
        errors.append(checks.Error("ALLOWED_HOSTS must list this site's host names (no '*').", id="accounts.E003"))
    if not settings.SITE_URL.startswith("https://"):
        errors.append(checks.Error("SITE_URL must be the site's https:// origin.", id="accounts.E004"))
    jwt_algorithm, jwt_signing_key = settings.JWT_ALGORITHM, settings.JWT_SIGNING_KEY
    if jwt_algorithm == "HS256":
        if len(jwt_signing_key.encode()) < MIN_HMAC_KEY_BYTES or jwt_signing_key == secret_key:
            errors.append(
                checks.Error(
                    f"JWT_SIGNING_KEY must be a dedicated secret of at least {MIN_HMAC_KEY_BYTES} bytes, "
                    "not SECRET_KEY.",
                    id="accounts.E005",
                )
            )
    elif not jwt_signing_key:
        errors.append(
            checks.Error(
                f"JWT_ALGORITHM={jwt_algorithm} needs a PEM private key in JWT_SIGNING_KEY(_FILE).",
                id="accounts.E006",
            )
        )
    mfa_keys = [key.strip() for key in settings.MFA_ENCRYPTION_KEYS if key.strip()]
    if not mfa_keys:
        errors.append(
            checks.Error(
                "MFA_ENCRYPTION_KEYS is required: one or more Fernet keys (comma-separated) that encrypt "
                "second-factor secrets at rest.",
                hint="Make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'",
                id="accounts.E008",
            )
        )
    elif bad := invalid_keys(mfa_keys):
        errors.append(
            checks.Error(
                f"MFA_ENCRYPTION_KEYS: key {', '.join(map(str, bad))} is not a Fernet key "
                "(urlsafe base64 of 32 bytes).",
                id="accounts.E009",
            )
        )
    if problem := webauthn_settings_problem():
        errors.append(checks.Error(problem, id="accounts.E010"))
    webhook_secret = str(getattr(settings, "ANYMAIL", {}).get("WEBHOOK_SECRET") or "")
    if webhook_secret and len(webhook_secret.partition(":")[2]) < MIN_WEBHOOK_PASSWORD_LENGTH:
        # Whoever guesses it can mark any address undeliverable (and so silence its security notices).
        errors.append(
            checks.Error(
                f"ANYMAIL_WEBHOOK_SECRET must be user:password with a random password of at least "
                f"{MIN_WEBHOOK_PASSWORD_LENGTH} characters.",
                id="accounts.E012",
            )
        )
    for provider in settings.SOCIAL_PROVIDERS.values():
        # Discovery, keys and the code exchange over plain http could be read or changed on the way.
        insecure = [
            url for url in (provider["issuer"], provider.get("api_url", "")) if url and not url.startswith("https://")
        ]
        if insecure:
            errors.append(
                checks.Error(
                    f"Sign-in provider {provider['name']!r} must be reached over https:// ({', '.join(insecure)}).",
                    id="accounts.E011",
                )
            )
    if not settings.EMAIL_BACKEND:  # config/settings.py leaves it empty when neither is configured
        errors.append(
            checks.Error("Configure an ESP with ANYMAIL_ESP (or set EMAIL_BACKEND explicitly).", id="accounts.E007")
        )
    return errors


@checks.register(checks.Tags.security, deploy=True)
def check_recommended_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """One warning for each setting that works but has a better replacement."""
    warnings: list[checks.CheckMessage] = []
    if settings.JWT_ALGORITHM == "EdDSA":
        warnings.append(
            checks.Warning(
                "JWT_ALGORITHM=EdDSA is deprecated by RFC 9864; set JWT_ALGORITHM=Ed25519 (same key, and "
                "EdDSA tokens keep verifying until they expire).",
                hint="Clients verifying tokens through /.well-known/jwks.json must accept alg Ed25519.",
                id="accounts.W001",
            )
        )
    return warnings


def webauthn_settings_problem() -> str | None:
    """Why passkeys cannot work with WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS, or None.

    Browsers accept an RP ID that is a host name (never an IP address) equal to, or a parent domain
    of, the page's host, on a secure origin (https://, or http://localhost)."""
    rp_id = settings.WEBAUTHN_RP_ID
    if not rp_id:
        return "WEBAUTHN_RP_ID is required (it defaults to SITE_URL's host)."
    try:
        ipaddress.ip_address(rp_id.strip("[]"))
    except ValueError:
        pass
    else:
        return f"WEBAUTHN_RP_ID must be a host name, not the IP address {rp_id}."
    if not settings.WEBAUTHN_ORIGINS:
        return "WEBAUTHN_ORIGINS must list the origins passkeys are used on (it defaults to SITE_URL)."
    for origin in settings.WEBAUTHN_ORIGINS:
        parts = urlsplit(origin)
        host = parts.hostname or ""
        secure = parts.scheme == "https" or (parts.scheme == "http" and host == "localhost")
        if not secure or parts.path not in ("", "/") or not (host == rp_id or host.endswith(f".{rp_id}")):
            return f"WEBAUTHN_ORIGINS: {origin} is not a secure origin on {rp_id} (the WEBAUTHN_RP_ID)."
    return None


def refuse_unsafe_production_settings() -> None:
    """Raise ImproperlyConfigured listing every failing production check, if any fails."""
    problems = check_production_settings()
    if problems:
        raise ImproperlyConfigured(
            "Unsafe production settings:\n" + "\n".join(f"- ({problem.id}) {problem.msg}" for problem in problems)
        )
