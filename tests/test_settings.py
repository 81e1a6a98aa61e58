"""config/settings.py loaded in subprocesses with controlled environments: safe defaults, fail-closed production;
the production checks (accounts/checks.py) as `manage.py check --deploy` reports them."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from accounts.checks import check_production_settings, check_recommended_settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]

PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "q7Vd2kLp9Xz4Rb8Nw1Hs6Tg3Jy5Mc0Fa7Ue2Ki9Lo4Pz8Qx1Sw6Dv3Bn5Cm0Ar7Et",
    "ALLOWED_HOSTS": "todo.example",
    "SITE_URL": "https://todo.example",
    "ANYMAIL_ESP": "postmark",
    "ANYMAIL_POSTMARK_SERVER_TOKEN": "x",
    "JWT_SIGNING_KEY": "Jw7Kd2pL9xZ4rB8nW1hS6tG3jY5mC0fA7uE2kI9lO4p",
    # A Fernet key: urlsafe base64 of 32 bytes.
    "MFA_ENCRYPTION_KEYS": "Cw8yVQ6mX1o9pZ3kR2sT5uW7aB4cD0eF1gH2iJ3kL4m=",
}

# What a process started in this environment sees. Outside DEBUG the production checks run in
# AccountsConfig.ready(), so it starts Django (in DEBUG, importing the settings shows the same).
SUMMARY = """
import django, json, config.settings as s
if not s.DEBUG:
    django.setup()
