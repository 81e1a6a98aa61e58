"""Log redaction: emailed one-time tokens never reach a log line."""

import io
import logging

import pytest

from accounts.flows.verification import send_verification_email
from accounts.log_redaction import REDACTED, RedactTokensFilter, redact
from accounts.tokens import generate_token
from tests.support.accounts import STRONG_PASSWORD
from tests.support.mail import link_in, token_from_link


@pytest.fixture
def token() -> str:
    return generate_token()


def make_record(msg, args=(), name="django.server", level=logging.INFO) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


@pytest.fixture
def console_output():
    """What the configured 'console' handler writes, captured for one test."""
    console = next(h for h in logging.getLogger("django").handlers if h.get_name() == "console")
    stream = io.StringIO()
    previous = console.setStream(stream)
    yield stream
    console.setStream(previous)


# --- redact() ------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/accounts/verify-email/", "/accounts/password/reset/"])
def test_redact_removes_token_from_link_path(prefix, token):
    assert redact(f"{prefix}{token}/") == f"{prefix}{REDACTED}/"


@pytest.mark.parametrize("prefix", ["/accounts/verify-email/", "/accounts/password/reset/"])
def test_redact_removes_token_from_full_url_with_query(prefix, token):
    text = f"https://todo.example{prefix}{token}/?utm_source=email"
    assert redact(text) == f"https://todo.example{prefix}{REDACTED}/?utm_source=email"


def test_redact_access_log_line(token):
    line = f'"GET /accounts/verify-email/{token}/ HTTP/1.1" 302 0'
    assert redact(line) == f'"GET /accounts/verify-email/{REDACTED}/ HTTP/1.1" 302 0'


@pytest.mark.parametrize("bad_token", ["abc", "A" * 200, "A" * 42, "A" * 44, "tampered~token"])
def test_redact_removes_malformed_tokens_from_link_paths(bad_token):
    redacted = redact(f"Bad Request: /accounts/password/reset/{bad_token}/")
    assert bad_token not in redacted
    assert redacted == f"Bad Request: /accounts/password/reset/{REDACTED}/"


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/verify-email/resend/",
        "/accounts/verify-email/confirm/",
        "/accounts/verify-email/sent/",
        "/accounts/password/reset/set-password/",
        "/accounts/password/reset/sent/",
        "/accounts/password/reset/",
        "/accounts/login/",
    ],
)
def test_redact_keeps_fixed_paths_intact(path):
    line = f'"POST {path} HTTP/1.1" 302 0'
    assert redact(line) == line


def test_redact_removes_bare_token(token):
    assert redact(f"refresh token {token} rejected") == f"refresh token {REDACTED} rejected"


def test_redact_removes_bare_token_in_key_value_and_json(token):
    assert redact(f"token={token}&x=1") == f"token={REDACTED}&x=1"
    assert redact(f'{{"token": "{token}"}}') == f'{{"token": "{REDACTED}"}}'


def test_redact_removes_every_token_in_a_line(token):
    other = generate_token()
    redacted = redact(f"{token} /accounts/verify-email/{other}/ {other}")
    assert token not in redacted
    assert other not in redacted
    assert redacted.count(REDACTED) == 3


@pytest.mark.parametrize(
    "text",
    [
        "A" * 42,
        "A" * 44,
        "nothing secret here",
        "sha256 " + "a" * 64,
        "",
        "GET /todos/42/ HTTP/1.1",
    ],
    ids=["42-chars", "44-chars", "prose", "hex-hash", "empty", "other-path"],
)
def test_redact_leaves_text_without_tokens_unchanged(text):
    assert redact(text) == text


# --- RedactTokensFilter ------------------------------------------------------------------


def test_filter_rewrites_message_built_from_args(token):
    record = make_record('"%s" %s %s', (f"GET /accounts/verify-email/{token}/ HTTP/1.1", 302, 0))
    assert RedactTokensFilter().filter(record) is True
    message = record.getMessage()
    assert token not in message
    assert message == f'"GET /accounts/verify-email/{REDACTED}/ HTTP/1.1" 302 0'
    assert record.args is None


