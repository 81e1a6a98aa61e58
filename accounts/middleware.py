"""Middleware: page sessions tied to device sessions, the device cookie, rate limits, responses kept out of caches.

The Content Security Policy is one header (settings.CONTENT_SECURITY_POLICY, plus the sign-in providers):
no nonces, no per-view policies, no reports, so django-csp would be a dependency for
one line. Django 6.0 builds it in (SECURE_CSP); move to that with the next LTS.
"""

import functools
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import SESSION_KEY, logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_cache_control

from accounts.cookies import set_device_cookie
from accounts.flows.device_sessions import note_page_use
from accounts.flows.signin import DEVICE_SESSION_KEY, PAGE_USE_INTERVAL, PAGE_USE_KEY
from accounts.rate_limits import RateLimited
from accounts.revocation import is_session_live

GetResponse = Callable[[HttpRequest], HttpResponse]


class DeviceCookieMiddleware:
    """Set the device cookie a sign-in asked for (accounts.cookies.issue_device_cookie), whatever view signed in."""

    def __init__(self, get_response: GetResponse):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        device_id = getattr(request, "device_cookie_to_set", None)
        if device_id:
            set_device_cookie(response, device_id)
        return response


class DeviceSessionMiddleware:
    """A signed-in page session lives exactly as long as its device session.

    The pages are signed out once the device session is no longer live (ended
    anywhere, idle or past its absolute lifetime, user deactivated), and a
    page session without a device session (which no sign-in creates) is not
    honoured. Page use counts as use for the idle clock, written at most once
    per PAGE_USE_INTERVAL. API requests are skipped: they authenticate with
    access tokens, and must not pay for loading a page session.
    """

    def __init__(self, get_response: GetResponse):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith("/api/") and settings.SESSION_COOKIE_NAME in request.COOKIES:
            self._check(request)
        return self.get_response(request)

    @staticmethod
    def _check(request: HttpRequest) -> None:
        if SESSION_KEY not in request.session:
            return  # not signed in (reading the session, not loading the user)
        session_id = request.session.get(DEVICE_SESSION_KEY)
        if not session_id or not is_session_live(session_id):
            logout(request)
            return
        now = int(time.time())
        if now - request.session.get(PAGE_USE_KEY, 0) >= PAGE_USE_INTERVAL:
            note_page_use(session_id=session_id)
            request.session[PAGE_USE_KEY] = now


class NoStoreMiddleware:
    """Nothing this site renders or answers may be stored by a browser or proxy
    (static files are served before this runs and keep their own caching)."""

    def __init__(self, get_response: GetResponse):
        self.get_response = get_response
        self.static_prefix = "/" + settings.STATIC_URL.lstrip("/")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith(self.static_prefix):
            patch_cache_control(response, no_store=True)
        return response


class RateLimitedPageMiddleware:
    """A friendly 429 page, with Retry-After, for pages whose flow was rate limited
    (the API answers its own JSON 429)."""

    def __init__(self, get_response: GetResponse):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, RateLimited):
            return None
        minutes = max(1, round(exception.retry_after / 60))
        response = render(request, "rate_limited.html", {"minutes": minutes}, status=429)
        response["Retry-After"] = str(exception.retry_after)
        return response


class SecurityHeadersMiddleware:
    """Headers Django does not set itself: the Content Security Policy."""

    def __init__(self, get_response: GetResponse):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", content_security_policy())
        return response


def content_security_policy() -> str:
    """settings.CONTENT_SECURITY_POLICY, with the sign-in providers' origins allowed as form targets."""
    return _policy(settings.CONTENT_SECURITY_POLICY, tuple(p["issuer"] for p in settings.SOCIAL_PROVIDERS.values()))


@functools.lru_cache(maxsize=8)
def _policy(base: str, issuers: tuple[str, ...]) -> str:
    # A sign-in button posts here and is redirected to the provider's sign-in page, on its issuer's
    # origin (Google's, Microsoft's, GitHub's and the usual identity servers' are): browsers check
    # that redirect against form-action too.
    origins = sorted({"{0.scheme}://{0.netloc}".format(urlsplit(issuer)) for issuer in issuers})
    if not origins:
        return base
    directives = [directive.strip() for directive in base.split(";")]
    return "; ".join(
        " ".join([directive, *origins]) if directive.split(" ")[0] == "form-action" else directive
        for directive in directives
    )
