"""The JSON API in tests: CSRF-enforcing clients, JSON requests, signing in, bearer and CSRF headers.

Typical use::

    client = api_client()
    access = login(client)                    # the client now holds the refresh cookie
    client.get("/api/auth/me/", **bearer(access))
    client.post(REFRESH_URL, **csrf_header(client))
"""

from django.conf import settings
from django.test import Client

from tests.support.accounts import STRONG_PASSWORD
from tests.support.pages import browser

LOGIN_URL = "/api/auth/login/"
REFRESH_URL = "/api/auth/refresh/"
LOGOUT_URL = "/api/auth/logout/"
CSRF_URL = "/api/auth/csrf/"
ME_URL = "/api/auth/me/"


def api_client(**defaults) -> Client:
    """A test client that enforces CSRF checks as a browser-facing deployment does (the SPA's browser)."""
    return browser(**defaults)


def post_json(client: Client, path: str, data=None, **extra):
    """POST ``data`` (default ``{}``) as a JSON body."""
    return client.post(path, {} if data is None else data, content_type="application/json", **extra)


def patch_json(client: Client, path: str, data, **extra):
    return client.patch(path, data, content_type="application/json", **extra)


def put_json(client: Client, path: str, data, **extra):
    return client.put(path, data, content_type="application/json", **extra)


def delete_json(client: Client, path: str, data=None, **extra):
    """DELETE with ``data`` (default ``{}``) as a JSON body."""
    return client.delete(path, {} if data is None else data, content_type="application/json", **extra)


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


def access_token_for(
    user, *, ip_address: str | None = "127.0.0.1", user_agent: str = "pytest", second_factor: bool = False
) -> str:
    """Open a device session for ``user`` directly (no password hashing); return its access token.

    The token's ``email_verified`` claim reflects ``user`` as it is now. ``second_factor``: the
    session passed a second factor just now too.
    """
    from accounts.flows.device_sessions import start_device_session

    return start_device_session(
        user=user, ip_address=ip_address, user_agent=user_agent, second_factor=second_factor
    ).access_token


def assert_api_error(response, status: int, code: str, *, fields: set[str] | None = None, exactly: bool = False):
    """The response is the API's error shape: this status, JSON ``{"code", "detail"}`` with this code and a
    message, plus ``fields`` (field name -> messages) naming at least these fields (``exactly``: only them).
    Returns the body."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]
    if fields is None:
        assert set(body) == {"code", "detail"}, body
        return body
    assert set(body) == {"code", "detail", "fields"}, body
    if exactly:
        assert set(body["fields"]) == fields, body
    else:
        assert fields <= set(body["fields"]), body
    for messages in body["fields"].values():
        assert messages and all(isinstance(message, str) and message for message in messages)
    return body


def get_me(access_token: str, client: Client | None = None):
    """GET /api/auth/me/ with ``access_token`` (in a fresh CSRF-enforcing client unless given one)."""
    return (client or api_client()).get(ME_URL, **bearer(access_token))


def refresh(client: Client, **extra):
    """POST /api/auth/refresh/ as the SPA does: the refresh cookie ``client`` holds and its CSRF header."""
    return post_json(client, REFRESH_URL, **csrf_header(client), **extra)


def session_id_of(access_token: str) -> str:
    """The device session an access token belongs to (its ``sid`` claim, read without verifying)."""
    import jwt

    return jwt.decode(access_token, options={"verify_signature": False})["sid"]


def session_of(access_token: str):
    """The DeviceSession row an access token belongs to."""
    from accounts.models import DeviceSession

    return DeviceSession.objects.get(pk=session_id_of(access_token))