print(json.dumps({
    "DEBUG": s.DEBUG,
    "ENGINE": s.DATABASES["default"]["ENGINE"],
    "DB_NAME": str(s.DATABASES["default"]["NAME"]),
    "DB_OPTIONS": s.DATABASES["default"].get("OPTIONS", {}),
    "DB_HOST": s.DATABASES["default"].get("HOST"),
    "CACHE_BACKEND": s.CACHES["default"]["BACKEND"],
    "CACHE_LOCATION": s.CACHES["default"].get("LOCATION"),
    "CACHE_KEY_PREFIX": s.CACHES["default"].get("KEY_PREFIX"),
    "CACHE_OPTIONS": s.CACHES["default"].get("OPTIONS"),
    "EMAIL_BACKEND": s.EMAIL_BACKEND,
    "EMAIL_FILE_PATH": s.EMAIL_FILE_PATH,
    "ANYMAIL": s.ANYMAIL,
    "SITE_URL": s.SITE_URL,
    "WEBAUTHN_RP_ID": s.WEBAUTHN_RP_ID,
    "WEBAUTHN_ORIGINS": s.WEBAUTHN_ORIGINS,
    "ALLOWED_HOSTS": s.ALLOWED_HOSTS,
    "SECRET_KEY": s.SECRET_KEY,
    "SESSION_COOKIE_SECURE": s.SESSION_COOKIE_SECURE,
    "CSRF_COOKIE_SECURE": s.CSRF_COOKIE_SECURE,
    "SECURE_SSL_REDIRECT": s.SECURE_SSL_REDIRECT,
    "SECURE_HSTS_SECONDS": s.SECURE_HSTS_SECONDS,
    "STATICFILES_BACKEND": s.STORAGES["staticfiles"]["BACKEND"],
    "ACCOUNTS_EMAIL_VERIFICATION": s.ACCOUNTS_EMAIL_VERIFICATION,
    "SOCIAL_PROVIDERS": s.SOCIAL_PROVIDERS,
    "ACCOUNTS_DEVICE_COOKIE_NAME": s.ACCOUNTS_DEVICE_COOKIE_NAME,
    "ACCOUNTS_SIGNUP_PROOF_COOKIE_NAME": s.ACCOUNTS_SIGNUP_PROOF_COOKIE_NAME,
}))
"""


def minimal_env(**extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        **extra,
    }


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


# The start-up of every process (manage.py, gunicorn's workers, the WSGI app): the settings are
# imported (done first here, so that a malformed value is refused before Django imports the rest),
# then the apps are made ready, which runs the production checks outside DEBUG.
START = "import config.settings, django; django.setup()"


def settings_error(**extra: str) -> str:
    """The stderr of a start-up that must be refused."""
    result = run_python(START, minimal_env(**extra))
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
    assert loaded["SITE_URL"] == "http://localhost:8000"
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


@pytest.mark.parametrize(
    "setting",
    [
        {"ACCOUNTS_EMAIL_SIGN_IN_ATTEMPTS": "0"},
        {"ACCOUNTS_EMAIL_SIGN_IN_ATTEMPTS": "11"},
        {"ACCOUNTS_EMAIL_SIGN_IN_TIMEOUT": "30"},
        {"ACCOUNTS_EMAIL_SIGN_IN_TIMEOUT": "86400"},
    ],
)
def test_unsafe_email_sign_in_limits_refuse_to_load(setting):
    assert "ACCOUNTS_EMAIL_SIGN_IN_ATTEMPTS must be 1-10" in settings_error(DEBUG="true", **setting)


def test_email_sign_in_limits_load_within_their_range():
    loaded = run_python(
        START, minimal_env(DEBUG="true", ACCOUNTS_EMAIL_SIGN_IN_ATTEMPTS="10", ACCOUNTS_EMAIL_SIGN_IN_TIMEOUT="3600")
    )
    assert loaded.returncode == 0, loaded.stderr


@pytest.mark.parametrize("algorithm", ["Ed448", "ed25519", "RS256", "none"])
def test_unsupported_jwt_algorithm_refuses_to_load(algorithm):
    assert "JWT_ALGORITHM" in settings_error(DEBUG="true", JWT_ALGORITHM=algorithm)


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


def test_the_device_and_sign_up_proof_cookies_have_the_host_prefix_over_https_only():
    # __Host-: no Domain, Path=/, Secure, so a sibling subdomain cannot plant a value in the browser.
    production, local = load_settings(**PRODUCTION_ENV), load_settings(DEBUG="true")
    assert production["ACCOUNTS_DEVICE_COOKIE_NAME"] == "__Host-todo_device"
    assert production["ACCOUNTS_SIGNUP_PROOF_COOKIE_NAME"] == "__Host-todo_signup"
    assert local["ACCOUNTS_DEVICE_COOKIE_NAME"] == "todo_device"
    assert local["ACCOUNTS_SIGNUP_PROOF_COOKIE_NAME"] == "todo_signup"


def test_site_url_trailing_slash_is_removed():
    assert (
        load_settings(**{**PRODUCTION_ENV, "SITE_URL": "https://todo.example/"})["SITE_URL"] == "https://todo.example"
    )


@pytest.mark.parametrize(
    ("override", "named", "check_id"),
    [
        ({"SECRET_KEY": "tooShort123"}, "SECRET_KEY", "accounts.E002"),
        ({"SECRET_KEY": "django-insecure-" + "k3Jd8sLq0Wm5Zx7Vb2Nc4Rt6Yh9Gf1Pa3Ue5Io7"}, "SECRET_KEY", "accounts.E002"),
        ({"SECRET_KEY": "a" * 60}, "SECRET_KEY", "accounts.E002"),  # long but not random
        ({"SECRET_KEY": ""}, "SECRET_KEY", "accounts.E001"),
        ({"ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS", "accounts.E003"),
        ({"ALLOWED_HOSTS": "todo.example,*"}, "ALLOWED_HOSTS", "accounts.E003"),
        ({"ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS", "accounts.E003"),
        ({"SITE_URL": "http://todo.example"}, "SITE_URL", "accounts.E004"),
        ({"SITE_URL": ""}, "SITE_URL", "accounts.E004"),
        ({"ANYMAIL_ESP": ""}, "ANYMAIL_ESP", "accounts.E007"),
        ({"JWT_SIGNING_KEY": ""}, "JWT_SIGNING_KEY", "accounts.E005"),
        ({"JWT_SIGNING_KEY": "short-jwt-key"}, "JWT_SIGNING_KEY", "accounts.E005"),
        ({"JWT_SIGNING_KEY": PRODUCTION_ENV["SECRET_KEY"]}, "JWT_SIGNING_KEY", "accounts.E005"),
        ({"JWT_ALGORITHM": "EdDSA", "JWT_SIGNING_KEY": ""}, "JWT_SIGNING_KEY", "accounts.E006"),
        ({"JWT_ALGORITHM": "Ed25519", "JWT_SIGNING_KEY": ""}, "JWT_SIGNING_KEY", "accounts.E006"),
        ({"WEBAUTHN_RP_ID": "203.0.113.9"}, "WEBAUTHN_RP_ID", "accounts.E010"),
        ({"WEBAUTHN_ORIGINS": "https://evil.example"}, "WEBAUTHN_ORIGINS", "accounts.E010"),
        ({"ANYMAIL_WEBHOOK_SECRET": "hook:short"}, "ANYMAIL_WEBHOOK_SECRET", "accounts.E012"),
    ],
)
def test_each_unsafe_production_variant_refuses_to_load(override, named, check_id):
    stderr = settings_error(**{**PRODUCTION_ENV, **override})
    assert named in stderr
    assert "Unsafe production settings" in stderr
    assert f"({check_id})" in stderr


def test_every_unsafe_production_setting_is_listed_at_once():
    stderr = settings_error(**{**PRODUCTION_ENV, "SECRET_KEY": "", "ALLOWED_HOSTS": "*", "SITE_URL": ""})
    for check_id in ("accounts.E001", "accounts.E003", "accounts.E004"):
        assert f"({check_id})" in stderr


def ed25519_pem() -> str:
    return (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )


@pytest.mark.parametrize("algorithm", ["Ed25519", "EdDSA"])
def test_production_with_an_ed25519_key_starts(algorithm):
    # EdDSA is only deprecated (a warning, accounts.W001): production still starts with it.
    env = minimal_env(**{**PRODUCTION_ENV, "JWT_ALGORITHM": algorithm, "JWT_SIGNING_KEY": ed25519_pem()})
    started = run_python(START + "; from accounts.access_tokens import key_ring; print(key_ring().algorithm)", env)
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == algorithm


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
        "server_side_binding": True,
    }


def test_server_side_binding_can_be_switched_off():
    loaded = load_settings(
        DEBUG="true", DATABASE_URL="postgres://u:p@host:5432/db", DATABASE_SERVER_SIDE_BINDING="false"
    )
    assert loaded["DB_OPTIONS"]["server_side_binding"] is False


def test_unsupported_database_url_scheme_refuses_to_load():
    result = run_python("import config.settings", minimal_env(DEBUG="true", DATABASE_URL="nosuchdb://u:p@host/db"))
    assert result.returncode != 0
    assert "nosuchdb" in result.stderr


def test_redis_url_selects_the_redis_cache():
    loaded = load_settings(DEBUG="true", REDIS_URL="redis://cache.internal:6379/1")
    assert loaded["CACHE_BACKEND"] == "django_redis.cache.RedisCache"
    assert loaded["CACHE_LOCATION"] == "redis://cache.internal:6379/1"
    assert loaded["CACHE_KEY_PREFIX"] == "todo"
    # An unreachable Redis answers within a second; its errors reach the callers, whose policies decide.
    assert loaded["CACHE_OPTIONS"] == {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1}


def test_cache_key_prefix_names_the_redis_keys():
    loaded = load_settings(DEBUG="true", REDIS_URL="redis://cache.internal:6379/1", CACHE_KEY_PREFIX="staging")
    assert loaded["CACHE_KEY_PREFIX"] == "staging"


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


def run_manage_py(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_manage_py_check_passes_in_debug_mode():
    result = run_manage_py(["check"], minimal_env(DEBUG="true"))
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_manage_py_check_fails_without_configuration():
    result = run_manage_py(["check"], minimal_env())
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


# --- The production checks as system checks (tagged deploy) ---------------------------------------

UNSAFE_UNDER_DEBUG = {"SECRET_KEY": "tooShort123", "ALLOWED_HOSTS": "*", "SITE_URL": "http://todo.example"}


def test_debug_skips_the_production_checks_at_start_up_and_in_a_plain_check():
    env = minimal_env(DEBUG="true", **UNSAFE_UNDER_DEBUG)
    started = run_python(START, env)
    assert started.returncode == 0, started.stderr
    checked = run_manage_py(["check"], env)
    assert checked.returncode == 0, checked.stderr
    assert "no issues" in checked.stdout


def test_manage_py_check_deploy_lists_the_production_problems_with_their_ids():
    result = run_manage_py(["check", "--deploy"], minimal_env(DEBUG="true", **UNSAFE_UNDER_DEBUG))
    assert result.returncode != 0
    for check_id, named in (
        ("accounts.E002", "SECRET_KEY"),
        ("accounts.E003", "ALLOWED_HOSTS"),
        ("accounts.E004", "SITE_URL"),
    ):
        assert f"({check_id}) {named}" in result.stderr


SAFE_PRODUCTION_SETTINGS = {
    "SECRET_KEY": PRODUCTION_ENV["SECRET_KEY"],
    "ALLOWED_HOSTS": ["todo.example"],
    "SITE_URL": "https://todo.example",
    "JWT_ALGORITHM": "HS256",
    "JWT_SIGNING_KEY": PRODUCTION_ENV["JWT_SIGNING_KEY"],
    "EMAIL_BACKEND": "anymail.backends.postmark.EmailBackend",
    "MFA_ENCRYPTION_KEYS": [PRODUCTION_ENV["MFA_ENCRYPTION_KEYS"]],
    "WEBAUTHN_RP_ID": "todo.example",
    "WEBAUTHN_ORIGINS": ["https://todo.example", "https://app.todo.example"],
}


def test_safe_production_settings_pass_the_production_checks(settings):
    for name, value in SAFE_PRODUCTION_SETTINGS.items():
        setattr(settings, name, value)
    assert check_production_settings() == []


@pytest.mark.parametrize(
    ("unsafe", "check_id", "named"),
    [
        ({"SECRET_KEY": ""}, "accounts.E001", "SECRET_KEY"),
        ({"SECRET_KEY": "tooShort123"}, "accounts.E002", "SECRET_KEY"),
        ({"ALLOWED_HOSTS": ["todo.example", "*"]}, "accounts.E003", "ALLOWED_HOSTS"),
        ({"SITE_URL": "http://todo.example"}, "accounts.E004", "SITE_URL"),
        ({"JWT_SIGNING_KEY": PRODUCTION_ENV["SECRET_KEY"]}, "accounts.E005", "JWT_SIGNING_KEY"),
        ({"JWT_ALGORITHM": "ES256", "JWT_SIGNING_KEY": ""}, "accounts.E006", "JWT_SIGNING_KEY"),
        ({"EMAIL_BACKEND": ""}, "accounts.E007", "ANYMAIL_ESP"),
        ({"MFA_ENCRYPTION_KEYS": []}, "accounts.E008", "MFA_ENCRYPTION_KEYS"),
        ({"MFA_ENCRYPTION_KEYS": ["not-a-fernet-key"]}, "accounts.E009", "MFA_ENCRYPTION_KEYS"),
        (
            {"MFA_ENCRYPTION_KEYS": [PRODUCTION_ENV["MFA_ENCRYPTION_KEYS"], "short"]},
            "accounts.E009",
            "key 2",
        ),
        ({"WEBAUTHN_RP_ID": ""}, "accounts.E010", "WEBAUTHN_RP_ID"),
        ({"WEBAUTHN_RP_ID": "203.0.113.9"}, "accounts.E010", "WEBAUTHN_RP_ID"),
        ({"WEBAUTHN_RP_ID": "[::1]"}, "accounts.E010", "WEBAUTHN_RP_ID"),
        ({"WEBAUTHN_ORIGINS": []}, "accounts.E010", "WEBAUTHN_ORIGINS"),
        ({"WEBAUTHN_ORIGINS": ["http://todo.example"]}, "accounts.E010", "WEBAUTHN_ORIGINS"),
        ({"WEBAUTHN_ORIGINS": ["https://todo.example.evil.example"]}, "accounts.E010", "WEBAUTHN_ORIGINS"),
        ({"WEBAUTHN_ORIGINS": ["https://nottodo.example"]}, "accounts.E010", "WEBAUTHN_ORIGINS"),
        ({"WEBAUTHN_ORIGINS": ["https://todo.example/app"]}, "accounts.E010", "WEBAUTHN_ORIGINS"),
        ({"ANYMAIL": {"WEBHOOK_SECRET": "a-long-secret-but-no-user-part"}}, "accounts.E012", "ANYMAIL_WEBHOOK_SECRET"),
        ({"ANYMAIL": {"WEBHOOK_SECRET": "hook:" + "x" * 15}}, "accounts.E012", "ANYMAIL_WEBHOOK_SECRET"),
    ],
)
def test_check_deploy_reports_each_production_problem_with_its_id(settings, unsafe, check_id, named):
    for name, value in {**SAFE_PRODUCTION_SETTINGS, **unsafe}.items():
        setattr(settings, name, value)
    assert [problem.id for problem in check_production_settings()] == [check_id]
    with pytest.raises(SystemCheckError) as refused:
        call_command("check", deploy=True, stdout=io.StringIO(), stderr=io.StringIO())
    reported = [line for line in str(refused.value).splitlines() if f"({check_id})" in line]
    assert len(reported) == 1
    assert named in reported[0]


def test_a_webhook_secret_of_sixteen_random_characters_passes(settings):
    for name, value in SAFE_PRODUCTION_SETTINGS.items():
        setattr(settings, name, value)
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hook:Qm7vT2xK9wLr4Zp8"}
    assert check_production_settings() == []


@pytest.mark.parametrize("algorithm", ["HS256", "Ed25519", "ES256"])
def test_current_jwt_algorithms_get_no_recommendation(settings, algorithm):
    settings.JWT_ALGORITHM = algorithm
    assert check_recommended_settings() == []


def test_check_deploy_recommends_ed25519_over_eddsa_as_a_warning(settings, monkeypatch):
    # The browser tests' Playwright sets it in this process, and Django's deploy checks refuse it.
    monkeypatch.delenv("DJANGO_ALLOW_ASYNC_UNSAFE", raising=False)
    for name, value in {**SAFE_PRODUCTION_SETTINGS, "JWT_ALGORITHM": "EdDSA", "JWT_SIGNING_KEY": ed25519_pem()}.items():
        setattr(settings, name, value)
    assert check_production_settings() == []  # a recommendation, not a safety rule
    [warning] = check_recommended_settings()
    assert warning.id == "accounts.W001"
    assert "Ed25519" in warning.msg
    stderr = io.StringIO()
    call_command("check", deploy=True, stdout=io.StringIO(), stderr=stderr)  # warnings raise no SystemCheckError
    assert "(accounts.W001) JWT_ALGORITHM=EdDSA" in stderr.getvalue()


def test_plain_check_leaves_the_production_checks_out(settings):
    settings.SITE_URL = "http://todo.example"
    call_command("check", stdout=io.StringIO(), stderr=io.StringIO())  # no SystemCheckError


def test_the_relying_party_comes_from_site_url_unless_set():
    loaded = load_settings(**{**PRODUCTION_ENV, "SITE_URL": "https://todo.example"})
    assert (loaded["WEBAUTHN_RP_ID"], loaded["WEBAUTHN_ORIGINS"]) == ("todo.example", ["https://todo.example"])
    loaded = load_settings(
        **{**PRODUCTION_ENV, "SITE_URL": "https://app.todo.example", "WEBAUTHN_RP_ID": "todo.example"}
    )
    assert (loaded["WEBAUTHN_RP_ID"], loaded["WEBAUTHN_ORIGINS"]) == ("todo.example", ["https://app.todo.example"])
