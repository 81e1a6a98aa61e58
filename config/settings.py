"""Django settings, read from the environment (12-factor) with safe local defaults.

One block per integration: core, database, cache, authentication and passwords, emailed links and
retention, device sessions and refresh tokens, JWT access tokens, API, rate limits, email, HTTP and
security headers, CORS, static files, logging. Values that are wrong in every mode are refused at the
bottom, when this module is imported. The production-safety rules (secrets, hosts, the https origin,
an email provider) are system checks tagged ``deploy`` in accounts/checks.py: outside DEBUG they stop
every process at start-up, and ``manage.py check --deploy`` lists them.
"""

import base64
import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Core -------------------------------------------------------------------------------------------

# Off unless asked for: a deployment that forgets to configure itself must fail
# closed (accounts/checks.py), not serve with debug pages.
DEBUG = env_bool("DEBUG", False)

# Secrets and origins are empty unless configured; DEBUG alone fills in local defaults.
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY and DEBUG:
    SECRET_KEY = "insecure-local-development-key-never-use-in-production"  # noqa: S105 DEBUG only
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])

# The origin used to build links in emails. Never derived from the request's
# Host header, which an attacker controls (password-reset poisoning).
# (localhost, not 127.0.0.1, under DEBUG: a passkey's relying party must be a host name, never an IP.)
SITE_URL = env_str("SITE_URL", "http://localhost:8000" if DEBUG else "").rstrip("/")
SITE_NAME = env_str("SITE_NAME", "Todo")

INSTALLED_APPS = [
    "accounts",
    "todos",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_tasks",
    "django_tasks_db",
    "accounts.apps.AccountsAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "accounts.middleware.SecurityHeadersMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.DeviceSessionMiddleware",
    "accounts.middleware.DeviceCookieMiddleware",
    "accounts.middleware.NoStoreMiddleware",
    "accounts.middleware.RateLimitedPageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.site",
            ],
        },
    },
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Database ---------------------------------------------------------------------------------------

# DATABASE_URL selects PostgreSQL in production (Neon: add ?sslmode=require);
# without it the embedded default is a SQLite file beside manage.py.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Fail fast when the database is unreachable: a 503 within seconds, never a hung worker.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", env_int("DATABASE_CONNECT_TIMEOUT", 3))
    # Notice a dead or partitioned server on an open connection within seconds too.
    for option, value in {
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 2,
        "tcp_user_timeout": 5000,
    }.items():
        DATABASES["default"]["OPTIONS"].setdefault(option, value)
    # Parameters travel apart from the SQL, encoded by psycopg's C code, instead of being quoted
    # into it in Python: the largest share of a query's CPU in the app's hot paths. Statements
    # are still not prepared (Django sets prepare_threshold=None), so PgBouncer's transaction
    # pooling (Neon's pooled endpoint) works as before.
    DATABASES["default"]["OPTIONS"].setdefault("server_side_binding", env_bool("DATABASE_SERVER_SIDE_BINDING", True))
    if env_str("DATABASE_STATEMENT_TIMEOUT_MS"):
        # Opt-in: Neon's pooled (PgBouncer) endpoint refuses startup options;
        # set it on the role there instead (ALTER ROLE ... SET statement_timeout).
        DATABASES["default"]["OPTIONS"]["options"] = f"-c statement_timeout={env_str('DATABASE_STATEMENT_TIMEOUT_MS')}"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (rate-limit counters and session revocation state) ----------------------------------------

REDIS_URL = env_str("REDIS_URL")
CACHES: dict[str, dict[str, Any]]
if REDIS_URL:
    CACHES = {
        "default": {
            # django-redis: one client per server and process-wide connection pools, and an incr()
            # that is one atomic round trip (a Lua script), both on every API request or refresh.
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "todo"),
            "OPTIONS": {
                # An unreachable Redis answers within a second, never hangs a worker.
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 1,
                # IGNORE_EXCEPTIONS stays off: callers apply and log their own "Redis is down" policy
                # (accounts/rate_limits.py, revocation.py, health.py), which silent misses would hide.
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "todo-local",
        }
    }

# --- Authentication and passwords -------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:home"
LOGOUT_REDIRECT_URL = "home"

