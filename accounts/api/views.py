"""Accounts API views: validate the JSON, call the flow, shape the answer."""

from django.http import Http404, JsonResponse
from django.middleware.csrf import get_token
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import ensure_csrf_cookie
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access_tokens import key_ring
from accounts.api.authentication import enforce_csrf
from accounts.api.errors import ErrorSerializer, error_body
from accounts.api.schema import (
    REFRESH_COOKIE_AUTH,
    BodyOnDeleteAutoSchema,
    csrf_header_parameter,
    refresh_cookie_parameter,
)
from accounts.api.serializers import (
    AccessTokenSerializer,
    DeviceSessionSerializer,
    EmailChangeCancelSerializer,
    EmailChangeSerializer,
    EmailSerializer,
    EmailVerifySerializer,
    LoginResponseSerializer,
    LoginSerializer,
    MessageSerializer,
    PasswordChangeSerializer,
    PasswordResetConfirmSerializer,
    PasswordSerializer,
    ProfileSerializer,
    ProfileUpdateSerializer,
    RegisterSerializer,
    SecurityEventSerializer,
)
from accounts.audit import recent_events_of
from accounts.client_info import ClientInfo
from accounts.cookies import (
    CLEAR_SITE_DATA,
    clear_refresh_cookie,
    clear_signup_proof_cookie,
    read_refresh_cookie,
    read_signup_proof,
    set_refresh_cookie,
    set_signup_proof_cookie,
)
from accounts.exceptions import RefreshTokenInvalid
from accounts.flows.account_deletion import delete_account
from accounts.flows.device_sessions import (
    EndReason,
    IssuedTokens,
    end_device_session,
    end_session_by_refresh_token,
    live_sessions,
    reauthenticate,
    require_recent_authentication,
    rotate_refresh_token,
)
from accounts.flows.email_change import cancel_email_change, request_email_change
from accounts.flows.password_change import change_password
from accounts.flows.password_reset import request_password_reset, reset_password
from accounts.flows.profile import update_profile
from accounts.flows.security_reset import security_reset
from accounts.flows.signin import authenticate_user, start_api_session
from accounts.flows.signup import sign_up
from accounts.flows.verification import Verifier, resend_verification_email, verify_email
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
AUTH_TAG = ["auth"]


