"""DRF authentication by JWT access token, refusing tokens of ended sessions at once."""

from django.http import HttpRequest, HttpResponse
from rest_framework.authentication import CSRFCheck
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated, PermissionDenied
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication
from rest_framework_simplejwt.exceptions import TokenError

from accounts.access_tokens import AccessToken, AccessTokenUser, verified_access_token
from accounts.revocation import is_session_live


class AccessTokenAuthentication(JWTStatelessUserAuthentication):
    """``Authorization: Bearer <access token>``; no database query when the cache is warm."""

    www_authenticate_realm = "api"

    def get_raw_token(self, header: bytes) -> bytes | None:
        parts = header.split()
        if parts and parts[0] == b"Bearer" and len(parts) != 2:
            raise AuthenticationFailed(
                "The Authorization header must be `Bearer <access token>`.", code="access_token_invalid"
            )
        return super().get_raw_token(header)

    def get_validated_token(self, raw_token: bytes) -> AccessToken:
        try:
            token = verified_access_token(raw_token)
        except TokenError:
            raise AuthenticationFailed(
                "The access token is not valid or has expired.", code="access_token_invalid"
            ) from None
        if not is_session_live(token["sid"]):
            raise AuthenticationFailed("This session has ended. Please sign in again.", code="session_ended")
        return token


def token_user(request: Request) -> AccessTokenUser:
    """The user of an API request that an access token authenticated.

    DRF types ``request.user`` as a Django user; in this API it is always the
    token's AccessTokenUser (the only authentication class), so views behind
    IsAuthenticated read it through here. Without one: NotAuthenticated (401),
    the answer IsAuthenticated gives.
    """
    user = request.user
    if not isinstance(user, AccessTokenUser):
        raise NotAuthenticated
    return user


def _no_view(request: HttpRequest) -> HttpResponse:
    """Stands in for the view and the rest of the chain: CSRFCheck only gives its verdict, never calls them."""
    raise AssertionError("CSRFCheck does not call the view.")


def enforce_csrf(request: Request) -> None:
    """Django's CSRF check, for API views that a cookie authenticates.

    DRF exempts API views from CSRF; a request carrying the refresh cookie
    must prove it comes from this site's pages (``X-CSRFToken`` header).
    """
    # The plain HttpRequest: Django reads request.POST, which on a DRF request
    # would run the JSON-only parsers.
    django_request = request._request
    check = CSRFCheck(_no_view)
    check.process_request(django_request)
    # DRF's CSRFCheck answers a refusal with its reason (a string) instead of a 403 response.
    reason = check.process_view(django_request, _no_view, (), {})
    if reason:
        raise PermissionDenied(f"CSRF check failed: {reason}", code="csrf_failed")