# Argon2id, parameters named here. OWASP's minimum for Argon2id is
# m=19 MiB, t=2, p=1; weaker values are refused at the bottom.
ARGON2_TIME_COST = env_int("ARGON2_TIME_COST", 2)
ARGON2_MEMORY_COST_KIB = env_int("ARGON2_MEMORY_COST_KIB", 19 * 1024)
ARGON2_PARALLELISM = env_int("ARGON2_PARALLELISM", 1)

PASSWORD_HASHERS = [
    "accounts.hashers.ConfiguredArgon2PasswordHasher",
    # Kept only so that older hashes still verify and are upgraded on sign-in.
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

ACCOUNTS_PASSWORD_MIN_LENGTH = env_int("ACCOUNTS_PASSWORD_MIN_LENGTH", 12)
# Longer input is rejected with a clear error, never silently truncated.
ACCOUNTS_PASSWORD_MAX_LENGTH = env_int("ACCOUNTS_PASSWORD_MAX_LENGTH", 128)

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
        "OPTIONS": {"user_attributes": ("email", "name")},
    },
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": ACCOUNTS_PASSWORD_MIN_LENGTH},
    },
    {
        "NAME": "accounts.validators.MaximumLengthValidator",
        "OPTIONS": {"max_length": ACCOUNTS_PASSWORD_MAX_LENGTH},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# "mandatory": sign-in needs a verified address; "optional": it does not.
ACCOUNTS_EMAIL_VERIFICATION = env_str("ACCOUNTS_EMAIL_VERIFICATION", "mandatory")
# Sensitive actions (change email or password, delete the account, end other
# sessions) need a sign-in or password entry within this many seconds.
ACCOUNTS_REAUTHENTICATION_WINDOW = env_int("ACCOUNTS_REAUTHENTICATION_WINDOW", 5 * 60)

# --- Multi-factor authentication (accounts/flows/mfa.py) -----------------------------------------------

# Fernet keys (urlsafe base64 of 32 bytes, comma-separated) that encrypt TOTP secrets at rest. The first
# encrypts; every one decrypts, so a new key goes first and the old ones stay until
# `manage.py rotate_mfa_keys` has re-encrypted every secret. Required in production; under DEBUG a key
# derived from SECRET_KEY stands in (so `make run` needs none).
MFA_ENCRYPTION_KEYS = env_list("MFA_ENCRYPTION_KEYS")
if not MFA_ENCRYPTION_KEYS and DEBUG:
    _derived_key = hashlib.sha256(b"accounts.mfa.development-key:" + SECRET_KEY.encode()).digest()
    MFA_ENCRYPTION_KEYS = [base64.urlsafe_b64encode(_derived_key).decode()]
# The name authenticator apps show beside the account.
ACCOUNTS_MFA_TOTP_ISSUER = env_str("ACCOUNTS_MFA_TOTP_ISSUER", SITE_NAME)
# A sign-in waiting for its second factor lasts this long and takes at most this many codes.
ACCOUNTS_MFA_PENDING_LIFETIME = env_int("ACCOUNTS_MFA_PENDING_LIFETIME", 10 * 60)
ACCOUNTS_MFA_PENDING_ATTEMPTS = env_int("ACCOUNTS_MFA_PENDING_ATTEMPTS", 5)
ACCOUNTS_MFA_PENDING_COOKIE_NAME = env_str("ACCOUNTS_MFA_PENDING_COOKIE_NAME", "todo_mfa_pending")
# The admin opens only on a browser session that proved its staff member's second factor this recently.
ACCOUNTS_ADMIN_SECOND_FACTOR_MAX_AGE = env_int("ACCOUNTS_ADMIN_SECOND_FACTOR_MAX_AGE", 12 * 60 * 60)

# --- Passkeys (WebAuthn, accounts/flows/passkeys.py) -------------------------------------------------

# The relying party: passkeys are bound to this domain (SITE_URL's host unless set) and accepted only
# from these origins (SITE_URL unless set). Never taken from a request's Host or Origin header. Changing
# the RP ID makes every registered passkey unusable: browsers offer a passkey only to its own RP ID.
WEBAUTHN_RP_ID = env_str("WEBAUTHN_RP_ID", urlsplit(SITE_URL).hostname or "")
WEBAUTHN_ORIGINS = env_list("WEBAUTHN_ORIGINS", [SITE_URL] if SITE_URL else [])
WEBAUTHN_RP_NAME = env_str("WEBAUTHN_RP_NAME", SITE_NAME)
# How long a browser has to answer a passkey prompt (the challenge then expires).
WEBAUTHN_CHALLENGE_LIFETIME = env_int("WEBAUTHN_CHALLENGE_LIFETIME", 5 * 60)
# How many passkeys one account may hold.
WEBAUTHN_MAX_PASSKEYS = env_int("WEBAUTHN_MAX_PASSKEYS", 20)

# --- Social and OpenID Connect sign-in (accounts/flows/social.py) -------------------------------------

# SOCIAL_PROVIDERS=google,microsoft,github,acme names the providers, each configured by
# SOCIAL_<NAME>_CLIENT_ID and _CLIENT_SECRET, and for OpenID providers _ISSUER (its discovery
# document is <issuer>/.well-known/openid-configuration; Google's and Microsoft's are known);
# optional _SCOPES, _DISPLAY_NAME and _TRUST_EMAIL (link to an existing account by an address the
# provider verified: only for providers that own their users' addresses, such as Google for Gmail).
# "github" is plain OAuth 2 (SOCIAL_GITHUB_URL and _API_URL for GitHub Enterprise Server).
_KNOWN_ISSUERS = {
    "google": "https://accounts.google.com",
    # Any Microsoft Entra tenant and personal accounts; set a tenant's own issuer to admit only it.
    "microsoft": "https://login.microsoftonline.com/common/v2.0",
}
_DISPLAY_NAMES = {"google": "Google", "microsoft": "Microsoft", "github": "GitHub"}


def _social_provider(name: str) -> dict[str, Any]:
    prefix = f"SOCIAL_{name.upper()}_"
    github = name == "github"
    provider: dict[str, Any] = {
        "name": name,
        "kind": "github" if github else "oidc",
        "display_name": env_str(prefix + "DISPLAY_NAME", _DISPLAY_NAMES.get(name, name.title())),
        "client_id": env_str(prefix + "CLIENT_ID"),
        "client_secret": env_str(prefix + "CLIENT_SECRET"),
        # Separated by spaces or commas.
        "scopes": env_str(prefix + "SCOPES").replace(",", " ").split()
        or (["read:user", "user:email"] if github else ["openid", "email", "profile"]),
        "trust_email": env_bool(prefix + "TRUST_EMAIL", False),
    }
    if github:
        provider["issuer"] = env_str(prefix + "URL", "https://github.com").rstrip("/")
        provider["api_url"] = env_str(prefix + "API_URL", "https://api.github.com").rstrip("/")
    else:
        provider["issuer"] = env_str(prefix + "ISSUER", _KNOWN_ISSUERS.get(name, "")).rstrip("/")
    missing = [key for key in ("client_id", "client_secret", "issuer") if not provider[key]]
    if missing:
        names = ", ".join(prefix + ("ISSUER" if key == "issuer" else key.upper()) for key in missing)
        raise ImproperlyConfigured(f"SOCIAL_PROVIDERS names {name!r}: set {names}.")
    if not github and "openid" not in provider["scopes"]:
        raise ImproperlyConfigured(f"{prefix}SCOPES must include openid.")
    return provider


SOCIAL_PROVIDERS: dict[str, dict[str, Any]] = {}
for _name in env_list("SOCIAL_PROVIDERS"):
    _name = _name.lower()
    if not _name.isascii() or not _name.isalnum():
        raise ImproperlyConfigured(f"SOCIAL_PROVIDERS: {_name!r} is not a name of letters and digits.")
    SOCIAL_PROVIDERS[_name] = _social_provider(_name)
# How long a person has between leaving for the provider and coming back.
SOCIAL_FLOW_LIFETIME = env_int("SOCIAL_FLOW_LIFETIME", 10 * 60)
# Every request to a provider (discovery, keys, token, user info) gives up after this many seconds.
SOCIAL_HTTP_TIMEOUT = env_int("SOCIAL_HTTP_TIMEOUT", 5)
# How long a provider's discovery document and keys are kept (a key it has not published yet is
# fetched at once, at most once a minute).
SOCIAL_METADATA_CACHE_SECONDS = env_int("SOCIAL_METADATA_CACHE_SECONDS", 60 * 60)

# --- Emailed links and retention ----------------------------------------------------------------------

ACCOUNTS_PASSWORD_RESET_TIMEOUT = env_int("ACCOUNTS_PASSWORD_RESET_TIMEOUT", 60 * 60)
# Signing in with an emailed code or link: how long they work, and how many codes may be tried.
ACCOUNTS_EMAIL_SIGN_IN_TIMEOUT = env_int("ACCOUNTS_EMAIL_SIGN_IN_TIMEOUT", 10 * 60)
ACCOUNTS_EMAIL_SIGN_IN_ATTEMPTS = env_int("ACCOUNTS_EMAIL_SIGN_IN_ATTEMPTS", 5)
ACCOUNTS_EMAIL_VERIFICATION_TIMEOUT = env_int("ACCOUNTS_EMAIL_VERIFICATION_TIMEOUT", 24 * 60 * 60)
# The link that cancels an email change, sent to the current address, also
# undoes a confirmed change this long (an intruder with the password may
# confirm within seconds; the owner may read the notice days later).
ACCOUNTS_EMAIL_CHANGE_UNDO_TIMEOUT = env_int("ACCOUNTS_EMAIL_CHANGE_UNDO_TIMEOUT", 7 * 24 * 60 * 60)
# The "not me" link of a new passkey's notice removes it this long. Where the passkey is the
# account's only second factor, the link also turns two-factor off, which whoever reads the
# mailbox could do too: so it is short (the owner of a password an intruder used reads the
# notice the same day, or asks support).
ACCOUNTS_PASSKEY_NOT_ME_TIMEOUT = env_int("ACCOUNTS_PASSKEY_NOT_ME_TIMEOUT", 24 * 60 * 60)
# The "not me" link of a connected provider's notice disconnects it this long. It also sets a new
# password, which the mailbox's reader could do anyway by a reset, so it can wait for an owner who
# reads the notice days later.
ACCOUNTS_SOCIAL_NOT_ME_TIMEOUT = env_int("ACCOUNTS_SOCIAL_NOT_ME_TIMEOUT", 7 * 24 * 60 * 60)
# `manage.py purge_auth_data` deletes accounts that were never verified and
# never signed in after this many days (someone signed up with an address
# that is not theirs, or never came back).
ACCOUNTS_UNVERIFIED_ACCOUNT_RETENTION_DAYS = env_int("ACCOUNTS_UNVERIFIED_ACCOUNT_RETENTION_DAYS", 7)
# Security events older than this are deleted by `manage.py purge_auth_data`.
ACCOUNTS_AUDIT_RETENTION_DAYS = env_int("ACCOUNTS_AUDIT_RETENTION_DAYS", 180)

# --- Device sessions and refresh tokens ---------------------------------------------------------------

# Refresh tokens: opaque, rotated on every use, in an HttpOnly cookie.
ACCOUNTS_REFRESH_IDLE_LIFETIME = env_int("ACCOUNTS_REFRESH_IDLE_LIFETIME", 7 * 24 * 60 * 60)
ACCOUNTS_REFRESH_ABSOLUTE_LIFETIME = env_int("ACCOUNTS_REFRESH_ABSOLUTE_LIFETIME", 30 * 24 * 60 * 60)
# Seconds after a rotation during which the just-replaced token is answered
# (concurrent tabs) instead of being treated as stolen.
ACCOUNTS_REFRESH_REUSE_GRACE = env_int("ACCOUNTS_REFRESH_REUSE_GRACE", 10)
ACCOUNTS_REFRESH_COOKIE_NAME = env_str("ACCOUNTS_REFRESH_COOKIE_NAME", "todo_refresh")
ACCOUNTS_REFRESH_COOKIE_PATH = "/api/auth/"
ACCOUNTS_REFRESH_COOKIE_SECURE = env_bool("ACCOUNTS_REFRESH_COOKIE_SECURE", not DEBUG)
# The sign-up proof cookie (accounts.flows.verification). Over HTTPS it has the __Host- prefix:
# a proof planted from a sibling subdomain (or over plain HTTP) would keep a squatter's password.
ACCOUNTS_SIGNUP_PROOF_COOKIE_NAME = "__Host-todo_signup" if ACCOUNTS_REFRESH_COOKIE_SECURE else "todo_signup"
# Ended sessions stay listed (for support and the audit trail) this long.
ACCOUNTS_ENDED_SESSION_RETENTION = env_int("ACCOUNTS_ENDED_SESSION_RETENTION", 30 * 24 * 60 * 60)
# New-device notices (accounts.flows.known_devices): every sign-in leaves a random id in this
# HttpOnly cookie (400 days, the longest browsers keep one) and the account remembers its hash;
# a sign-in from a browser the account has not used before emails the owner, at most this many a day.
# Over HTTPS the name has the __Host- prefix: browsers then refuse the cookie from a sibling
# subdomain (or over plain HTTP), so nobody can plant an id they know in the owner's browser.
ACCOUNTS_DEVICE_COOKIE_NAME = env_str(
    "ACCOUNTS_DEVICE_COOKIE_NAME", "__Host-todo_device" if ACCOUNTS_REFRESH_COOKIE_SECURE else "todo_device"
)
ACCOUNTS_DEVICE_COOKIE_AGE = env_int("ACCOUNTS_DEVICE_COOKIE_AGE", 400 * 24 * 60 * 60)
ACCOUNTS_NEW_DEVICE_NOTICES_PER_DAY = env_int("ACCOUNTS_NEW_DEVICE_NOTICES_PER_DAY", 10)

# --- JWT access tokens (accounts/access_tokens.py) ----------------------------------------------------

# Short-lived JWTs signed with a dedicated key (never SECRET_KEY).
# HS256 takes a secret of at least 32 bytes; Ed25519 and ES256 take a PEM private
# key and publish the public keys at /.well-known/jwks.json. EdDSA is the name RFC 9864
# deprecates for Ed25519: the same keys and signatures, accepted for existing setups.
JWT_ALGORITHM = env_str("JWT_ALGORITHM", "HS256")
JWT_SIGNING_KEY = env_str("JWT_SIGNING_KEY")
if env_str("JWT_SIGNING_KEY_FILE"):
    JWT_SIGNING_KEY = Path(env_str("JWT_SIGNING_KEY_FILE")).read_text().strip()
if not JWT_SIGNING_KEY and DEBUG:
    JWT_SIGNING_KEY = "insecure-local-development-jwt-key-never-use-in-production"
# Keys that are no longer used for signing but whose tokens stay valid until
# the operator removes them: HS256 secrets (comma-separated) or PEM files.
JWT_VERIFYING_KEY_FALLBACKS = env_list("JWT_VERIFYING_KEY_FALLBACKS") + [
    Path(path).read_text().strip() for path in env_list("JWT_VERIFYING_KEY_FALLBACK_FILES")
]
JWT_ACCESS_TOKEN_LIFETIME = env_int("JWT_ACCESS_TOKEN_LIFETIME", 5 * 60)
JWT_ISSUER = env_str("JWT_ISSUER", SITE_URL or "todo")
JWT_AUDIENCE = env_str("JWT_AUDIENCE", f"{SITE_URL or 'todo'}/api")

# The key ring above signs and verifies; simplejwt's own settings are read only by the
# JWTStatelessUserAuthentication.get_user() that accounts.api.authentication inherits:
# which claim names the user, and which class stands for them.
SIMPLE_JWT = {
    "USER_ID_CLAIM": "sub",
    "TOKEN_USER_CLASS": "accounts.access_tokens.AccessTokenUser",
}

# --- API (Django REST framework, OpenAPI) ---------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.api.authentication.AccessTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only: a cross-site HTML form cannot produce it without a CORS preflight.
    "DEFAULT_PARSER_CLASSES": ["accounts.api.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "accounts.api.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": f"{SITE_NAME} API",
    "DESCRIPTION": (
        "The API of the todo single-page app. Access tokens are short-lived JWTs sent as "
        "`Authorization: Bearer <token>`; the refresh token lives only in an HttpOnly cookie "
        f"named `{ACCOUNTS_REFRESH_COOKIE_NAME}` (path `{ACCOUNTS_REFRESH_COOKIE_PATH}`). "
        "Requests that the cookie authenticates need Django's CSRF token in `X-CSRFToken`. "
        'Every error has the shape `{"code": ..., "detail": ..., "fields": {...}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "refreshCookie": {"type": "apiKey", "in": "cookie", "name": ACCOUNTS_REFRESH_COOKIE_NAME},
            "csrfHeader": {"type": "apiKey", "in": "header", "name": "X-CSRFToken"},
        }
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    # Deep links put an <a> inside each operation's button (an accessibility error).
    "SWAGGER_UI_SETTINGS": {"deepLinking": False},
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "accounts.api.schema.document_common_errors",
    ],
}

