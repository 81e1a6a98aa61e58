"""Listing and ending my device sessions, and confirming my password to do so."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.authentication import token_user
from accounts.api.serializers import DeviceSessionSerializer, ReauthenticateSerializer
from accounts.api.views.common import (
    AUTH_TAG,
    ERROR,
    NOT_AUTHENTICATED,
    REAUTHENTICATION_REQUIRED,
    SignedInView,
    account_of,
    after_ending,
    client_of,
    validated,
)
from accounts.flows.device_sessions import live_sessions
from accounts.flows.own_sessions import end_other_sessions, end_own_session
from accounts.flows.passkeys import reauthenticate_with_passkey
from accounts.flows.reauthentication import reauthenticate


@extend_schema(tags=AUTH_TAG)
class SessionListView(SignedInView):
    @extend_schema(
        summary="List my device sessions",
        responses={200: DeviceSessionSerializer(many=True), 401: NOT_AUTHENTICATED},
    )
    def get(self, request: Request) -> Response:
        sessions = live_sessions(user=token_user(request).id)
        serializer = DeviceSessionSerializer(
            sessions, many=True, context={"current_session_id": token_user(request).session_id}
        )
        return Response(serializer.data)


@extend_schema(tags=AUTH_TAG)
class SessionDetailView(SignedInView):
    @extend_schema(
        summary="End one of my device sessions",
        responses={
            204: OpenApiResponse(
                description="Ended; its tokens stop working at once. Ending this one also clears the refresh cookie."
            ),
            401: NOT_AUTHENTICATED,
            403: REAUTHENTICATION_REQUIRED,
            404: OpenApiResponse(ERROR, description="`not_found`: no such session of yours."),
        },
    )
    def delete(self, request: Request, session_id: str) -> Response:
        user = token_user(request)
        ended = end_own_session(
            user=user.id, session_id=session_id, current_session_id=user.session_id, client=client_of(request)
        )
        return after_ending(ended)


@extend_schema(tags=AUTH_TAG)
class RevokeOtherSessionsView(SignedInView):
    @extend_schema(
        summary="End all my other device sessions",
        description="Also makes every emailed link not yet used (reset, verification, email change) useless.",
        request=None,
        responses={
            204: OpenApiResponse(description="Every session but this one ended."),
            401: NOT_AUTHENTICATED,
            403: REAUTHENTICATION_REQUIRED,
        },
    )
    def post(self, request: Request) -> Response:
        ended = end_other_sessions(
            user=account_of(request), current_session_id=token_user(request).session_id, client=client_of(request)
        )
        return after_ending(ended)


@extend_schema(tags=AUTH_TAG)
class ReauthenticateView(SignedInView):
    @extend_schema(
        summary="Confirm it is me: my password, a second-factor code, or a passkey",
        description=(
            "One of `password`, `code` (TOTP or recovery code) or `credential` (a passkey's answer to POST "
            "/api/auth/reauthenticate/passkey/options/). Opens a short window in which this device may end other "
            "sessions; a code or a passkey also opens the one for managing two-factor authentication."
        ),
        request=ReauthenticateSerializer,
        responses={
            204: OpenApiResponse(description="Confirmed."),
            400: OpenApiResponse(
                ERROR,
                description="`invalid_input`, `invalid_password`, `invalid_code` or `passkey_challenge_invalid`.",
            ),
            401: OpenApiResponse(
                ERROR,
                description="Not authenticated (see the other operations), or a refused passkey (`passkey_refused`, "
                "`passkey_unknown`, `passkey_cloned`).",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(ReauthenticateSerializer, request)
        if "credential" in data:
            reauthenticate_with_passkey(
                user=account_of(request),
                session_id=token_user(request).session_id,
                credential=data["credential"],
                client=client_of(request),
            )
            return Response(status=status.HTTP_204_NO_CONTENT)
        reauthenticate(
            user=account_of(request),
            session_id=token_user(request).session_id,
            password=data.get("password"),
            code=data.get("code"),
            client=client_of(request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
