"""OpenAPI descriptions (drf-spectacular) of the API's authentication."""

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from drf_spectacular.utils import OpenApiParameter

# Security requirement of the endpoints that the refresh cookie authenticates.
REFRESH_COOKIE_AUTH = [{"refreshCookie": [], "csrfHeader": []}]


class AccessTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api.authentication.AccessTokenAuthentication"
    name = "accessToken"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(
            header_name="HTTP_AUTHORIZATION", token_prefix="Bearer", bearer_format="JWT"
        )


def refresh_cookie_parameter() -> OpenApiParameter:
    return OpenApiParameter(
        name=settings.ACCOUNTS_REFRESH_COOKIE_NAME,
        location=OpenApiParameter.COOKIE,
        required=False,
        description=(
            "The opaque refresh token (HttpOnly, SameSite=Strict, Path=/api/auth/). "
            "Never sent or returned in a JSON body."
        ),
    )


def csrf_header_parameter() -> OpenApiParameter:
    return OpenApiParameter(
        name="X-CSRFToken",
        location=OpenApiParameter.HEADER,
        required=True,
        description="The value of the `csrftoken` cookie (see GET /api/auth/csrf/).",
    )
