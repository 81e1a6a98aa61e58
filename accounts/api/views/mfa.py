"""Managing my second factors: the authenticator app (TOTP) and recovery codes."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.authentication import token_user
from accounts.api.serializers import CodeSerializer, MfaStatusSerializer, RecoveryCodesSerializer, TotpSetupSerializer
from accounts.api.views.common import (
    AUTH_TAG,
    ERROR,
    NOT_AUTHENTICATED,
    SECOND_FACTOR_REQUIRED,
    SignedInView,
    account_of,
    client_of,
    validated,
)
from accounts.flows.mfa import begin_totp_setup, confirm_totp, disable_totp, mfa_status, regenerate_recovery_codes


@extend_schema(tags=AUTH_TAG)
class MfaStatusView(SignedInView):
    @extend_schema(summary="My second factors", responses={200: MfaStatusSerializer, 401: NOT_AUTHENTICATED})
    def get(self, request: Request) -> Response:
        current = mfa_status(user=account_of(request))
        return Response(
            {
                "enabled": current.enabled,
                "totp_enabled": current.totp_enabled,
                "passkeys": len(current.passkeys),
                "recovery_codes_remaining": current.recovery_codes_remaining,
            }
        )


@extend_schema(tags=AUTH_TAG)
class TotpSetupView(SignedInView):
    @extend_schema(
        summary="Begin setting up an authenticator app",
        description="A new secret, not yet active: confirm it with a code (POST /api/auth/mfa/totp/confirm/).",
        request=None,
        responses={
            200: TotpSetupSerializer,
            400: OpenApiResponse(ERROR, description="`totp_already_enabled`."),
            401: NOT_AUTHENTICATED,
            403: OpenApiResponse(
                ERROR,
                description="`reauthentication_required` (sign in or confirm the password first) or "
                "`email_not_verified`.",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        setup = begin_totp_setup(user=account_of(request), session_id=token_user(request).session_id)
        return Response({"secret": setup.secret, "otpauth_uri": setup.otpauth_uri, "qr_svg": setup.qr_svg})


@extend_schema(tags=AUTH_TAG)
class TotpConfirmView(SignedInView):
    @extend_schema(
        summary="Turn the authenticator app on",
        description="With a code from the app. Returns the first ten recovery codes, shown this once.",
        request=CodeSerializer,
        responses={
            200: RecoveryCodesSerializer,
            400: OpenApiResponse(ERROR, description="`invalid_input`, `invalid_code` or `totp_setup_required`."),
            401: NOT_AUTHENTICATED,
            403: SECOND_FACTOR_REQUIRED,
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(CodeSerializer, request)
        codes = confirm_totp(
            user=account_of(request),
            code=data["code"],
            session_id=token_user(request).session_id,
            client=client_of(request),
        )
        return Response({"recovery_codes": codes})


@extend_schema(tags=AUTH_TAG)
class TotpView(SignedInView):
    @extend_schema(
        summary="Remove the authenticator app",
        description=(
            "Removes the app, and every recovery code unless a passkey stays (two-factor then stays on). "
            "Needs a recent second factor."
        ),
        request=None,
        responses={
            204: OpenApiResponse(description="Off."),
            400: OpenApiResponse(ERROR, description="`mfa_not_enabled`."),
            401: NOT_AUTHENTICATED,
            403: SECOND_FACTOR_REQUIRED,
        },
    )
    def delete(self, request: Request) -> Response:
        disable_totp(user=account_of(request), session_id=token_user(request).session_id, client=client_of(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=AUTH_TAG)
class RecoveryCodesView(SignedInView):
    @extend_schema(
        summary="Make new recovery codes",
        description="Ten new codes replace every earlier one. Needs a recent second factor.",
        request=None,
        responses={
            200: RecoveryCodesSerializer,
            400: OpenApiResponse(ERROR, description="`mfa_not_enabled`."),
            401: NOT_AUTHENTICATED,
            403: SECOND_FACTOR_REQUIRED,
        },
    )
    def post(self, request: Request) -> Response:
        codes = regenerate_recovery_codes(
            user=account_of(request), session_id=token_user(request).session_id, client=client_of(request)
        )
        return Response({"recovery_codes": codes})