# --- Rate limits (django-ratelimit counters in the default cache) ---------------------------------------

# "count/period": s, m, h or d, optionally with a multiplier ("5/5m").
ACCOUNTS_RATE_LIMITS = {
    "sign_in_failures_per_account": env_str("RATE_LIMIT_SIGN_IN_PER_ACCOUNT", "5/5m"),
    "sign_in_failures_per_ip": env_str("RATE_LIMIT_SIGN_IN_PER_IP", "30/m"),
    "sign_up_per_ip": env_str("RATE_LIMIT_SIGN_UP_PER_IP", "10/h"),
    "password_reset_mails_per_address": env_str("RATE_LIMIT_MAILS_PER_ADDRESS", "3/h"),
    "password_reset_mails_per_ip": env_str("RATE_LIMIT_MAILS_PER_IP", "20/h"),
    "verification_mails_per_address": env_str("RATE_LIMIT_MAILS_PER_ADDRESS", "3/h"),
    "verification_mails_per_ip": env_str("RATE_LIMIT_MAILS_PER_IP", "20/h"),
    "sign_up_mails_per_address": env_str("RATE_LIMIT_MAILS_PER_ADDRESS", "3/h"),
    # Sign-in codes emailed, per address and per client IP; wrong codes tried per client IP (each
    # code also takes only ACCOUNTS_EMAIL_SIGN_IN_ATTEMPTS, counted in the database).
    "sign_in_code_mails_per_address": env_str("RATE_LIMIT_SIGN_IN_CODE_MAILS_PER_ADDRESS", "5/h"),
    "sign_in_code_mails_per_ip": env_str("RATE_LIMIT_MAILS_PER_IP", "20/h"),
    "sign_in_code_failures_per_ip": env_str("RATE_LIMIT_SIGN_IN_CODE_FAILURES_PER_IP", "30/10m"),
    # "No account uses this address" emails, per address: anyone can ask for them, so few.
    "no_account_mails_per_address": env_str("RATE_LIMIT_NO_ACCOUNT_MAILS_PER_ADDRESS", "2/d"),
    "refresh_per_session": env_str("RATE_LIMIT_REFRESH_PER_SESSION", "60/m"),
    "password_confirmation_per_user": env_str("RATE_LIMIT_PASSWORD_CHANGE_PER_USER", "5/m"),
    # Second-factor codes tried (right or wrong), across every pending sign-in and re-authentication of
    # an account: in 15 minutes, and in a day (which bounds a patient guesser: 50 a day is about a 1 in
    # 7000 chance a day of hitting one of the three codes a ±1 step window accepts).
    "mfa_codes_per_account": env_str("RATE_LIMIT_MFA_PER_ACCOUNT", "10/15m"),
    "mfa_codes_per_account_per_day": env_str("RATE_LIMIT_MFA_PER_ACCOUNT_PER_DAY", "50/d"),
    "mfa_codes_per_ip": env_str("RATE_LIMIT_MFA_PER_IP", "30/10m"),
    # Passkey prompts (each a stored challenge), per client IP; registration prompts per account too.
    "passkey_prompts_per_ip": env_str("RATE_LIMIT_PASSKEY_PER_IP", "60/10m"),
    # Sign-ins with a provider begun, per client IP: each sends requests to the provider.
    "social_sign_ins_per_ip": env_str("RATE_LIMIT_SOCIAL_PER_IP", "30/10m"),
}
# django-ratelimit's default today, named so that a new default cannot silently rename every counter.
RATELIMIT_HASH_ALGORITHM = "hashlib.sha256"