def _validated(serializer_class, request: Request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _token_body(issued: IssuedTokens) -> dict:
    return {"access": issued.access_token, "access_expires_at": issued.access_expires_at}


def _profile(user: User) -> dict:
    return ProfileSerializer(
        {"id": user.pk, "email": user.email, "name": user.name, "email_verified": user.email_verified}
    ).data


class PublicView(APIView):
    """Endpoints that need no access token."""

    authentication_classes: list = []
    permission_classes = [AllowAny]


@extend_schema(tags=AUTH_TAG)
class RegisterView(PublicView):
    @extend_schema(
        summary="Create an account",
        description=(
            "Always 202, for new and existing addresses alike; the mailbox owner learns the rest. Sets the "
            "HttpOnly sign-up proof cookie: verifying from this client then needs only the emailed token."
        ),
        request=RegisterSerializer,
        responses={202: MessageSerializer, 400: INVALID_INPUT},
    )
    def post(self, request: Request) -> Response:
        proof = sign_up(**_validated(RegisterSerializer, request), client=ClientInfo.from_request(request._request))
        response = Response(
            {"detail": "Check your inbox to verify your email address."}, status=status.HTTP_202_ACCEPTED
        )
        # Verifying from this client then needs only the emailed token.
        set_signup_proof_cookie(response, proof)
        return response


@extend_schema(tags=AUTH_TAG)
class LoginView(PublicView):
    @extend_schema(
        summary="Sign in",
        description=(
            "Returns a short-lived access token and sets the refresh cookie "
            "(HttpOnly, Secure, SameSite=Strict, Path=/api/auth/). The refresh token never appears in a body."
        ),
        request=LoginSerializer,
        responses={
            200: LoginResponseSerializer,
            400: INVALID_INPUT,
            401: OpenApiResponse(ERROR, description="`invalid_credentials`, the same for every wrong combination."),
            403: OpenApiResponse(ERROR, description="`email_not_verified` (right password, address not verified)."),
        },
    )
    def post(self, request: Request) -> Response:
        data = _validated(LoginSerializer, request)
        user = authenticate_user(request=request._request, email=data["email"], password=data["password"])
        issued = start_api_session(request=request._request, user=user)
        response = Response({**_token_body(issued), "user": _profile(user)})
        set_refresh_cookie(response, issued.refresh_token)
        return response


@extend_schema(tags=AUTH_TAG)
class RefreshView(PublicView):
    @extend_schema(
        summary="Exchange the refresh cookie for a new access token",
        description=(
            "Rotates the refresh cookie on every use. Presenting an already rotated token ends the device "
            "session (`refresh_token_reused`), except the one just replaced, within a few seconds, by a "
            "concurrent tab: that gets an access token and no new cookie."
        ),
        request=None,
        parameters=[refresh_cookie_parameter(), csrf_header_parameter()],
        auth=REFRESH_COOKIE_AUTH,
        responses={
            200: AccessTokenSerializer,
            401: OpenApiResponse(
                ERROR,
                description="`refresh_token_invalid` (missing, unknown, expired, ended) or `refresh_token_reused`.",
            ),
            403: OpenApiResponse(ERROR, description="`csrf_failed`: the X-CSRFToken header is missing or wrong."),
        },
    )
    def post(self, request: Request) -> Response:
        enforce_csrf(request)
        try:
            refresh_token = read_refresh_cookie(request)
            if refresh_token is None:
                raise RefreshTokenInvalid
            client = ClientInfo.from_request(request._request)
            issued = rotate_refresh_token(
                refresh_token=refresh_token, ip_address=client.ip_address, user_agent=client.user_agent
            )
        except RefreshTokenInvalid as error:
            response = Response(error_body(error.code, error.message), status=status.HTTP_401_UNAUTHORIZED)
            clear_refresh_cookie(response)
            return response
        response = Response(_token_body(issued))
        if issued.refresh_token is not None:
            set_refresh_cookie(response, issued.refresh_token)
        return response


@extend_schema(tags=AUTH_TAG)
class LogoutView(PublicView):
    @extend_schema(
        summary="Sign out this device",
        description="Ends the device session of the refresh cookie and clears the cookie. Idempotent.",
        request=None,
        parameters=[refresh_cookie_parameter(), csrf_header_parameter()],
        auth=REFRESH_COOKIE_AUTH,
        responses={
            204: OpenApiResponse(description="Signed out."),
            403: OpenApiResponse(ERROR, description="`csrf_failed`."),
        },
    )
    def post(self, request: Request) -> Response:
        enforce_csrf(request)
        refresh_token = read_refresh_cookie(request)
        if refresh_token is not None:
            end_session_by_refresh_token(
                refresh_token=refresh_token, reason=EndReason.LOGOUT, client=ClientInfo.from_request(request._request)
            )
        response = Response(status=status.HTTP_204_NO_CONTENT)
        clear_refresh_cookie(response)
        response["Clear-Site-Data"] = CLEAR_SITE_DATA
        return response


@extend_schema(tags=AUTH_TAG)
class CsrfView(PublicView):
    @extend_schema(
        summary="Set the CSRF cookie",
        description="Sets Django's `csrftoken` cookie; send its value as `X-CSRFToken` on refresh and logout.",
        responses={200: MessageSerializer},
    )
    @method_decorator(ensure_csrf_cookie)
    def get(self, request: Request) -> Response:
        get_token(request._request)
        return Response({"detail": "CSRF cookie set."})


@extend_schema(tags=AUTH_TAG)
class SessionListView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="List my device sessions",
        responses={200: DeviceSessionSerializer(many=True), 401: NOT_AUTHENTICATED},
    )
    def get(self, request: Request) -> Response:
        sessions = live_sessions(user=request.user.id)
        serializer = DeviceSessionSerializer(
            sessions, many=True, context={"current_session_id": request.user.session_id}
        )
        return Response(serializer.data)


