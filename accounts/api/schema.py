"""OpenAPI descriptions (drf-spectacular) of the API's authentication."""

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from drf_spectacular.utils import OpenApiParameter
from rest_framework.request import Request

# An OpenAPI object (an operation, a response, a security scheme, the whole document), as drf-spectacular has them.
OpenApiObject = dict[str, Any]


class BodyOnDeleteAutoSchema(AutoSchema):
    """Documents the JSON body of DELETE operations too (deleting the account
    needs the password), which drf-spectacular leaves out by default."""

    def _get_request_body(self, direction: str = "request") -> OpenApiObject | None:
        if self.method != "DELETE":
            return super()._get_request_body(direction)
        self.method = "POST"
        try:
            return super()._get_request_body(direction)
        finally:
            self.method = "DELETE"


# Security requirement of the endpoints that the refresh cookie authenticates
# (for ``extend_schema(auth=...)``). drf-spectacular annotates ``auth`` as a
# list of names, but puts it as given into the operation's ``security``: a
# list of OpenAPI security requirement objects, which this is.
REFRESH_COOKIE_AUTH: Sequence[str] = [{"refreshCookie": [], "csrfHeader": []}]  # type: ignore[list-item]


class AccessTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api.authentication.AccessTokenAuthentication"
    name = "accessToken"

    def get_security_definition(self, auto_schema: AutoSchema) -> OpenApiObject:
        return build_bearer_security_scheme_object(
            header_name="HTTP_AUTHORIZATION",
            token_prefix="Bearer",  # noqa: S106 a scheme name
            bearer_format="JWT",
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


def pending_sign_in_cookie_parameter() -> OpenApiParameter:
    return OpenApiParameter(
        name=settings.ACCOUNTS_MFA_PENDING_COOKIE_NAME,
        location=OpenApiParameter.COOKIE,
        required=False,
        description=(
            "The handle of the sign-in waiting for its second factor, set by POST /api/auth/login/ "
            "(HttpOnly, SameSite=Strict, Path=/api/auth/, 10 minutes)."
        ),
    )


def csrf_header_parameter() -> OpenApiParameter:
    return OpenApiParameter(
        name="X-CSRFToken",
        location=OpenApiParameter.HEADER,
        required=True,
        description="The value of the `csrftoken` cookie (see GET /api/auth/csrf/).",
    )


def document_common_errors(
    result: OpenApiObject, generator: SchemaGenerator, request: Request | None, public: bool
) -> OpenApiObject:
    """drf-spectacular post-processing: every operation may also answer any other
    error (a malformed body, an unsupported media type, a rate limit, …) in the
    common error shape, so the schema promises nothing the API does not keep."""
    error_ref = {"$ref": "#/components/schemas/Error"}
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            responses.setdefault(
                "429",
                {
                    "description": "`rate_limited`: too many attempts; see the Retry-After header.",
                    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
                    "content": {"application/json": {"schema": error_ref}},
                },
            )
            responses.setdefault(
                "default",
                {
                    "description": "Any other error, in the common error shape.",
                    "content": {"application/json": {"schema": error_ref}},
                },
            )
    return result