# --- Email --------------------------------------------------------------------------------------------

DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", f"{SITE_NAME} <no-reply@localhost>")
SERVER_EMAIL = env_str("SERVER_EMAIL", DEFAULT_FROM_EMAIL)

# Every ANYMAIL_<NAME> variable becomes ANYMAIL["<NAME>"], so any ESP that
# anymail supports is configured the same way, e.g. ANYMAIL_ESP=postmark and
# ANYMAIL_POSTMARK_SERVER_TOKEN=...
ANYMAIL_ESP = env_str("ANYMAIL_ESP").lower()
ANYMAIL = {
    key.removeprefix("ANYMAIL_"): value
    for key, value in os.environ.items()
    if key.startswith("ANYMAIL_") and key != "ANYMAIL_ESP"
}
# An explicit EMAIL_BACKEND, else the ESP's; with neither, the console in DEBUG and
# nothing otherwise (accounts/checks.py then refuses to start).
EMAIL_BACKEND = env_str("EMAIL_BACKEND") or (f"anymail.backends.{ANYMAIL_ESP}.EmailBackend" if ANYMAIL_ESP else "")
if not EMAIL_BACKEND and DEBUG:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(BASE_DIR / "sent-emails"))
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
# Plain SMTP (EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend) instead of an ESP's API.
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
# Do the account-dependent work of the flows that must not say whether an address has an
# account (sign-up, password reset, ...) on a thread after the answer (accounts.background).
ACCOUNTS_EMAIL_IN_BACKGROUND = env_bool("ACCOUNTS_EMAIL_IN_BACKGROUND", not DEBUG)

