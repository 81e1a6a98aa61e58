"""What every accounts API view shares: the base views, input validation, answer shapes, documented errors."""

from typing import Any

from django.conf import settings
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.authentication import token_user
from accounts.api.errors import ErrorSerializer
from accounts.api.serializers import ProfileSerializer
from accounts.client_info import ClientInfo
from accounts.cookies import CLEAR_SITE_DATA, clear_refresh_cookie
from accounts.flows.deliverability import undeliverable_reason
from accounts.flows.device_sessions import IssuedTokens
from accounts.flows.own_sessions import SessionsEnded
from accounts.models import User

ERROR = ErrorSerializer
INVALID_INPUT = OpenApiResponse(ErrorSerializer, description="`invalid_input`: see `fields`.")
NOT_AUTHENTICATED = OpenApiResponse(
    ErrorSerializer,
    description="`not_authenticated`, `access_token_invalid` (bad, expired or foreign token) or `session_ended`.",
)
REAUTHENTICATION_REQUIRED = OpenApiResponse(
    ErrorSerializer,
    description="`reauthentication_required`: sign in or confirm the password (POST /api/auth/reauthenticate/) first.",
)
SECOND_FACTOR_REQUIRED = OpenApiResponse(
    ErrorSerializer,
    description=(
        "`reauthentication_required`: for an account with two-factor authentication, a TOTP or recovery code "
        "on this device within the last few minutes (POST /api/auth/reauthenticate/ with `code`); where the "
        "account has none and the action needs a recent sign-in, the password."
    ),
)
AUTH_TAG = ["auth"]


class PublicView(APIView):
    """Endpoints that need no access token."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]


# Endpoints for the holder of a live access token, read through token_user(request).
# (No docstring: drf-spectacular would publish it as every operation's description.)
class SignedInView(APIView):
    permission_classes = [IsAuthenticated]


def validated(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    """The request body as the serializer cleans it; a 400 ``invalid_input`` otherwise."""
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    data: dict[str, Any] = serializer.validated_data
    return data


def client_of(request: Request) -> ClientInfo:
    return ClientInfo.from_request(request._request)


def account_of(request: Request) -> User:
    """The active account of the access token (the token proved it; the row is read for the flow).

    404 if it is gone or deactivated meanwhile (both end its sessions, so only a
    request already past authentication can meet that).
    """
    try:
        return User.objects.get(pk=token_user(request).id, is_active=True)
    except User.DoesNotExist:
        raise Http404 from None


def token_body(issued: IssuedTokens) -> dict[str, Any]:
    return {"access": issued.access_token, "access_expires_at": issued.access_expires_at}


def profile_body(user: User) -> dict[str, Any]:
    data: dict[str, Any] = ProfileSerializer(
        {
            "id": user.pk,
            "email": user.email,
            "name": user.name,
            "email_verified": user.email_verified,
            "email_undeliverable": undeliverable_reason(user.email),
        }
    ).data
    return data


def signed_out(response: Response) -> Response:
    """This client's session is over: its refresh cookie, a page session's cookie and stored data go."""
    clear_refresh_cookie(response)
    response.delete_cookie(settings.SESSION_COOKIE_NAME, path=settings.SESSION_COOKIE_PATH, samesite="Lax")
    response["Clear-Site-Data"] = CLEAR_SITE_DATA
    return response


def after_ending(ended: SessionsEnded) -> Response:
    """The answer to ending sessions: the caller's own among them signs it out."""
    response = Response(status=status.HTTP_204_NO_CONTENT)
    return signed_out(response) if ended.includes_current else response