@extend_schema(tags=AUTH_TAG)
class SessionDetailView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="End one of my device sessions",
        responses={
            204: OpenApiResponse(description="Ended; its tokens stop working at once."),
            401: NOT_AUTHENTICATED,
            403: REAUTHENTICATION_REQUIRED,
            404: OpenApiResponse(ERROR, description="`not_found`: no such session of yours."),
        },
    )
    def delete(self, request: Request, session_id: str) -> Response:
        if session_id != request.user.session_id:
            require_recent_authentication(session_id=request.user.session_id)
        end_device_session(
            user=request.user.id,
            session_id=session_id,
            reason=EndReason.ENDED_BY_USER,
            client=ClientInfo.from_request(request._request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=AUTH_TAG)
class RevokeOtherSessionsView(APIView):
    permission_classes = [IsAuthenticated]

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
        require_recent_authentication(session_id=request.user.session_id)
        security_reset(
            user=User.objects.get(pk=request.user.id),
            reason=EndReason.ENDED_BY_USER,
            keep_session_id=request.user.session_id,
            client=ClientInfo.from_request(request._request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=AUTH_TAG)
class MeView(APIView):
    permission_classes = [IsAuthenticated]
    schema = BodyOnDeleteAutoSchema()

    def _user(self, request: Request) -> User:
        try:
            return User.objects.get(pk=request.user.id, is_active=True)
        except User.DoesNotExist:
            raise Http404 from None

    @extend_schema(summary="My profile", responses={200: ProfileSerializer, 401: NOT_AUTHENTICATED})
    def get(self, request: Request) -> Response:
        return Response(_profile(self._user(request)))

    @extend_schema(
        summary="Change my display name",
        request=ProfileUpdateSerializer,
        responses={200: ProfileSerializer, 400: INVALID_INPUT, 401: NOT_AUTHENTICATED},
    )
    def patch(self, request: Request) -> Response:
        data = _validated(ProfileUpdateSerializer, request)
        user = update_profile(user=self._user(request), name=data["name"])
        return Response(_profile(user))

    @extend_schema(
        summary="Delete my account",
        description="Irreversible: removes the account, its todos and sessions; a confirmation email follows.",
        request=PasswordSerializer,
        responses={
            204: OpenApiResponse(description="Deleted; the refresh cookie is cleared."),
            400: OpenApiResponse(ERROR, description="`invalid_input` or `invalid_password`."),
            401: NOT_AUTHENTICATED,
        },
    )
    def delete(self, request: Request) -> Response:
        data = _validated(PasswordSerializer, request)
        delete_account(
            user=self._user(request), password=data["password"], client=ClientInfo.from_request(request._request)
        )
        response = Response(status=status.HTTP_204_NO_CONTENT)
        clear_refresh_cookie(response)
        response["Clear-Site-Data"] = CLEAR_SITE_DATA
        return response


@extend_schema(tags=AUTH_TAG)
class PasswordChangeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Change my password",
        description="Needs the current password. Every other device session ends; this one stays.",
        request=PasswordChangeSerializer,
        responses={
            204: OpenApiResponse(description="Changed."),
            400: OpenApiResponse(ERROR, description="`invalid_input`, `invalid_password` or `password_rejected`."),
            401: NOT_AUTHENTICATED,
        },
    )
    def post(self, request: Request) -> Response:
        data = _validated(PasswordChangeSerializer, request)
        change_password(
            user=User.objects.get(pk=request.user.id),
            current_password=data["current_password"],
            new_password=data["new_password"],
            session_id=request.user.session_id,
            client=ClientInfo.from_request(request._request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=AUTH_TAG)
class EmailChangeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Change my email address",
        description=(
            "Needs the current password. A confirmation link goes to the new address; until it is opened, "
            "sign-in and password reset keep using the current one. 202 whether or not the address is taken."
        ),
        request=EmailChangeSerializer,
        responses={
            202: MessageSerializer,
            400: OpenApiResponse(ERROR, description="`invalid_input`, `invalid_password` or `email_unchanged`."),
            401: NOT_AUTHENTICATED,
        },
    )
    def post(self, request: Request) -> Response:
        data = _validated(EmailChangeSerializer, request)
        request_email_change(
            user=User.objects.get(pk=request.user.id),
            password=data["password"],
            new_email=data["new_email"],
            session_id=request.user.session_id,
            client=ClientInfo.from_request(request._request),
        )
        return Response({"detail": "Check the new address for a confirmation link."}, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=AUTH_TAG)
class ReauthenticateView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Confirm my password",
        description="Opens a short window in which this device may end other sessions.",
        request=PasswordSerializer,
        responses={
            204: OpenApiResponse(description="Confirmed."),
            400: OpenApiResponse(ERROR, description="`invalid_input` or `invalid_password`."),
            401: NOT_AUTHENTICATED,
        },
    )
    def post(self, request: Request) -> Response:
        data = _validated(PasswordSerializer, request)
        reauthenticate(
            user=User.objects.get(pk=request.user.id),
            session_id=request.user.session_id,
            password=data["password"],
            client=ClientInfo.from_request(request._request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=AUTH_TAG)
class SecurityEventListView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="My recent security activity",
        responses={200: SecurityEventSerializer(many=True), 401: NOT_AUTHENTICATED},
    )
    def get(self, request: Request) -> Response:
        return Response(SecurityEventSerializer(recent_events_of(user=request.user.id, limit=20), many=True).data)


