"""Page clients: a browser that gets the 403 a real deployment gives a form post without the CSRF
token, submitting a form the way that browser does, and the CSRF token a page carries."""

import re

from django.conf import settings
from django.test import Client

LOGIN_PAGE = "/accounts/login/"
_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_CSRF_VALUE = re.compile(r'(name="csrfmiddlewaretoken" value=")[^"]*(")')


def browser(**defaults) -> Client:
    """A browser that, like a real deployment, gets a 403 for a form post without the CSRF token.

    ``defaults`` go with every request (``REMOTE_ADDR``, ``HTTP_USER_AGENT``: one device).
    """
    return Client(enforce_csrf_checks=True, **defaults)


def csrf_token_of(client: Client, **extra) -> str:
    """The CSRF token of ``client``'s cookie, after opening the sign-in page if it has none yet."""
    morsel = client.cookies.get(settings.CSRF_COOKIE_NAME)
    if morsel is None or not morsel.value:
        assert client.get(LOGIN_PAGE, **extra).status_code == 200
        morsel = client.cookies[settings.CSRF_COOKIE_NAME]
    return morsel.value


def submit(client: Client, path: str, data: dict | None = None, *, open_first: bool = False, **extra):
    """Post a page form the way a browser does: with the CSRF token of its cookie.

    ``open_first``: load the form's page before (asserting a 200), as a person does. ``extra`` goes
    with the requests (headers such as ``REMOTE_ADDR``).
    """
    if open_first:
        assert client.get(path, **extra).status_code == 200, path
    return client.post(path, {**(data or {}), "csrfmiddlewaretoken": csrf_token_of(client, **extra)}, **extra)


def csrf_from_page(client: Client, path: str) -> str:
    """Open ``path`` and return the CSRF token in its form."""
    page = client.get(path)
    assert page.status_code == 200
    return csrf_in(page.content.decode())


def csrf_in(html: str) -> str:
    """The CSRF token of the (first) form in ``html``."""
    match = _CSRF_INPUT.search(html)
    assert match is not None, "no CSRF token in the page"
    return match.group(1)


def without_csrf(html: str) -> str:
    """``html`` with every form's CSRF token emptied (it differs on each response)."""
    return _CSRF_VALUE.sub(r"\1\2", html)


# Date, and the Expires that never_cache derives from it, tick with the clock.
CLOCK_HEADERS = {"date", "expires"}


def headers_but_the_clock(response) -> tuple:
    """The response's headers, sorted, without those that tick with the clock: equal for answers alike."""
    return tuple(sorted((name, value) for name, value in response.items() if name.lower() not in CLOCK_HEADERS))
