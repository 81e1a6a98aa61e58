"""Helpers for tests of the JSON API: CSRF-enforcing clients, signing in, bearer and CSRF headers.

Typical use::

    client = api_client()
    access = login(client)                    # the client now holds the refresh cookie
    client.get("/api/auth/me/", **bearer(access))
    client.post(REFRESH_URL, **csrf_header(client))
"""

from django.conf import settings
from django.test import Client

from tests.conftest import STRONG_PASSWORD

LOGIN_URL = "/api/auth/login/"
REFRESH_URL = "/api/auth/refresh/"
LOGOUT_URL = "/api/auth/logout/"
CSRF_URL = "/api/auth/csrf/"
ME_URL = "/api/auth/me/"


def api_client(**defaults) -> Client:
    """A test client that enforces CSRF checks as a browser-facing deployment does."""
    return Client(enforce_csrf_checks=True, **defaults)


def post_json(client: Client, path: str, data=None, **extra):
    """POST ``data`` (default ``{}``) as a JSON body."""
    return client.post(path, {} if data is None else data, content_type="application/json", **extra)


def patch_json(client: Client, path: str, data, **extra):
    return client.patch(path, data, content_type="application/json", **extra)


def put_json(client: Client, path: str, data, **extra):
    return client.put(path, data, content_type="application/json", **extra)


def bearer(access_token: str) -> dict:
    """Request kwargs carrying ``Authorization: Bearer <access_token>``."""
    return {"HTTP_AUTHORIZATION": f"Bearer {access_token}"}


def fetch_csrf_token(client: Client) -> str:
    """GET /api/auth/csrf/ and return the value of the ``csrftoken`` cookie it set on ``client``."""
    response = client.get(CSRF_URL)
    assert response.status_code == 200, response.content
    return client.cookies[settings.CSRF_COOKIE_NAME].value


def csrf_header(client: Client) -> dict:
    """Request kwargs with a valid ``X-CSRFToken`` header for ``client`` (fetching the cookie first)."""
    return {"HTTP_X_CSRFTOKEN": fetch_csrf_token(client)}


def login_response(client: Client, email: str = "alice@example.com", password: str = STRONG_PASSWORD, **extra):
    """POST the credentials to /api/auth/login/ and return the response, whatever it is."""
    return post_json(client, LOGIN_URL, {"email": email, "password": password}, **extra)


def login(client: Client, email: str = "alice@example.com", password: str = STRONG_PASSWORD, **extra) -> str:
    """Sign in through the API; return the access token. ``client`` keeps the refresh cookie."""
    response = login_response(client, email, password, **extra)
    assert response.status_code == 200, response.content
    return response.json()["access"]


def refresh_cookie_value(client: Client) -> str | None:
    """The refresh token ``client`` holds, or None (never set, or cleared by the server)."""
    morsel = client.cookies.get(settings.ACCOUNTS_REFRESH_COOKIE_NAME)
    return morsel.value if morsel is not None and morsel.value else None


def access_token_for(user, *, ip_address: str | None = "127.0.0.1", user_agent: str = "pytest") -> str:
    """Open a device session for ``user`` directly (no password hashing); return its access token.

    The token's ``email_verified`` claim reflects ``user`` as it is now.
    """
    from accounts.flows.device_sessions import start_device_session

    return start_device_session(user=user, ip_address=ip_address, user_agent=user_agent).access_token
