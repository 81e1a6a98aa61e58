"""Two app processes share rate-limit counters and session revocation through Redis.

Two real servers (``manage.py runserver`` subprocesses) use the test database
and the same Redis as this test process. Wrong sign-ins sent alternately to
either count against one limit, and a session ended on one server is refused
on the other at once. Runs only in the PostgreSQL + Redis pass.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from django_ratelimit.core import _get_window

from accounts.rate_limits import address_key

pytestmark = pytest.mark.skipif(
    not settings.REDIS_URL,
    reason="needs Redis; runs in CI's PostgreSQL + Redis pass",
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WRONG_PASSWORD = "not the right passphrase at all"
NETWORK_TIMEOUT = 10
STARTUP_TIMEOUT = 20


class Server:
    """One ``runserver`` process on a free local port."""

    def __init__(self, env: dict[str, str], name: str):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix=f"runserver-{name}-", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload", "--nothreading"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.base} exited with {self.process.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.base + "/api/auth/csrf/", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        pytest.fail(f"{self.base} did not answer within {STARTUP_TIMEOUT} s:\n{self.output()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)

    def request(self, method: str, path: str, body: dict | None = None, headers: dict | None = None):
        """(status, headers, parsed JSON body or None); HTTP errors are answers, not exceptions."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=dict(headers or {}))
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=NETWORK_TIMEOUT) as response:
                return response.status, response.headers, _json(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers, _json(error.read())


def _json(raw: bytes):
    return json.loads(raw) if raw else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _test_database_url() -> str:
    db = connection.settings_dict
    if connection.vendor != "postgresql":
        pytest.skip("the servers need a database that other processes can open (the Redis pass uses PostgreSQL)")
    credentials = quote(db["USER"] or "postgres", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _cookies(headers) -> dict[str, str]:
    jar = SimpleCookie()
    for header in headers.get_all("Set-Cookie") or []:
        jar.load(header)
    return {name: morsel.value for name, morsel in jar.items()}


@contextmanager
def two_servers(server_class: type["Server"] | None = None, **extra_env: str):
    """Two app processes on their own ports, sharing this test's database and Redis."""
    server_class = server_class or Server
    env = {
        **os.environ,
        "DEBUG": "true",
        "DATABASE_URL": _test_database_url(),
        "CONN_MAX_AGE": "0",
        "REDIS_URL": settings.CACHES["default"]["LOCATION"],
        "CACHE_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "PYTHONUNBUFFERED": "1",
        **extra_env,
    }
    started: list[Server] = []
    try:
        for name in ("a", "b"):
            started.append(server_class(env, name))
        for server in started:
            server.wait_until_ready()
        yield started
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def servers():
    with two_servers() as started:
        yield started


def _address_with_time_to_spare(seconds: int = 60) -> str:
    """An address whose sign-in window (5 minutes, with a per-key offset) does not end during the test."""
    period = 5 * 60
    for number in range(100):
        email = f"shared{number}@example.com"
        if _get_window(address_key(email), period) - int(time.time()) >= seconds:
            return email
    raise AssertionError("no address with a window far enough from its end")


@pytest.mark.django_db(transaction=True)
def test_wrong_sign_ins_on_two_servers_count_against_one_limit(servers, make_user):
    assert settings.ACCOUNTS_RATE_LIMITS["sign_in_failures_per_account"] == "5/5m"
    email = _address_with_time_to_spare()
    make_user(email=email)
    credentials = {"email": email, "password": WRONG_PASSWORD}
    for attempt in range(5):
        status, _headers, body = servers[attempt % 2].request("POST", "/api/auth/login/", credentials)
        assert status == 401, (attempt, status, body)
        assert body["code"] == "invalid_credentials"
    for server in servers:
        status, headers, body = server.request("POST", "/api/auth/login/", credentials)
        assert status == 429, (server.base, status, body)
        assert body["code"] == "rate_limited"
        assert 1 <= int(headers["Retry-After"]) <= 300


@pytest.mark.django_db(transaction=True)
def test_a_session_ended_on_one_server_is_refused_on_the_other_at_once(servers, make_user, password):
    user = make_user(email="shared-session@example.com")
    server_a, server_b = servers

    status, headers, body = server_a.request("POST", "/api/auth/login/", {"email": user.email, "password": password})
    assert status == 200, body
    access = body["access"]
    refresh_cookie = _cookies(headers)[settings.ACCOUNTS_REFRESH_COOKIE_NAME]
    assert refresh_cookie

    status, _headers, body = server_b.request("GET", "/api/auth/me/", headers={"Authorization": f"Bearer {access}"})
    assert status == 200, body  # server B now holds "live" for this session in the shared cache
    assert body["email"] == user.email

    status, headers, _body = server_a.request("GET", "/api/auth/csrf/")
    assert status == 200
    csrf = _cookies(headers)[settings.CSRF_COOKIE_NAME]
    cookie_header = f"{settings.CSRF_COOKIE_NAME}={csrf}; {settings.ACCOUNTS_REFRESH_COOKIE_NAME}={refresh_cookie}"
    status, _headers, body = server_a.request(
        "POST", "/api/auth/logout/", headers={"Cookie": cookie_header, "X-CSRFToken": csrf}
    )
    assert status == 204, body

    status, _headers, body = server_b.request("GET", "/api/auth/me/", headers={"Authorization": f"Bearer {access}"})
    assert status == 401, body
    assert body["code"] == "session_ended"
