"""Middleware: tie page sessions to device sessions, answer rate limits, keep responses out of caches."""

from django.conf import settings
from django.contrib.auth import logout
from django.shortcuts import render
from django.utils.cache import patch_cache_control

from accounts.flows.signin import DEVICE_SESSION_KEY
from accounts.rate_limits import RateLimited
from accounts.revocation import is_session_live


class DeviceSessionMiddleware:
    """Sign the pages out once their device session has been ended anywhere.

    API requests are skipped: they authenticate with access tokens, and must
    not pay for loading a page session.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith("/api/") and settings.SESSION_COOKIE_NAME in request.COOKIES:
            session_id = request.session.get(DEVICE_SESSION_KEY)
            if session_id and not is_session_live(session_id):
                logout(request)
        return self.get_response(request)


class NoStoreMiddleware:
    """Nothing this site renders or answers may be stored by a browser or proxy
    (static files are served before this runs and keep their own caching)."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.static_prefix = "/" + settings.STATIC_URL.lstrip("/")

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith(self.static_prefix):
            patch_cache_control(response, no_store=True)
        return response


class RateLimitedPageMiddleware:
    """A friendly 429 page, with Retry-After, for pages whose flow was rate limited
    (the API answers its own JSON 429)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, RateLimited):
            return None
        minutes = max(1, round(exception.retry_after / 60))
        response = render(request, "rate_limited.html", {"minutes": minutes}, status=429)
        response["Retry-After"] = str(exception.retry_after)
        return response


class SecurityHeadersMiddleware:
    """Headers Django does not set itself: the Content Security Policy."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response