@extend_schema(tags=AUTH_TAG)
class PasswordResetView(PublicView):
    @extend_schema(
        summary="Email a password-reset link",
        description="Always 202, whether or not the address has an account.",
        request=EmailSerializer,
        responses={202: MessageSerializer, 400: INVALID_INPUT},
    )
    def post(self, request: Request) -> Response:
        request_password_reset(
            email=_validated(EmailSerializer, request)["email"], client=ClientInfo.from_request(request._request)
        )
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
        data = _validated(PasswordResetConfirmSerializer, request)
        reset_password(token=data["token"], password=data["password"], client=ClientInfo.from_request(request._request))
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
        data = _validated(EmailVerifySerializer, request)
        verifier = Verifier(
            signup_proof=read_signup_proof(request._request),
            password=data.get("password") or None,
            new_password=data.get("new_password") or None,
        )
        verify_email(token=data["token"], verifier=verifier, client=ClientInfo.from_request(request._request))
        response = Response({"detail": "Your email address is verified."})
        clear_signup_proof_cookie(response)
        return response


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
        data = _validated(EmailChangeCancelSerializer, request)
        cancel_email_change(
            token=data["token"], new_password=data["new_password"], client=ClientInfo.from_request(request._request)
        )
        return Response({"detail": "Your account is secured. Sign in with the new password."})


@extend_schema(tags=AUTH_TAG)
class EmailVerifyResendView(PublicView):
    @extend_schema(
        summary="Email a new verification link",
        description="Always 202, whether or not the address exists or is already verified.",
        request=EmailSerializer,
        responses={202: MessageSerializer, 400: INVALID_INPUT},
    )
    def post(self, request: Request) -> Response:
        resend_verification_email(
            email=_validated(EmailSerializer, request)["email"], client=ClientInfo.from_request(request._request)
        )
        return Response(
            {"detail": "If the address needs verifying, a new link is on its way."}, status=status.HTTP_202_ACCEPTED
        )


def jwks(request):
    """The public keys that verify access tokens (asymmetric algorithms only)."""
    keys = key_ring().public_jwks
    if not keys:
        raise Http404
    return JsonResponse({"keys": keys})
