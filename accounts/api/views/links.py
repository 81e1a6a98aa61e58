"""What the emailed links do in the API: reset a password, verify an address, cancel an email change."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.serializers import (
    EmailChangeCancelSerializer,
    EmailSerializer,
    EmailVerifySerializer,
    MessageSerializer,
    PasswordResetConfirmSerializer,
)
from accounts.api.views.common import AUTH_TAG, ERROR, INVALID_INPUT, PublicView, client_of, validated
from accounts.cookies import clear_signup_proof_cookie, read_signup_proof
from accounts.flows.email_change import cancel_email_change
from accounts.flows.password_reset import request_password_reset, reset_password
from accounts.flows.verification import Verifier, resend_verification_email, verify_email


@extend_schema(tags=AUTH_TAG)
class PasswordResetView(PublicView):
    @extend_schema(
        summary="Email a password-reset link",
        description="Always 202, whether or not the address has an account.",
        request=EmailSerializer,
        responses={202: MessageSerializer, 400: INVALID_INPUT},
    )
    def post(self, request: Request) -> Response:
        request_password_reset(email=validated(EmailSerializer, request)["email"], client=client_of(request))
        return Response(
            {"detail": "If the address has an account, a reset link is on its way."}, status=status.HTTP_202_ACCEPTED
        )


@extend_schema(tags=AUTH_TAG)
class PasswordResetConfirmView(PublicView):
    @extend_schema(
        summary="Set a new password with a reset token",
        description="Ends every device session of the account; does not sign in.",
        request=PasswordResetConfirmSerializer,
        responses={
            204: OpenApiResponse(description="Password changed."),
            400: OpenApiResponse(
                ERROR,
                description="`invalid_input`, `password_rejected`, `token_invalid`, `token_expired` or `token_used`.",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(PasswordResetConfirmSerializer, request)
        reset_password(token=data["token"], password=data["password"], client=client_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=AUTH_TAG)
class EmailVerifyView(PublicView):
    @extend_schema(
        summary="Verify an email address with the emailed token",
        description=(
            "From the client that signed up (it holds the sign-up proof cookie) the token is enough. From "
            "anywhere else, verifying an unverified account also needs `password` (the account's current "
            "password) or `new_password` (replaces it and ends every session); without either the answer is "
            "`password_required`. Confirming a new address always needs `password`, and the device session that "
            "asked for the change must still be live."
        ),
        request=EmailVerifySerializer,
        responses={
            200: MessageSerializer,
            400: OpenApiResponse(
                ERROR,
                description=(
                    "`invalid_input`, `token_invalid`, `token_expired`, `token_used`, `password_required`, "
                    "`invalid_password` or `password_rejected`."
                ),
            ),
            429: OpenApiResponse(ERROR, description="`rate_limited`: too many wrong passwords."),
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(EmailVerifySerializer, request)
        verifier = Verifier(
            signup_proof=read_signup_proof(request._request),
            password=data.get("password") or None,
            new_password=data.get("new_password") or None,
        )
        verify_email(token=data["token"], verifier=verifier, client=client_of(request))
        response = Response({"detail": "Your email address is verified."})
        clear_signup_proof_cookie(response)
        return response


@extend_schema(tags=AUTH_TAG)
class EmailVerifyResendView(PublicView):
    @extend_schema(
        summary="Email a new verification link",
        description="Always 202, whether or not the address exists or is already verified.",
        request=EmailSerializer,
        responses={202: MessageSerializer, 400: INVALID_INPUT},
    )
    def post(self, request: Request) -> Response:
        resend_verification_email(email=validated(EmailSerializer, request)["email"], client=client_of(request))
        return Response(
            {"detail": "If the address needs verifying, a new link is on its way."}, status=status.HTTP_202_ACCEPTED
        )


@extend_schema(tags=AUTH_TAG)
class EmailChangeCancelView(PublicView):
    @extend_schema(
        summary="Cancel or undo an email change and secure the account",
        description=(
            "With the token from the notice sent to the current address when a change was asked for: the "
            "account keeps (or gets back) that address, takes `new_password`, and every session and every other "
            "emailed link ends. Does not sign in."
        ),
        request=EmailChangeCancelSerializer,
        responses={
            200: MessageSerializer,
            400: OpenApiResponse(
                ERROR,
                description="`invalid_input`, `password_rejected`, `token_invalid`, `token_expired` or `token_used`.",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(EmailChangeCancelSerializer, request)
        cancel_email_change(token=data["token"], new_password=data["new_password"], client=client_of(request))
        return Response({"detail": "Your account is secured. Sign in with the new password."})