# The outbox (accounts.outbox): "database" keeps every email, with its task, in the transaction
# of the change that causes it, and `python manage.py db_worker` sends them (django-tasks'
# DatabaseBackend); "immediate" sends in this process once the change commits (local development:
# nothing else to start, no retries).
ACCOUNTS_EMAIL_QUEUE = env_str("ACCOUNTS_EMAIL_QUEUE", "immediate" if DEBUG else "database")
if ACCOUNTS_EMAIL_QUEUE not in {"database", "immediate"}:
    raise ImproperlyConfigured("ACCOUNTS_EMAIL_QUEUE must be 'database' or 'immediate'.")
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# Attempts per email, and the backoff between them: RETRY_SECONDS, doubled after each failure, at
# most RETRY_MAX_SECONDS (10 attempts: about 4 hours in all).
ACCOUNTS_EMAIL_MAX_ATTEMPTS = env_int("ACCOUNTS_EMAIL_MAX_ATTEMPTS", 10)
ACCOUNTS_EMAIL_RETRY_SECONDS = env_int("ACCOUNTS_EMAIL_RETRY_SECONDS", 30)
ACCOUNTS_EMAIL_RETRY_MAX_SECONDS = env_int("ACCOUNTS_EMAIL_RETRY_MAX_SECONDS", 3600)
# How long one attempt may take before the worker is taken to have stopped mid-send (then the
# email is sent again): longer than the provider's timeout, many times over.
ACCOUNTS_EMAIL_LEASE_SECONDS = env_int("ACCOUNTS_EMAIL_LEASE_SECONDS", max(60, 6 * EMAIL_TIMEOUT))
# /readyz/ reports the queue as stuck once an email is due for longer than this.
ACCOUNTS_EMAIL_STUCK_SECONDS = env_int("ACCOUNTS_EMAIL_STUCK_SECONDS", 300)
# Sent and failed emails (their address, template and status; never their content) are kept this long.
ACCOUNTS_EMAIL_KEEP_DAYS = env_int("ACCOUNTS_EMAIL_KEEP_DAYS", 30)
# Bounces and complaints (accounts.flows.deliverability), from the ESP's tracking webhook at
# /anymail/<esp>/tracking/, which answers only with ANYMAIL_WEBHOOK_SECRET set ("user:password",
# the basic auth the ESP is given in the webhook's URL). A hard bounce, a reject or a complaint
# marks the address undeliverable at once; soft bounces do when this many arrive within the window.
ACCOUNTS_SOFT_BOUNCE_LIMIT = env_int("ACCOUNTS_SOFT_BOUNCE_LIMIT", 3)
ACCOUNTS_SOFT_BOUNCE_WINDOW_DAYS = env_int("ACCOUNTS_SOFT_BOUNCE_WINDOW_DAYS", 7)

