"""config/settings.py loaded in subprocesses with controlled environments: safe defaults, fail-closed production."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]

PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "q7Vd2kLp9Xz4Rb8Nw1Hs6Tg3Jy5Mc0Fa7Ue2Ki9Lo4Pz8Qx1Sw6Dv3Bn5Cm0Ar7Et",
    "ALLOWED_HOSTS": "todo.example",
    "SITE_URL": "https://todo.example",
    "ANYMAIL_ESP": "postmark",
    "ANYMAIL_POSTMARK_SERVER_TOKEN": "x",
    "JWT_SIGNING_KEY": "Jw7Kd2pL9xZ4rB8nW1hS6tG3jY5mC0fA7uE2kI9lO4p",
}

SUMMARY = """
import json, config.settings as s
print(json.dumps({
    "DEBUG": s.DEBUG,
    "ENGINE": s.DATABASES["default"]["ENGINE"],
    "DB_NAME": str(s.DATABASES["default"]["NAME"]),
    "DB_OPTIONS": s.DATABASES["default"].get("OPTIONS", {}),
    "DB_HOST": s.DATABASES["default"].get("HOST"),
    "CACHE_BACKEND": s.CACHES["default"]["BACKEND"],
    "CACHE_LOCATION": s.CACHES["default"].get("LOCATION"),
    "EMAIL_BACKEND": s.EMAIL_BACKEND,
    "EMAIL_FILE_PATH": s.EMAIL_FILE_PATH,
    "ANYMAIL": s.ANYMAIL,
    "SITE_URL": s.SITE_URL,
    "ALLOWED_HOSTS": s.ALLOWED_HOSTS,
    "SECRET_KEY": s.SECRET_KEY,
    "SESSION_COOKIE_SECURE": s.SESSION_COOKIE_SECURE,
    "CSRF_COOKIE_SECURE": s.CSRF_COOKIE_SECURE,
    "SECURE_SSL_REDIRECT": s.SECURE_SSL_REDIRECT,
    "SECURE_HSTS_SECONDS": s.SECURE_HSTS_SECONDS,
    "STATICFILES_BACKEND": s.STORAGES["staticfiles"]["BACKEND"],
    "ACCOUNTS_EMAIL_VERIFICATION": s.ACCOUNTS_EMAIL_VERIFICATION,
}))
"""


def minimal_env(**extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""), **extra}


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def load_settings(**extra: str) -> dict:
    result = run_python(SUMMARY, minimal_env(**extra))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def settings_error(**extra: str) -> str:
    """The stderr of a settings import that must fail."""
    result = run_python("import config.settings", minimal_env(**extra))
    assert result.returncode != 0, "settings loaded but should have been refused"
    assert "ImproperlyConfigured" in result.stderr
    return result.stderr


# --- Local development ----------------------------------------------------------


def test_empty_environment_refuses_to_load_and_names_secret_key():
    assert "SECRET_KEY" in settings_error()


def test_debug_false_with_nothing_else_refuses_to_load():
    stderr = settings_error(DEBUG="false")
    for name in ("SECRET_KEY", "ALLOWED_HOSTS", "SITE_URL", "ANYMAIL_ESP"):
        assert name in stderr


def test_debug_true_alone_gives_embedded_local_defaults():
    loaded = load_settings(DEBUG="true")
    assert loaded["DEBUG"] is True
    assert loaded["ENGINE"] == "django.db.backends.sqlite3"
    assert loaded["DB_NAME"] == str(PROJECT_ROOT / "db.sqlite3")
    assert loaded["CACHE_BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    assert loaded["EMAIL_BACKEND"] == "django.core.mail.backends.console.EmailBackend"
    assert loaded["SITE_URL"] == "http://127.0.0.1:8000"
    assert loaded["SECRET_KEY"]
    assert "*" not in loaded["ALLOWED_HOSTS"]
    assert loaded["SESSION_COOKIE_SECURE"] is False


@pytest.mark.parametrize("value", ["maybe", "2", "yes please", "ture"])
def test_invalid_debug_value_refuses_to_load(value):
    assert "DEBUG" in settings_error(DEBUG=value)


@pytest.mark.parametrize("value", ["1", "TRUE", " yes ", "on"])
def test_debug_accepts_common_true_spellings(value):
    assert load_settings(DEBUG=value)["DEBUG"] is True


def test_invalid_email_verification_mode_refuses_to_load():
    assert "ACCOUNTS_EMAIL_VERIFICATION" in settings_error(DEBUG="true", ACCOUNTS_EMAIL_VERIFICATION="sometimes")


@pytest.mark.parametrize("mode", ["mandatory", "optional"])
def test_valid_email_verification_modes_load(mode):
    assert load_settings(DEBUG="true", ACCOUNTS_EMAIL_VERIFICATION=mode)["ACCOUNTS_EMAIL_VERIFICATION"] == mode


def test_non_integer_setting_refuses_to_load():
    assert "EMAIL_TIMEOUT" in settings_error(DEBUG="true", EMAIL_TIMEOUT="ten")


@pytest.mark.parametrize(
    "lengths",
    [
        {"ACCOUNTS_PASSWORD_MIN_LENGTH": "6"},
        {"ACCOUNTS_PASSWORD_MIN_LENGTH": "20", "ACCOUNTS_PASSWORD_MAX_LENGTH": "16"},
        {"ACCOUNTS_PASSWORD_MAX_LENGTH": "5000"},
    ],
)
def test_unsafe_password_length_limits_refuse_to_load(lengths):
    assert "Password length" in settings_error(DEBUG="true", **lengths)


# --- Production -------------------------------------------------------------------


def test_production_environment_loads_with_the_esp_backend():
    loaded = load_settings(**PRODUCTION_ENV)
    assert loaded["DEBUG"] is False
    assert loaded["EMAIL_BACKEND"] == "anymail.backends.postmark.EmailBackend"
    assert loaded["ANYMAIL"] == {"POSTMARK_SERVER_TOKEN": "x"}
    assert loaded["ALLOWED_HOSTS"] == ["todo.example"]
    assert loaded["SITE_URL"] == "https://todo.example"


def test_production_turns_on_transport_security():
    loaded = load_settings(**PRODUCTION_ENV)
    assert loaded["SESSION_COOKIE_SECURE"] is True
    assert loaded["CSRF_COOKIE_SECURE"] is True
    assert loaded["SECURE_SSL_REDIRECT"] is True
    assert loaded["SECURE_HSTS_SECONDS"] >= 31536000
    assert loaded["STATICFILES_BACKEND"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"


def test_site_url_trailing_slash_is_removed():
    assert (
        load_settings(**{**PRODUCTION_ENV, "SITE_URL": "https://todo.example/"})["SITE_URL"] == "https://todo.example"
    )


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"SECRET_KEY": "tooShort123"}, "SECRET_KEY"),
        ({"SECRET_KEY": "django-insecure-" + "k3Jd8sLq0Wm5Zx7Vb2Nc4Rt6Yh9Gf1Pa3Ue5Io7"}, "SECRET_KEY"),
        ({"SECRET_KEY": "a" * 60}, "SECRET_KEY"),  # long but not random
        ({"SECRET_KEY": ""}, "SECRET_KEY"),
        ({"ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS"),
        ({"ALLOWED_HOSTS": "todo.example,*"}, "ALLOWED_HOSTS"),
        ({"ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS"),
        ({"SITE_URL": "http://todo.example"}, "SITE_URL"),
        ({"SITE_URL": ""}, "SITE_URL"),
        ({"ANYMAIL_ESP": ""}, "ANYMAIL_ESP"),
        ({"JWT_SIGNING_KEY": ""}, "JWT_SIGNING_KEY"),
        ({"JWT_SIGNING_KEY": "short-jwt-key"}, "JWT_SIGNING_KEY"),
        ({"JWT_SIGNING_KEY": PRODUCTION_ENV["SECRET_KEY"]}, "JWT_SIGNING_KEY"),
    ],
)
def test_each_unsafe_production_variant_refuses_to_load(override, named):
    stderr = settings_error(**{**PRODUCTION_ENV, **override})
    assert named in stderr


def test_production_without_any_email_configuration_refuses_to_load():
    env = {k: v for k, v in PRODUCTION_ENV.items() if not k.startswith("ANYMAIL_")}
    assert "ANYMAIL_ESP" in settings_error(**env)


def test_production_accepts_an_explicit_email_backend_instead_of_an_esp():
    env = {k: v for k, v in PRODUCTION_ENV.items() if not k.startswith("ANYMAIL_")}
    env["EMAIL_BACKEND"] = "django.core.mail.backends.smtp.EmailBackend"
    assert load_settings(**env)["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"


# --- Services -------------------------------------------------------------------------


def test_database_url_selects_postgresql_with_sslmode():
    loaded = load_settings(DEBUG="true", DATABASE_URL="postgres://u:p@host:5432/db?sslmode=require")
    assert loaded["ENGINE"] == "django.db.backends.postgresql"
    assert loaded["DB_NAME"] == "db"
    assert loaded["DB_HOST"] == "host"
    assert loaded["DB_OPTIONS"] == {
        "sslmode": "require",
        "connect_timeout": 3,
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 2,
        "tcp_user_timeout": 5000,
    }


def test_unsupported_database_url_scheme_refuses_to_load():
    result = run_python("import config.settings", minimal_env(DEBUG="true", DATABASE_URL="nosuchdb://u:p@host/db"))
    assert result.returncode != 0
    assert "nosuchdb" in result.stderr


def test_redis_url_selects_the_redis_cache():
    loaded = load_settings(DEBUG="true", REDIS_URL="redis://cache.internal:6379/1")
    assert loaded["CACHE_BACKEND"] == "accounts.redis_cache.ReusedClientRedisCache"
    assert loaded["CACHE_LOCATION"] == "redis://cache.internal:6379/1"


def test_file_email_backend_honours_email_file_path(tmp_path):
    loaded = load_settings(
        DEBUG="true",
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(tmp_path),
    )
    assert loaded["EMAIL_BACKEND"] == "django.core.mail.backends.filebased.EmailBackend"
    assert loaded["EMAIL_FILE_PATH"] == str(tmp_path)


def test_explicit_email_backend_wins_over_esp():
    loaded = load_settings(
        DEBUG="true",
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        ANYMAIL_ESP="postmark",
    )
    assert loaded["EMAIL_BACKEND"] == "django.core.mail.backends.filebased.EmailBackend"


# --- Whole-project check ------------------------------------------------------------


def test_manage_py_check_passes_in_debug_mode():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT_ROOT,
        env=minimal_env(DEBUG="true"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_manage_py_check_fails_without_configuration():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT_ROOT,
        env=minimal_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
