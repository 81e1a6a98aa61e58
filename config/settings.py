"""Django settings, read from the environment (12-factor) with safe local defaults."""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Core -------------------------------------------------------------------

# Off unless asked for: a deployment that forgets to configure itself must fail
# closed (see the checks at the bottom), not serve with debug pages.
DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY and DEBUG:
    SECRET_KEY = "insecure-local-development-key-never-use-in-production"  # noqa: S105
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# The origin used to build links in emails. Never derived from the request's
# Host header, which an attacker controls (password-reset poisoning).
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000" if DEBUG else "").rstrip("/")
SITE_NAME = env_str("SITE_NAME", "Todo")

INSTALLED_APPS = [
    "accounts",
    "todos",
    "django.contrib.admin",
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
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
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

# --- Data -------------------------------------------------------------------

# DATABASE_URL selects PostgreSQL in production (Neon: add ?sslmode=require);
# without it the embedded default is a SQLite file beside manage.py.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "todo"),
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "todo-local",
        }
    }

# --- Authentication ---------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:home"
LOGOUT_REDIRECT_URL = "home"

# Argon2id, parameters named here. OWASP's minimum for Argon2id is
# m=19 MiB, t=2, p=1; weaker values are refused below.
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
ACCOUNTS_PASSWORD_RESET_TIMEOUT = env_int("ACCOUNTS_PASSWORD_RESET_TIMEOUT", 60 * 60)
ACCOUNTS_EMAIL_VERIFICATION_TIMEOUT = env_int("ACCOUNTS_EMAIL_VERIFICATION_TIMEOUT", 24 * 60 * 60)

# --- Email ------------------------------------------------------------------

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
if env_str("EMAIL_BACKEND"):
    EMAIL_BACKEND = env_str("EMAIL_BACKEND")
elif ANYMAIL_ESP:
    EMAIL_BACKEND = f"anymail.backends.{ANYMAIL_ESP}.EmailBackend"
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(BASE_DIR / "sent-emails"))
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)

# --- HTTP and cookies ---------------------------------------------------------

SESSION_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 14 * 24 * 60 * 60)
CSRF_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SAMESITE = "Lax"

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and strips it
# from clients), set SECURE_PROXY_SSL_HEADER=true.
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Static files -----------------------------------------------------------

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

# --- I18N -------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging ----------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        # Emailed links carry one-time tokens in their path; keep them out of logs.
        "redact_tokens": {"()": "accounts.log_redaction.RedactTokensFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_tokens"],
        },
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

# --- Refusing to start with unsafe production settings -----------------------


def _production_problems() -> list[str]:
    problems = []
    if not SECRET_KEY:
        problems.append("SECRET_KEY is required (or set DEBUG=true for local development).")
    elif len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith("django-insecure"):
        problems.append("SECRET_KEY must be at least 50 random characters.")
    if not ALLOWED_HOSTS or "*" in ALLOWED_HOSTS:
        problems.append("ALLOWED_HOSTS must list this site's host names (no '*').")
    if not SITE_URL.startswith("https://"):
        problems.append("SITE_URL must be the site's https:// origin.")
    if not ANYMAIL_ESP and not env_str("EMAIL_BACKEND"):
        problems.append("Configure an ESP with ANYMAIL_ESP (or set EMAIL_BACKEND explicitly).")
    return problems


if ACCOUNTS_EMAIL_VERIFICATION not in {"mandatory", "optional"}:
    raise ImproperlyConfigured("ACCOUNTS_EMAIL_VERIFICATION must be 'mandatory' or 'optional'.")
if ARGON2_TIME_COST < 2 or ARGON2_MEMORY_COST_KIB < 19 * 1024 or ARGON2_PARALLELISM < 1:
    raise ImproperlyConfigured("Argon2 parameters must be at least OWASP's m=19 MiB, t=2, p=1.")
if not 8 <= ACCOUNTS_PASSWORD_MIN_LENGTH <= ACCOUNTS_PASSWORD_MAX_LENGTH <= 1024:
    raise ImproperlyConfigured("Password length limits must satisfy 8 <= min <= max <= 1024.")
if not DEBUG and (_problems := _production_problems()):
    raise ImproperlyConfigured("Unsafe production settings:\n- " + "\n- ".join(_problems))
