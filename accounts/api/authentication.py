"""DRF authentication by JWT access token, refusing tokens of ended sessions at once."""

from rest_framework.authentication import CSRFCheck
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from rest_framework_simplejwt.authentication import JWTStatelessUserAuthentication
from rest_framework_simplejwt.exceptions import TokenError

from accounts.access_tokens import verified_access_token
from accounts.revocation import is_session_live


class AccessTokenAuthentication(JWTStatelessUserAuthentication):
    """``Authorization: Bearer <access token>``; no database query when the cache is warm."""

    www_authenticate_realm = "api"

    def get_raw_token(self, header: bytes):
        parts = header.split()
        if parts and parts[0] == b"Bearer" and len(parts) != 2:
            raise AuthenticationFailed(
                "The Authorization header must be `Bearer <access token>`.", code="access_token_invalid"
            )
        return super().get_raw_token(header)

    def get_validated_token(self, raw_token):
        try:
            token = verified_access_token(raw_token)
        except TokenError:
            raise AuthenticationFailed(
                "The access token is not valid or has expired.", code="access_token_invalid"
            ) from None
        if not is_session_live(token["sid"]):
            raise AuthenticationFailed("This session has ended. Please sign in again.", code="session_ended")
        return token


def enforce_csrf(request) -> None:
    """Django's CSRF check, for API views that a cookie authenticates.

    DRF exempts API views from CSRF; a request carrying the refresh cookie
    must prove it comes from this site's pages (``X-CSRFToken`` header).
    """
    # The plain HttpRequest: Django reads request.POST, which on a DRF request
    # would run the JSON-only parsers.
    django_request = getattr(request, "_request", request)
    check = CSRFCheck(lambda _request: None)
    check.process_request(django_request)
    reason = check.process_view(django_request, None, (), {})
    if reason:
        raise PermissionDenied(f"CSRF check failed: {reason}", code="csrf_failed")
