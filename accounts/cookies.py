"""The cookies the accounts set: one definition of each name and its attributes."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse

# Sent on sign-out: the browser drops this site's storage and cache, in every tab. Not its
# cookies: sign-outs delete theirs one by one, because the device cookie must stay (it tells
# this browser from a new one at the next sign-in) and a page's "you are signed out" message
# travels in a cookie on the same response.
CLEAR_SITE_DATA = '"cache", "storage"'
# A harmless companion of the refresh cookie that scripts can see, so the SPA
# knows whether trying a refresh makes sense (and does not fire a doomed 401
# on every signed-out visit). It carries no secret.
SESSION_HINT_COOKIE = "todo_has_session"


def set_refresh_cookie(response: HttpResponse, refresh_token: str) -> None:
    """HttpOnly, SameSite=Strict, Secure outside local development, and scoped
    to the auth API path so that no other request ever carries it."""
    response.set_cookie(
        settings.ACCOUNTS_REFRESH_COOKIE_NAME,
        refresh_token,
        max_age=settings.ACCOUNTS_REFRESH_ABSOLUTE_LIFETIME,
        path=settings.ACCOUNTS_REFRESH_COOKIE_PATH,
        secure=settings.ACCOUNTS_REFRESH_COOKIE_SECURE,
        httponly=True,
        samesite="Strict",
    )
    response.set_cookie(
        SESSION_HINT_COOKIE,
        "1",
        max_age=settings.ACCOUNTS_REFRESH_ABSOLUTE_LIFETIME,
        path="/",
        secure=settings.ACCOUNTS_REFRESH_COOKIE_SECURE,
        httponly=False,
        samesite="Strict",
    )


def clear_refresh_cookie(response: HttpResponse) -> None:
    response.delete_cookie(
        settings.ACCOUNTS_REFRESH_COOKIE_NAME,
        path=settings.ACCOUNTS_REFRESH_COOKIE_PATH,
        samesite="Strict",
    )
    response.delete_cookie(SESSION_HINT_COOKIE, path="/", samesite="Strict")


def read_refresh_cookie(request: HttpRequest) -> str | None:
    return request.COOKIES.get(settings.ACCOUNTS_REFRESH_COOKIE_NAME) or None


# The sign-up proof (accounts.flows.verification): only the browser or client
# that signed up holds it. HttpOnly; Lax, so that it rides along when the
# emailed link is opened in the same browser; on every path, because the
# pages and the API both verify. Named by ACCOUNTS_SIGNUP_PROOF_COOKIE_NAME (__Host- over HTTPS).
def set_signup_proof_cookie(response: HttpResponse, proof: str) -> None:
    response.set_cookie(
        settings.ACCOUNTS_SIGNUP_PROOF_COOKIE_NAME,
        proof,
        max_age=settings.ACCOUNTS_UNVERIFIED_ACCOUNT_RETENTION_DAYS * 24 * 60 * 60,
        path="/",
        secure=settings.ACCOUNTS_REFRESH_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


def clear_signup_proof_cookie(response: HttpResponse) -> None:
    response.delete_cookie(settings.ACCOUNTS_SIGNUP_PROOF_COOKIE_NAME, path="/", samesite="Lax")


def read_signup_proof(request: HttpRequest) -> str | None:
    return request.COOKIES.get(settings.ACCOUNTS_SIGNUP_PROOF_COOKIE_NAME) or None


# The API's pending sign-in (accounts.flows.pending): its handle, between the password and the code.
# HttpOnly, SameSite=Strict and on the auth API's path only, like the refresh cookie.
def set_pending_sign_in_cookie(response: HttpResponse, handle: str) -> None:
    response.set_cookie(
        settings.ACCOUNTS_MFA_PENDING_COOKIE_NAME,
        handle,
        max_age=settings.ACCOUNTS_MFA_PENDING_LIFETIME,
        path=settings.ACCOUNTS_REFRESH_COOKIE_PATH,
        secure=settings.ACCOUNTS_REFRESH_COOKIE_SECURE,
        httponly=True,
        samesite="Strict",
    )


def clear_pending_sign_in_cookie(response: HttpResponse) -> None:
    response.delete_cookie(
        settings.ACCOUNTS_MFA_PENDING_COOKIE_NAME, path=settings.ACCOUNTS_REFRESH_COOKIE_PATH, samesite="Strict"
    )


def read_pending_sign_in_cookie(request: HttpRequest) -> str | None:
    return request.COOKIES.get(settings.ACCOUNTS_MFA_PENDING_COOKIE_NAME) or None


# The device cookie (accounts.flows.known_devices): a random id that tells a returning browser from
# a new one. HttpOnly; Lax, so a sign-in reached from a link still carries it; on every path,
# because the pages and the API both sign in. Sign-out keeps it: it says which browser this is,
# not who is signed in.
def set_device_cookie(response: HttpResponse, device_id: str) -> None:
    response.set_cookie(
        settings.ACCOUNTS_DEVICE_COOKIE_NAME,
        device_id,
        max_age=settings.ACCOUNTS_DEVICE_COOKIE_AGE,
        path="/",
        secure=settings.ACCOUNTS_REFRESH_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


def read_device_cookie(request: HttpRequest) -> str | None:
    return request.COOKIES.get(settings.ACCOUNTS_DEVICE_COOKIE_NAME) or None


def issue_device_cookie(request: HttpRequest, device_id: str) -> None:
    """Have DeviceCookieMiddleware set the device cookie on this request's response (the flows do
    not build responses). On the HttpRequest itself, since DRF's Request wraps it."""
    setattr(getattr(request, "_request", request), "device_cookie_to_set", device_id)  # noqa: B010 not a known attribute