def test_filter_rewrites_plain_message(token):
    record = make_record(f"Bad Request: /accounts/password/reset/{token}/", name="django.request")
    RedactTokensFilter().filter(record)
    assert record.getMessage() == f"Bad Request: /accounts/password/reset/{REDACTED}/"


def test_filter_leaves_clean_record_untouched():
    args = ("GET /accounts/login/ HTTP/1.1", 200, 512)
    record = make_record('"%s" %s %s', args)
    assert RedactTokensFilter().filter(record) is True
    assert record.msg == '"%s" %s %s'
    assert record.args is args


def test_filter_never_drops_records(token):
    flt = RedactTokensFilter()
    assert flt.filter(make_record("hello")) is True
    assert flt.filter(make_record(token)) is True


def test_filter_tolerates_malformed_record():
    record = make_record("%s and %s", ("only one",))
    assert RedactTokensFilter().filter(record) is True


# --- configuration and integration ------------------------------------------------------


def test_settings_attach_the_filter_to_the_console_handler(settings):
    assert settings.LOGGING["filters"]["redact_tokens"]["()"] == "accounts.log_redaction.RedactTokensFilter"
    assert "redact_tokens" in settings.LOGGING["handlers"]["console"]["filters"]
    for logger_name in ("django", "django.server"):
        assert "console" in settings.LOGGING["loggers"][logger_name]["handlers"]
    assert "console" in settings.LOGGING["root"]["handlers"]


@pytest.mark.parametrize("logger_name", ["", "django", "django.server", "django.request"])
def test_live_loggers_reach_a_redacting_console_handler(logger_name):
    logger = logging.getLogger(logger_name)
    while logger.parent is not None and not logger.handlers:
        logger = logger.parent
    console = [h for h in logger.handlers if h.get_name() == "console"]
    assert console
    assert any(isinstance(f, RedactTokensFilter) for f in console[0].filters)


def test_request_with_unknown_token_is_logged_redacted(client, db, console_output, token):
    response = client.get(f"/accounts/verify-email/{token}/")
    assert response.status_code == 400
    output = console_output.getvalue()
    assert "Bad Request" in output
    assert f"/accounts/verify-email/{REDACTED}/" in output
    assert token not in output


def test_request_with_used_real_token_is_logged_redacted(client, make_user, mailoutbox, console_output):
    user = make_user(verified=False)
    send_verification_email(user=user)
    link = link_in(mailoutbox[0], "/verify-email/")
    token = token_from_link(link)
    path = link.split("://", 1)[1].split("/", 1)[1]
    client.get(f"/{path}")
    confirmed = client.post(
        "/accounts/verify-email/confirm/", {"proof": "password", "current-password": STRONG_PASSWORD}
    )
    assert confirmed.status_code == 302
    assert client.get(f"/{path}").status_code == 400
    output = console_output.getvalue()
    assert REDACTED in output
    assert token not in output


def test_reset_request_with_bad_token_is_logged_redacted(client, db, console_output):
    bad = "Z" * 60
    assert client.get(f"/accounts/password/reset/{bad}/").status_code == 400
    output = console_output.getvalue()
    assert f"/accounts/password/reset/{REDACTED}/" in output
    assert bad not in output


def test_django_server_access_log_is_redacted(console_output, token):
    logging.getLogger("django.server").info('"%s" %s %s', f"GET /accounts/password/reset/{token}/ HTTP/1.1", "302", "0")
    output = console_output.getvalue()
    assert f'"GET /accounts/password/reset/{REDACTED}/ HTTP/1.1" 302 0' in output
    assert token not in output


def test_application_log_through_root_is_redacted(console_output, token):
    logging.getLogger("accounts.anything").warning("suspicious token %s from %s", token, "203.0.113.9")
    output = console_output.getvalue()
    assert f"suspicious token {REDACTED} from 203.0.113.9" in output
    assert token not in output