# --- HTTP, cookies and security headers -----------------------------------------------------------------

SESSION_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 14 * 24 * 60 * 60)
CSRF_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)

# Every page and response: scripts, styles and everything else from this origin
# only, no inline script, no plugins, no <base>, never framed. Forms post here; the
# middleware adds the sign-in providers' origins to form-action (the buttons' posts go
# on to them, redirected, which browsers check against form-action too).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)

# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and strips it
# from clients), set SECURE_PROXY_SSL_HEADER=true.
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# How many reverse proxies (load balancers) in front of the app append to X-Forwarded-For,
# for the client address that rate limits and the audit log see. 0: the client address is
# REMOTE_ADDR and the header is ignored.
ACCOUNTS_TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

# Request bodies larger than this are refused with a 400 (the API's largest
# field, a todo's notes, fits many times over).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 256 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 100

# --- CORS -----------------------------------------------------------------------------------------------

# Off unless origins are listed (the SPA is served by this site and needs none);
# then only those origins, only for the API.
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_CREDENTIALS = env_bool("CORS_ALLOW_CREDENTIALS", False)

# --- Static files ---------------------------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Logging --------------------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        # Emailed links carry one-time tokens in their path; keep them out of logs.
        "redact_tokens": {"()": "accounts.log_redaction.RedactTokensFilter"},
        # A database outage answers every request with a 503: one line each, not a traceback.
        "collapse_database_outages": {"()": "accounts.log_redaction.CollapseDatabaseOutageFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_tokens", "collapse_database_outages"],
        },
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

