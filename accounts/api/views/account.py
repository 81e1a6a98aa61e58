"""My account: profile, password, email address, recent security activity, deletion."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.authentication import token_user
from accounts.api.schema import BodyOnDeleteAutoSchema
from accounts.api.serializers import (
    EmailChangeSerializer,
    MessageSerializer,
    PasswordChangeSerializer,
    PasswordSerializer,
    ProfileSerializer,
    ProfileUpdateSerializer,
    SecurityEventSerializer,
)
from accounts.api.views.common import (
    AUTH_TAG,
    ERROR,
    INVALID_INPUT,
    NOT_AUTHENTICATED,
    SECOND_FACTOR_REQUIRED,
    SignedInView,
    account_of,
    client_of,
    profile_body,
    signed_out,
    validated,
)
from accounts.audit import recent_events_of
from accounts.flows.account_deletion import delete_account
from accounts.flows.email_change import request_email_change
from accounts.flows.password_change import change_password
from accounts.flows.profile import update_profile


@extend_schema(tags=AUTH_TAG)
class MeView(SignedInView):
    schema = BodyOnDeleteAutoSchema()

    @extend_schema(summary="My profile", responses={200: ProfileSerializer, 401: NOT_AUTHENTICATED})
    def get(self, request: Request) -> Response:
        return Response(profile_body(account_of(request)))

    @extend_schema(
        summary="Change my display name",
        request=ProfileUpdateSerializer,
        responses={200: ProfileSerializer, 400: INVALID_INPUT, 401: NOT_AUTHENTICATED},
    )
    def patch(self, request: Request) -> Response:
        data = validated(ProfileUpdateSerializer, request)
        user = update_profile(user=account_of(request), name=data["name"])
        return Response(profile_body(user))

    @extend_schema(
        summary="Delete my account",
        description=(
            "Irreversible: removes the account, its todos and sessions; a confirmation email follows. An account "
            "with two-factor authentication also needs a code on this device in the last 5 minutes."
        ),
        request=PasswordSerializer,
        responses={
            204: OpenApiResponse(description="Deleted; the refresh cookie is cleared."),
            400: OpenApiResponse(ERROR, description="`invalid_input` or `invalid_password`."),
            401: NOT_AUTHENTICATED,
            403: SECOND_FACTOR_REQUIRED,
        },
    )
    def delete(self, request: Request) -> Response:
        data = validated(PasswordSerializer, request)
        delete_account(
            user=account_of(request),
            password=data["password"],
            session_id=token_user(request).session_id,
            client=client_of(request),
        )
        return signed_out(Response(status=status.HTTP_204_NO_CONTENT))


@extend_schema(tags=AUTH_TAG)
class PasswordChangeView(SignedInView):
    @extend_schema(
        summary="Change my password",
        description=(
            "Needs the current password (and, with two-factor authentication, a code on this device in the last "
            "5 minutes). Every other device session ends; this one stays."
        ),
        request=PasswordChangeSerializer,
        responses={
            204: OpenApiResponse(description="Changed."),
            400: OpenApiResponse(ERROR, description="`invalid_input`, `invalid_password` or `password_rejected`."),
            401: NOT_AUTHENTICATED,
            403: SECOND_FACTOR_REQUIRED,
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(PasswordChangeSerializer, request)
        change_password(
            user=account_of(request),
            current_password=data["current_password"],
            new_password=data["new_password"],
            session_id=token_user(request).session_id,
            client=client_of(request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=AUTH_TAG)
class EmailChangeView(SignedInView):
    @extend_schema(
        summary="Change my email address",
        description=(
            "Needs the current password (and, with two-factor authentication, a code on this device in the last "
            "5 minutes). A confirmation link goes to the new address; until it is opened, sign-in and password "
            "reset keep using the current one. 202 whether or not the address is taken."
        ),
        request=EmailChangeSerializer,
        responses={
            202: MessageSerializer,
            400: OpenApiResponse(ERROR, description="`invalid_input`, `invalid_password` or `email_unchanged`."),
            401: NOT_AUTHENTICATED,
            403: SECOND_FACTOR_REQUIRED,
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(EmailChangeSerializer, request)
        request_email_change(
            user=account_of(request),
            password=data["password"],
            new_email=data["new_email"],
            session_id=token_user(request).session_id,
            client=client_of(request),
        )
        return Response({"detail": "Check the new address for a confirmation link."}, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=AUTH_TAG)
class SecurityEventListView(SignedInView):
    @extend_schema(
        summary="My recent security activity",
        responses={200: SecurityEventSerializer(many=True), 401: NOT_AUTHENTICATED},
    )
    def get(self, request: Request) -> Response:
        return Response(
            SecurityEventSerializer(recent_events_of(user=token_user(request).id, limit=20), many=True).data
        )
