"""One JSON error shape for the whole API: {"code", "detail", "fields"?}; the site's error handlers."""

import sys
from typing import Any, NotRequired, TypedDict

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import InterfaceError, OperationalError, connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views import defaults
from rest_framework import exceptions, serializers, status
from rest_framework.exceptions import ErrorDetail
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from accounts import exceptions as account_errors
from accounts.rate_limits import RateLimited

_STATUS_OF_ACCOUNT_ERROR = {
    account_errors.InvalidCredentials: status.HTTP_401_UNAUTHORIZED,
    account_errors.EmailNotVerified: status.HTTP_403_FORBIDDEN,
    account_errors.RefreshTokenInvalid: status.HTTP_401_UNAUTHORIZED,
    account_errors.SessionNotFound: status.HTTP_404_NOT_FOUND,
    account_errors.ReauthenticationRequired: status.HTTP_403_FORBIDDEN,
    account_errors.PendingSignInInvalid: status.HTTP_401_UNAUTHORIZED,
    account_errors.PasskeyRefused: status.HTTP_401_UNAUTHORIZED,
    account_errors.PasskeyChallengeInvalid: status.HTTP_400_BAD_REQUEST,
    account_errors.PasskeyNotFound: status.HTTP_404_NOT_FOUND,
    account_errors.SocialIdentityNotFound: status.HTTP_404_NOT_FOUND,
    account_errors.SocialLastSignInMethod: status.HTTP_409_CONFLICT,
}
_CODE_OF_DRF_ERROR = {
    exceptions.Throttled: "rate_limited",
    exceptions.ParseError: "malformed_request",
}


class ErrorBody(TypedDict):
    code: str
    detail: str
    fields: NotRequired[dict[str, list[str]]]


# DRF's error detail: a message, or a list or a dict of them, nested as the input was.
ErrorDetailTree = ErrorDetail | list["ErrorDetailTree"] | dict[str, "ErrorDetailTree"]


class ErrorSerializer(serializers.Serializer):
    """Documents the error body in the OpenAPI schema."""

    code = serializers.CharField(help_text="Stable, machine-readable error code.")
    detail = serializers.CharField(help_text="A message for people.")
    # DRF's serializer metaclass takes declared fields off the class, so this
    # names the body's "fields" key and leaves Serializer.fields alone.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Only for validation errors: the messages for each invalid field.",
    )


def _status_of(error: account_errors.AccountError) -> int:
    for cls in type(error).__mro__:
        if cls in _STATUS_OF_ACCOUNT_ERROR:
            return _STATUS_OF_ACCOUNT_ERROR[cls]
    return status.HTTP_400_BAD_REQUEST


def _field_messages(detail: ErrorDetailTree, name: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as {"field" or "parent.child": [messages]}."""
    if isinstance(detail, dict):
        result: dict[str, list[str]] = {}
        for key, value in detail.items():
            result.update(_field_messages(value, f"{name}.{key}" if name else str(key)))
        return result
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return {name or "non_field_errors": [str(item) for item in detail]}
        result = {}
        for index, item in enumerate(detail):
            result.update(_field_messages(item, f"{name}.{index}" if name else str(index)))
        return result
    return {name or "non_field_errors": [str(detail)]}


def error_body(code: str, detail: str, fields: dict[str, list[str]] | None = None) -> ErrorBody:
    body: ErrorBody = {"code": code, "detail": detail}
    if fields:
        body["fields"] = fields
    return body


def rate_limited_response(exc: RateLimited) -> Response:
    limited = Response(error_body(exc.code, exc.message), status=status.HTTP_429_TOO_MANY_REQUESTS)
    limited["Retry-After"] = str(exc.retry_after)
    return limited


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RateLimited):
        return rate_limited_response(exc)
    if isinstance(exc, account_errors.AccountError):
        status_code = _status_of(exc)
        fields = None
        if status_code == status.HTTP_400_BAD_REQUEST and exc.field:
            messages = exc.messages if isinstance(exc, account_errors.PasswordRejected) else [exc.message]
            fields = {exc.field: messages}
        return Response(error_body(exc.code, exc.message, fields), status=status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response  # not an API error (DRF answered None): Django's 500 handler takes it
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body("invalid_input", "Some of the data sent is not valid.", _field_messages(exc.detail))
        return response
    code = _CODE_OF_DRF_ERROR.get(type(exc))
    if code is None:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
    detail = exc.detail if isinstance(exc.detail, str) else exc.default_detail
    if isinstance(exc.detail, dict) and "detail" in exc.detail:
        detail = exc.detail["detail"]
    response.data = error_body(str(code), str(detail))
    return response


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """404 for the whole site: JSON under /api/, the HTML page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return defaults.page_not_found(request, exception)


def _database_unavailable(error: BaseException | None) -> bool:
    """The database cannot be reached (stopped, restarting, network), as opposed
    to a query that failed. A broken connection is dropped so that a later
    request reconnects by itself."""
    if not isinstance(error, (OperationalError, InterfaceError)):
        return False
    if connection.connection is None:
        return True  # could not connect at all
    if not connection.is_usable():
        connection.close()
        return True
    return False


def server_error(request: HttpRequest) -> HttpResponse:
    """500 for the whole site (JSON under /api/, the HTML page elsewhere), or 503
    at once while the database is unreachable, so clients retry and load
    balancers see the outage instead of a crash."""
    if _database_unavailable(sys.exc_info()[1]):
        response: HttpResponse
        if request.path.startswith("/api/"):
            response = JsonResponse(
                error_body("service_unavailable", "The service is briefly unavailable. Please retry."), status=503
            )
        else:
            # No request context: rendering it would reach for the database again.
            response = HttpResponse(render_to_string("service_unavailable.html"), status=503)
        response["Retry-After"] = "5"
        return response
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("server_error", "Something went wrong on our side."), status=500)
    return defaults.server_error(request)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """400 raised outside DRF (for example a request body over the size limit)."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("bad_request", "The request could not be understood."), status=400)
    return defaults.bad_request(request, exception)