# --- Values that are wrong in every mode ------------------------------------------------------------------

# Refused here, at import, like a malformed integer or boolean (config/env.py): no mode makes them
# right, no app code is needed to judge them, and even tools that only import the settings stop.
# The rules that depend on the mode (production safety) are system checks: accounts/checks.py.
if ACCOUNTS_EMAIL_VERIFICATION not in {"mandatory", "optional"}:
    raise ImproperlyConfigured("ACCOUNTS_EMAIL_VERIFICATION must be 'mandatory' or 'optional'.")
if ARGON2_TIME_COST < 2 or ARGON2_MEMORY_COST_KIB < 19 * 1024 or ARGON2_PARALLELISM < 1:
    raise ImproperlyConfigured("Argon2 parameters must be at least OWASP's m=19 MiB, t=2, p=1.")
if JWT_ALGORITHM not in {"HS256", "Ed25519", "EdDSA", "ES256"}:
    raise ImproperlyConfigured("JWT_ALGORITHM must be HS256, Ed25519, EdDSA or ES256.")
if not 1 <= ACCOUNTS_EMAIL_SIGN_IN_ATTEMPTS <= 10 or not 60 <= ACCOUNTS_EMAIL_SIGN_IN_TIMEOUT <= 60 * 60:
    raise ImproperlyConfigured("ACCOUNTS_EMAIL_SIGN_IN_ATTEMPTS must be 1-10, ACCOUNTS_EMAIL_SIGN_IN_TIMEOUT 60-3600.")
if not 1 <= ACCOUNTS_MFA_PENDING_ATTEMPTS <= 10 or not 60 <= ACCOUNTS_MFA_PENDING_LIFETIME <= 60 * 60:
    raise ImproperlyConfigured("ACCOUNTS_MFA_PENDING_ATTEMPTS must be 1-10, ACCOUNTS_MFA_PENDING_LIFETIME 60-3600.")
if not 8 <= ACCOUNTS_PASSWORD_MIN_LENGTH <= ACCOUNTS_PASSWORD_MAX_LENGTH <= 1024:
    raise ImproperlyConfigured("Password length limits must satisfy 8 <= min <= max <= 1024.")
